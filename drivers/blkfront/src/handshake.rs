//! The blkif handshake, generic over morgana-xen's xenbus [`Store`] and [`Wait`]: the
//! kernel runs it over its xenstore client (`src/xen.rs`), the host tests over a
//! scripted store.
//!
//! The backend (Linux's blkback, or a user-space one such as qemu's `qdisk`) writes the
//! disk's description when it switches to `Connected` — after it has our ring and its
//! hotplug script has given it a device — so [`connect`] reads it only then.

use crate::Error;
use crate::blkif::{VDISK_READONLY, WIRE_SECTOR};
use alloc::format;
use alloc::string::{String, ToString};
use morgana_xen::bus::{Connection, Frontend, Store, Wait};

/// How the backend makes completed writes durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// It has no volatile cache: a completed write is durable.
    None,
    /// `BLKIF_OP_FLUSH_DISKCACHE` (`feature-flush-cache`).
    Cache,
    /// `BLKIF_OP_WRITE_BARRIER` without data (`feature-barrier` only).
    Barrier,
}

/// The disk as the backend described it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// The virtual device number (the `vbd` node's index, e.g. 51712 for `xvda`), sent
    /// as every request's `handle`.
    pub handle: u16,
    /// Sectors of [`Geometry::sector_size`] bytes.
    pub sectors: u64,
    /// Bytes per sector (`sector-size`): 512 or 4096 (any power of two in between).
    pub sector_size: usize,
    /// Writes are refused (`info` has `VDISK_READONLY`, or `mode` is `r`).
    pub read_only: bool,
    /// How `flush` is done.
    pub flush: Flush,
    /// The backend takes `BLKIF_OP_DISCARD`.
    pub discard: bool,
}

/// The frontend keys [`connect`] publishes: the ring, the event channel and our ABI.
pub fn keys(ring_ref: u32, port: u32) -> [(&'static str, String); 3] {
    [
        ("ring-ref", format!("{ring_ref}")),
        ("event-channel", format!("{port}")),
        ("protocol", "x86_64-abi".to_string()),
    ]
}

/// Steps 2 to 4 of the handshake (the backend is ready, see
/// `Frontend::wait_ready`): publishes the ring and event channel, switches to
/// `Connected`, waits for the backend to follow, and reads the disk's description.
pub async fn connect<S: Store, W: Wait>(
    store: &mut S,
    fe: &Frontend,
    wait: &mut W,
    ring_ref: u32,
    port: u32,
) -> Result<Geometry, Error> {
    let keys = keys(ring_ref, port);
    let keys = keys.each_ref().map(|(k, v)| (*k, v.as_str()));
    if let Connection::StuckInInitWait { waited_ms } = fe.connect(store, wait, &keys).await? {
        return Err(Error::NotConnected {
            backend: fe.backend.clone(),
            waited_ms,
        });
    }
    describe(store, fe)
}

/// Reads the disk's description from the backend's node.
pub fn describe<S: Store>(store: &mut S, fe: &Frontend) -> Result<Geometry, Error> {
    let bad = |key: &str, value: Option<&str>, why| Error::BadDisk {
        path: format!("{}/{key}", fe.backend),
        value: value.unwrap_or("").to_string(),
        why,
    };
    let read = |store: &mut S, key: &str| -> Result<Option<String>, Error> {
        Ok(fe
            .read_backend(store, key)?
            .map(|v| v.trim_end_matches('\0').trim().to_string()))
    };
    let number = |store: &mut S, key: &str, default: Option<u64>| -> Result<u64, Error> {
        match read(store, key)? {
            None => default.ok_or_else(|| bad(key, None, "missing")),
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| bad(key, Some(&v), "not a decimal number")),
        }
    };
    let flag = |store: &mut S, key: &str| -> Result<bool, Error> {
        Ok(read(store, key)?.is_some_and(|v| v == "1"))
    };

    let wire_sectors = number(store, "sectors", None)?;
    let sector_size = number(store, "sector-size", Some(WIRE_SECTOR))?;
    if !(512..=4096).contains(&sector_size) || !sector_size.is_power_of_two() {
        return Err(bad(
            "sector-size",
            Some(&format!("{sector_size}")),
            "not a power of two from 512 to 4096",
        ));
    }
    let info = number(store, "info", Some(0))?;
    let mode_ro = read(store, "mode")?.is_some_and(|m| m == "r");
    let flush = if flag(store, "feature-flush-cache")? {
        Flush::Cache
    } else if flag(store, "feature-barrier")? {
        Flush::Barrier
    } else {
        Flush::None
    };
    let discard = flag(store, "feature-discard")?;
    let index = fe.node.rsplit('/').next().unwrap_or("");
    let handle = index.parse::<u16>().map_err(|_| Error::BadDisk {
        path: fe.node.clone(),
        value: index.to_string(),
        why: "the device's index is not a 16-bit number",
    })?;
    Ok(Geometry {
        handle,
        sectors: wire_sectors / (sector_size / WIRE_SECTOR),
        sector_size: sector_size as usize,
        read_only: mode_ro || info & u64::from(VDISK_READONLY) != 0,
        flush,
        discard,
    })
}
