//! The root file of the kernel binary `two-targets-xen`: the same lines as `main.rs`
//! (two binaries sharing one root file make Cargo warn on every build of the
//! workspace). `appliance.rs` includes the code generated for this binary.
#![no_std]
#![no_main]

extern crate alloc;

include!(concat!(env!("OUT_DIR"), "/appliance.rs"));

mod pages;
pub use pages::Pages;
