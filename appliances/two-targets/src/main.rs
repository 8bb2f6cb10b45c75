//! Two targets, one build: the same job linked as a Unix process (`two-targets`, this
//! root file) and as a PVH kernel (`two-targets-xen`, `src/xen.rs`, the same lines) by
//! one `cargo build` (`target: [Unix, Xen]` in appliance.ron; docs/architecture.md,
//! "Several targets in one build"). `appliance.rs` includes the code generated for the
//! binary being compiled; the job is in `pages.rs`.
#![no_std]
#![no_main]

extern crate alloc;

include!(concat!(env!("OUT_DIR"), "/appliance.rs"));

mod pages;
pub use pages::Pages;
