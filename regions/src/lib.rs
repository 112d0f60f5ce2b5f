//! Domicile's view of the world outside the request: which regions exist and who runs them,
//! who the client really is, which country an address is in, and which jurisdictions the subject
//! plausibly belongs to.
//!
//! # Layout
//! - [`registry`]: regions, their countries, operating entities and the countries they serve.
//! - [`client_addr`]: the real client address through the trusted-proxy chain.
//! - [`geoip`]: MaxMind DB lookups (and building small country DBs for the demo and tests).
//! - [`resolve`]: evidence, its precedence and the jurisdiction resolution.
//! - [`directory`]: the subject directory (subject id → home region and jurisdiction).
//! - [`token`]: verified JWT claims as evidence.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

/// `Display`, `Debug`, `serde::Serialize` and comparison with `&str` for a value that holds
/// text inline and gives it with `fn as_str(&self) -> &str` (a truncated address here, a
/// record's timestamp in the gateway). The crate using it needs `serde`.
#[macro_export]
macro_rules! text_traits {
    ($t:ty) => {
        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::fmt::Debug for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(self.as_str(), f)
            }
        }

        impl ::serde::Serialize for $t {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

pub mod client_addr;
pub mod directory;
pub mod geoip;
pub mod registry;
pub mod resolve;
pub mod token;

pub use client_addr::{ClientAddr, TrustedProxies};
pub use geoip::GeoIp;
pub use registry::{Region, Registry};
pub use resolve::{
    ConflictRule, Evidence, EvidenceKind, EvidenceSource, Plausible, Precedence, Rejected,
    Resolution,
};
pub use token::TokenVerifier;
