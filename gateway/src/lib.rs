//! Domicile: a data-residency gateway. A reverse proxy in front of existing HTTP APIs that finds
//! personal data in requests, works out whose data it is and which law protects it, sends it to
//! a backend in a region where that is lawful, refuses transfers with no legal basis, and records
//! every decision before it takes effect.
//!
//! # The request path
//! Each phase is a tower layer in its own module and adds what it learned to the
//! [`context::RequestContext`] in the request's extensions. No phase reaches back. The
//! synchronous phases resolve, decide and enforce are [`step::Step`]s; the pipeline runs the
//! three in one layer, so the request is not moved between them.
//!
//! 1. **accept** ([`server`], [`h1`]): HTTP/1.1 and HTTP/2, TLS (rustls), connection cap, timeouts;
//!    the common plain HTTP/1.1 request takes a lean path of its own.
//! 2. **limits** ([`limits`]): decision id, ambiguous framing refused ([`framing`]), header size,
//!    concurrency, upgrades refused, client copies of Domicile's headers stripped.
//! 3. **route** ([`route`]): host, path and method select a route.
//! 4. **inspect** ([`inspect`]): personal data in the query and body, as category + location.
//! 5. **resolve** ([`resolve`]): real client address, GeoIP, evidence → plausible jurisdictions.
//! 6. **decide** ([`decide`]): the policy engine's verdict and the destination region.
//! 7. **enforce** ([`enforce`]): forward, or answer 451 / 413 / 415 / 503.
//! 8. **trace** ([`trace`]): the decision record is made durable; failure fails closed.
//! 9. **effect** ([`forward`]): the upstream request, or the answer decided above.
//!
//! [`edge`] wraps them all: it never fails, counts and logs every request. Just inside it,
//! [`trace::refusal`] records every request answered before a decision and, with
//! OpenTelemetry configured ([`trace::otel`]), starts and ends the request's span.
//!
//! # Layout
//! - [`config`]: raw and validated configuration, `check` diagnostics.
//! - [`state`]: the active snapshot (config, engine, registry, GeoIP, pools).
//! - [`gateway`]: shared state, the pipeline, start and shutdown.
//! - [`upstream`], [`pool`], [`lean`], [`tls`]: backend clients and TLS.
//! - [`admin`], [`metrics`], [`reload`]: operations.
//! - [`demo`]: the embedded demo.
//! - [`body`], [`problem`], [`headers`], [`step`], [`clock`], [`jsonstr`]: shared pieces.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod body;
pub mod clock;
pub mod config;
pub mod context;
pub mod decide;
pub mod demo;
pub mod edge;
pub mod enforce;
pub mod forward;
pub mod framing;
pub mod gateway;
pub mod h1;
pub mod headers;
pub mod inspect;
pub mod jsonstr;
pub mod lean;
pub mod limits;
pub mod lowhex;
pub mod metrics;
pub mod pool;
pub mod problem;
pub mod reload;
pub mod resolve;
pub mod route;
pub mod sending;
pub mod server;
pub mod state;
pub mod step;
pub mod tls;
pub mod trace;
pub mod upstream;

pub use config::Config;
pub use gateway::{Running, StartOptions, start};
