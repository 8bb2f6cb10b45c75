//! Xen's guest interfaces, as a PV frontend driver uses them.
//!
//! | module | what |
//! |---|---|
//! | [`store`] | the xenstore client: wire protocol over the store ring, watches, typed errors, bounded waits |
//! | [`bus`] | xenbus: device states and the frontend's handshake with its backend, for any device class |
//! | [`grant`] | grant table v1 bookkeeping: sharing pages with a backend, revoking safely |
//! | [`ring`] | the frontend half of a shared ring (`io/ring.h`), for any request/response layout |
//! | [`device`] | what a frontend needs from its kernel ([`device::Hal`]) |
//! | [`secrets`] | secrets at boot: key material the toolstack writes to the domain's `data/morgana/secrets`, read once and removed |
//!
//! This crate is the part of Xen support that does not depend on the kernel: every
//! piece is written against a small trait or over plain memory, so the same code runs
//! in the kernel and in host tests against simulated, hostile peers (a xenstored that
//! lies about lengths, a backend that never answers, indices that make no sense).
//! The kernel's instances live in morgana-pvh (`src/xen/`): the store ring as a
//! `store::Transport`, the grant table's frames, event channel delivery, and
//! `xen::XenHal`, the [`device::Hal`] of a PV device. morgana-pvh itself uses the
//! xenstore client at boot, for `xl shutdown` (`control/shutdown`).
//!
//! Drivers built on it: `drivers/netfront` (the vif). A block frontend reuses the same
//! pieces: [`bus::Frontend::find`], [`bus::Frontend::wait_ready`], its rings
//! ([`ring::FrontRing`]) and grants through the [`device::Hal`], then
//! [`bus::Frontend::connect`] with its own keys.
//!
//! The layouts and numbers re-express Xen's public headers (`io/xs_wire.h`,
//! `io/xenbus.h`, `grant_table.h`, `io/ring.h`); no code is taken from them.
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks, missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod bus;
pub mod device;
pub mod grant;
pub mod ring;
pub mod secrets;
pub mod store;

use core::fmt;

/// Why a Xen interface failed: at boot (the kernel's set-up) or for a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XenError {
    /// CPUID leaf base+2 names no hypercall page MSR.
    NoHypercallPage,
    /// A hypercall returned this (negative errno) value.
    Hypercall(i64),
    /// The console ring could not be mapped.
    ConsoleMap,
    /// Not running on Xen (or Xen was not set up).
    NotXen,
    /// The store ring could not be mapped.
    StoreMap,
    /// Xen gave an event channel port beyond the ones the kernel tracks.
    PortTooHigh {
        /// The port Xen gave.
        port: u32,
        /// How many ports the kernel tracks.
        tracked: u32,
    },
    /// The grant table has no free entry left.
    GrantsExhausted,
    /// Memory to share with a backend could not be allocated.
    OutOfMemory {
        /// Bytes that could not be allocated.
        bytes: usize,
    },
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenError::NoHypercallPage => f.write_str("Xen offers no hypercall page"),
            XenError::Hypercall(e) => write!(f, "Xen hypercall failed with {e}"),
            XenError::ConsoleMap => f.write_str("cannot map the Xen console ring"),
            XenError::NotXen => f.write_str("not running on Xen"),
            XenError::StoreMap => f.write_str("cannot map the xenstore ring"),
            XenError::PortTooHigh { port, tracked } => write!(
                f,
                "event channel port {port} is beyond the {tracked} ports this kernel tracks"
            ),
            XenError::GrantsExhausted => f.write_str("no free grant table entry left"),
            XenError::OutOfMemory { bytes } => write!(
                f,
                "out of memory: cannot allocate {bytes} bytes to share with the backend (give \
                 the domain more memory)"
            ),
        }
    }
}
