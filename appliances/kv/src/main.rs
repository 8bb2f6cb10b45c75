//! The kv appliance: a Redis-protocol (RESP2) server over the durable store on a disk.
//!
//! Everything platform-specific (the disk, sockets, event loop, entry point) is wired by
//! the code that `morgana-codegen` generates from `appliance.ron`; this crate is only
//! the job.
#![no_std]
#![no_main]

extern crate alloc;

include!(concat!(env!("OUT_DIR"), "/appliance.rs"));

mod server;
pub use server::KvServer;
