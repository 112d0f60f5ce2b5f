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
