//! Test support shared by the integration tests: a host adapter (the signatures over
//! `std::net`) and a DNS message builder and parser.
#![allow(dead_code)]

pub mod hostnet;
pub mod msg;
