//! Morgana's portable runtime, shared by every platform.
//!
//! - [`block_on`]: the single-threaded executor. It polls one future (the appliance's
//!   `connect_and_start`) and, when that future is waiting, asks the platform's
//!   [`Idle`] to sleep until an event (epoll on Unix, `hlt` in a kernel) has woken it.
//! - [`TaskSet`]: many futures of one type driven by the future that owns them (the HTTP
//!   server's connections), each with its own waker, so only ready ones are polled.
//! - [`timeout`] and [`select`]: the two combinators the components need.
//! - [`freestanding_symbols!`]: `memcpy` and friends for binaries without libc.
//!
//! Nothing here knows about a platform; the platforms plug in through [`Idle`].
#![no_std]

extern crate alloc;

mod executor;
mod freestanding;
mod taskset;
mod time;

pub use executor::{Idle, block_on};
pub use freestanding::{compare_bytes, copy_large, copy_small, fill_bytes};
pub use taskset::TaskSet;
pub use time::{Either, TimedOut, select, timeout};
