//! The static website appliance: serves the files under `htdocs/`, compiled in.
//!
//! Everything platform-specific (sockets, event loop, entry point) is wired by the code
//! that `morgana-codegen` generates from `appliance.ron`; this crate is only the job.
#![no_std]
#![no_main]

extern crate alloc;

include!(concat!(env!("OUT_DIR"), "/appliance.rs"));

mod website;
pub use website::Website;
