//! The kernel's side: finding the disk in xenstore and the handshake with the backend
//! ([`connect`]) over morgana-pvh's store client and [`XenHal`].

use crate::handshake;
use crate::{Blkfront, Config, Error};
use alloc::boxed::Box;
use morgana_pvh::xen::XenHal;
use morgana_pvh::xen::bus::{Frontend, State, StoreWait};
use morgana_pvh::xen::store::{self, StoreError};

/// blkfront as the kernel runs it.
pub type XenBlk = Blkfront<XenHal>;

/// How long the backend may take to appear (`InitWait`): the toolstack creates it while
/// the domain boots.
const APPEAR_MS: u64 = 10_000;
/// How long the backend may take to follow us to `Connected` (its hotplug script runs
/// first).
const CONNECT_MS: u64 = 10_000;
/// Look at the backend's state at least this often while waiting.
const POLL_MS: u64 = 20;

/// Finds the domain's first virtual block device and connects to its backend (see the
/// crate docs).
pub async fn connect() -> Result<XenBlk, Error> {
    connect_nth(0).await
}

/// Finds the domain's `n`th virtual block device (0 first, by device number: `xvda`
/// before `xvdb`) and connects to its backend.
pub async fn connect_nth(n: usize) -> Result<XenBlk, Error> {
    let mut store = store::open()?;
    let devices = match store.directory("device/vbd") {
        Ok(d) => d,
        Err(StoreError::Xen(e)) if e == "ENOENT" => return Err(Error::NoDisk),
        Err(error) => {
            return Err(Error::Bus(morgana_pvh::xen::bus::BusError::Store {
                path: "device/vbd".into(),
                error,
            }));
        }
    };
    let index = nth_device(&devices, n)?;
    let fe = Frontend::find(&mut store, "vbd", index)?;
    let state = fe
        .wait_ready(&mut store, &mut StoreWait::new(APPEAR_MS, POLL_MS))
        .await?;
    log::debug!("blkfront: backend {} in state {state}", fe.backend);

    let hal = XenHal::bind(fe.backend_id)?;
    let port = hal.port();
    let mut blk = Blkfront::new(hal, Config::default())?;
    let wait = &mut StoreWait::new(CONNECT_MS, POLL_MS);
    let geometry = handshake::connect(&mut store, &fe, wait, blk.ring_ref(), port).await?;
    blk.attach(geometry);
    log::info!(
        "blkfront {}: {} MiB in {}-byte sectors{}{}{}, backend {} (domain {}), event channel {port}, {} slots of {} KiB",
        fe.node,
        (geometry.sectors * geometry.sector_size as u64) >> 20,
        geometry.sector_size,
        if geometry.read_only {
            ", read-only"
        } else {
            ""
        },
        match geometry.flush {
            crate::Flush::Cache => ", flush",
            crate::Flush::Barrier => ", barrier",
            crate::Flush::None => "",
        },
        if geometry.discard { ", discard" } else { "" },
        fe.backend,
        fe.backend_id,
        blk.slots(),
        blk.chunk_bytes() / 1024,
    );
    // The watchdog's question when the backend stops answering: did it close? Then we
    // close too, as xenbus expects.
    blk.set_probe(Box::new(move || match fe.backend_state(&mut store) {
        Ok(s) if s.is_closing() => {
            let _ = fe.switch_state(&mut store, State::Closed);
            true
        }
        _ => false,
    }));
    Ok(blk)
}

/// The `n`th device number of a `device/vbd` listing, in ascending order (xvda is
/// 51712, xvdb 51728, ...); entries that are not numbers are not devices.
pub fn nth_device(entries: &[alloc::string::String], n: usize) -> Result<u32, Error> {
    let numbers: alloc::vec::Vec<u32> = entries.iter().filter_map(|d| d.parse().ok()).collect();
    // The smallest number above the last one found, n + 1 times: a domain has a handful
    // of disks, and this needs no sort (a sort's code is ~2 KB of kernel per type).
    let mut found = 0;
    let mut last = None;
    while let Some(next) = numbers
        .iter()
        .copied()
        .filter(|&x| last.is_none_or(|l| x > l))
        .min()
    {
        if found == n {
            return Ok(next);
        }
        found += 1;
        last = Some(next);
    }
    match found {
        0 => Err(Error::NoDisk),
        _ => Err(Error::TooFewDisks {
            wanted: n + 1,
            found,
        }),
    }
}
