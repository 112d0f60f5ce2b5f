//! The end-to-end tests, one module per area, linked into one test binary: the real gateway in
//! front of real HTTP backends on loopback. One binary links once and runs every test on one
//! thread pool; `reload_loop` stays a binary of its own because it counts a process-wide
//! metric.
//!
//! Run one area with `cargo test -p domicile-tests --test e2e limits::`.

mod framing;
mod http2_abuse;
mod inspect_decode;
mod inspect_fieldmap;
mod inspect_fuzz_seeds;
mod inspect_locations;
mod inspect_multipart;
mod inspect_uninspectable;
mod limits;
mod ops;
mod policy;
mod proxy;
mod resolve_geoip;
mod resolve_routing;
mod resolve_signals;
mod resolve_spoofed_headers;
mod schema;
mod server_paths;
mod tls;
mod trace_no_personal_data;
mod trace_otel;
mod trace_records;
mod trace_review;
mod trace_verify;
