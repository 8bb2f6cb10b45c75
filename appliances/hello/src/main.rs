//! `hello`: prints a greeting assembled from the constants that `appliance.ron` compiles
//! in, then exits 0. Change the greeting by editing `appliance.ron` and rebuilding.
#![no_std]
#![no_main]

extern crate alloc;

include!(concat!(env!("OUT_DIR"), "/appliance.rs"));

use alloc::format;
use core::convert::Infallible;
use morgana_signatures::Console;

/// The job.
pub struct Hello;

impl Hello {
    /// Writes `config::REPEAT` greeting lines on `console`.
    pub async fn start<C: Console>(console: C) -> Result<(), Infallible> {
        for _ in 0..config::REPEAT {
            console.write_str(&format!("{}, {}!\n", config::GREETING, config::AUDIENCE));
        }
        Ok(())
    }
}
