//! Domicile's legal model: may this subject's data, of these categories, for this purpose, go to
//! this entity in this country on this date? Pure and synchronous: no I/O, no clock.
//!
//! # Layout
//! - [`date`]: calendar dates and half-open validity windows.
//! - [`country`]: ISO 3166-1 alpha-2 codes.
//! - [`kb`]: the dated knowledge base (zones, regimes, instruments, prohibitions) loaded from
//!   `policy/kb/*.toml`, validated and indexed.
//! - [`model`]: the engine's inputs (query, entity, categories) and outputs (decision, reasons).
//! - [`tz`]: the legal day of each regime's time zone.
//! - [`engine`]: the decision algorithm.
//! - [`cases`]: policy test cases written as data, and their runner.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod cases;
pub mod country;
pub mod date;
pub mod engine;
pub mod kb;
pub mod model;
pub mod tz;

pub use country::Country;
pub use date::{Date, Validity};
pub use engine::{Engine, EngineOptions, Unmodelled};
pub use kb::KnowledgeBase;
pub use model::{
    Assessment, Category, Certification, Contract, Decision, Destination, Entity, Facts, Frequency,
    Override, OverrideEffect, Query, Reason, Role, Sector, Verdict,
};
pub use tz::LegalTz;
