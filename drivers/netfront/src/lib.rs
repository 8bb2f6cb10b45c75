//! Morgana's Xen netfront driver: the `NetIf` of the PVH kernel on Xen.
//!
//! ```ignore
//! // What morgana-nic does on Xen:
//! let nic = morgana_netfront::connect().await?;   // impl morgana_signatures::NetIf
//! ```
//!
//! # What it does
//!
//! - **Handshake** ([`connect`], `src/xen.rs`): finds `device/vif/0` in xenstore
//!   (morgana-xen's `bus`), reads the MAC and MTU the toolstack wrote, checks that
//!   the backend copies received frames into our pages (`feature-rx-copy`, the only
//!   receive mode netback has), waits for the backend to reach `InitWait`, shares its
//!   rings and one event channel, switches to `Connected` and waits for the backend to
//!   follow. A backend that stays in `InitWait` after we connect is the classic sign of
//!   a vif hotplug script that never wrote `hotplug-status`; netback passes traffic
//!   anyway, so this is a warning naming the cause, not a failure. A missing device, a
//!   backend that closes, or one that never shows up is an error naming the node and
//!   the state it is stuck in.
//! - **Rings and buffers** ([`Netfront`], `src/net.rs`, over morgana-xen's `ring`): one
//!   TX and one RX shared ring of 256 entries; 128 receive pages and 128 half-page transmit
//!   buffers granted once at start (768 KiB), so frames are neither allocated nor
//!   copied by the driver. Event indices suppress needless notifications both ways.
//! - **Watchdog** (`src/watchdog.rs`): once a second the driver is woken whatever
//!   happens, takes responses no event announced, notifies the backend again when
//!   transmit requests stay unanswered, and posts again receive buffers the backend no
//!   longer holds — each logged and counted in [`Stats`] — so a lost notification
//!   costs at most a second or two, never the network.
//! - **Diagnostics**: on the kernel's debug key (`xl sysrq <domain> d`) the driver logs
//!   its rings' shared and private indices, its buffers and counters, and asks the stack
//!   above to log its sockets (`NetIf::diagnostics_requested`).
//!
//! # What the backend gets, and what we leave out (decisions)
//!
//! We write the flat single-queue keys: `tx-ring-ref`, `rx-ring-ref`, `event-channel`,
//! `request-rx-copy = 1`, `feature-rx-notify = 1` (netback requires both), and
//! `feature-no-csum-offload = 1` (frames arrive with complete checksums: smoltcp
//! verifies them and computes its own). Left out, because the stack above gains
//! nothing measurable from them at 1500-byte frames under one vCPU: scatter-gather
//! (`feature-sg`), segmentation offload (`feature-gso-*`), multiple queues, split event
//! channels, the control ring, XDP headroom and IPv6 checksum offload.
//!
//! # Structure
//!
//! Like morgana-virtio, the driver is generic over a [`Hal`] (morgana-xen's device HAL:
//! pages, grants, the event channel): morgana-pvh's `xen::XenHal` is the kernel's, and
//! the host tests run the same code against a simulated backend (`src/tests.rs`) that reads our requests and
//! writes responses the way netback does — including a backend that answers nothing
//! (ring full), one that answers garbage ids, and one that corrupts the indices.
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks, missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod net;
mod watchdog;
pub mod xen;

#[cfg(test)]
mod tests;

use core::fmt;
use morgana_xen::XenError;
use morgana_xen::bus::BusError;

pub use morgana_xen::device::Hal;
pub use net::{Netfront, RX_BUFFERS, RxToken, Stats, TX_BUFFER_BYTES, TX_BUFFERS, TxToken};
pub use watchdog::{LATE as WATCHDOG_LATE, PERIOD as WATCHDOG_PERIOD};
pub use xen::{XenNet, connect};

/// Why the Xen network interface could not be driven.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The xenbus handshake failed (no device, backend closed or stuck, xenstore).
    Bus(BusError),
    /// A Xen operation failed (grant table, event channel, memory to share).
    Xen(XenError),
    /// The backend does not copy received frames into our pages.
    NoRxCopy {
        /// The backend's node.
        backend: alloc::string::String,
    },
    /// The toolstack's `mac` key does not parse.
    BadMac {
        /// Its value.
        value: alloc::string::String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bus(e) => write!(f, "netfront: {e}"),
            Error::Xen(e) => write!(f, "netfront: {e}"),
            Error::NoRxCopy { backend } => write!(
                f,
                "netfront: backend {backend} does not offer feature-rx-copy, the only \
                 receive mode this driver speaks"
            ),
            Error::BadMac { value } => {
                let value = value.escape_default();
                write!(
                    f,
                    "netfront: the vif's mac \"{value}\" is not six hex pairs"
                )
            }
        }
    }
}

impl From<BusError> for Error {
    fn from(e: BusError) -> Error {
        Error::Bus(e)
    }
}

impl From<XenError> for Error {
    fn from(e: XenError) -> Error {
        Error::Xen(e)
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(value: &str) -> Option<morgana_signatures::MacAddress> {
    let mut mac = [0u8; 6];
    let mut parts = value.trim_end_matches('\0').trim().split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts
        .next()
        .is_none()
        .then_some(morgana_signatures::MacAddress(mac))
}
