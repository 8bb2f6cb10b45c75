//! The kv appliance with prepared data: a Redis-protocol (RESP2) server over a durable
//! store that starts with the keys of a read-only image (two disks; see appliance.ron).
//!
//! The job is the kv appliance's own (`appliances/kv/src/server.rs`): what differs is
//! only the wiring, which `morgana-codegen` generates from `appliance.ron`.
#![no_std]
#![no_main]

extern crate alloc;

include!(concat!(env!("OUT_DIR"), "/appliance.rs"));

#[path = "../../kv/src/server.rs"]
mod server;
pub use server::KvServer;
