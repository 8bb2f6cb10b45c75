//! The static website over HTTPS: serves static-website's `htdocs/`, compiled in, over
//! TLS with HSTS, and redirects plain HTTP to HTTPS.
//!
//! Everything platform-specific (sockets, TLS, secrets, event loop, entry point) is wired
//! by the code that `morgana-codegen` generates from `appliance.ron`; this crate is only
//! the job.
#![no_std]
#![no_main]

extern crate alloc;

include!(concat!(env!("OUT_DIR"), "/appliance.rs"));

mod website;
pub use website::Website;
