//! A PVH kernel that drives two virtio-blk disks: raw sectors on the second, and
//! `morgana-store` (the durable key-value store) on the first. `tests/blk.rs` boots it
//! twice on the same disk images.
//!
//! - `mode=first`: disk 1 must start with the sector `MORGANA-DISK-TEST`; 256 KiB of a
//!   pattern are written after it (many requests in flight), flushed, read back and
//!   compared. Disk 0 (blank) is formatted as a store; 300 keys are put (values from 0
//!   to 200 KiB), synced, read back.
//! - `mode=second`: the store on disk 0 is mounted (a fresh boot: everything comes from
//!   the disk) and every key checked; disk 1, attached read-only this time, still holds
//!   the pattern, and writing or flushing it is refused.
//!
//! Each step prints a line; the kernel powers off when all passed, and fails (exit
//! status 1 through isa-debug-exit) at the first that does not.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use morgana_pvh::Platform;
use morgana_signatures::{Block, BlockError, BlockErrorKind, StartError};
use morgana_store::{Config, FormatOptions, Store};
use morgana_virtio::pvh::InterruptPreference;
use morgana_virtio::{BlkConfig, VirtioBlk};

const SIGNATURE: &[u8] = b"MORGANA-DISK-TEST";
const PATTERN_BYTES: usize = 256 * 1024;
const KEYS: u32 = 300;

fn fail(what: &'static str) -> StartError {
    StartError::new("disk", &what)
}

/// Byte `i` of the raw pattern.
fn pattern(i: usize) -> u8 {
    (i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8
}

/// The value of key `k`.
fn value(k: u32) -> Vec<u8> {
    let len = if k.is_multiple_of(50) {
        200 * 1024
    } else {
        (k as usize * 997) % 5000
    };
    (0..len)
        .map(|i| (i as u32 ^ k.wrapping_mul(0x9E37_79B9)) as u8)
        .collect()
}

fn key(k: u32) -> Vec<u8> {
    let mut v = b"key/".to_vec();
    let mut d = [0u8; 10];
    let mut n = k;
    let mut i = d.len();
    loop {
        i -= 1;
        d[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    v.extend_from_slice(&d[i..]);
    v
}

async fn raw_first(p: &'static Platform, disk: &VirtioBlk) -> Result<(), StartError> {
    let console = p.console();
    let mut first = vec![0u8; disk.sector_size()];
    disk.read(0, &mut first)
        .await
        .map_err(|e| StartError::new("disk1", &e))?;
    if !first.starts_with(SIGNATURE) {
        return Err(fail("disk 1 does not start with its signature"));
    }
    let data: Vec<u8> = (0..PATTERN_BYTES).map(pattern).collect();
    disk.write(8, &data)
        .await
        .map_err(|e| StartError::new("disk1", &e))?;
    disk.flush()
        .await
        .map_err(|e| StartError::new("disk1", &e))?;
    let mut back = vec![0u8; PATTERN_BYTES];
    disk.read(8, &mut back)
        .await
        .map_err(|e| StartError::new("disk1", &e))?;
    if back != data {
        return Err(fail("disk 1 read back something else"));
    }
    let s = disk.stats();
    console.print(format_args!(
        "disk1: wrote, flushed and read back {PATTERN_BYTES} bytes: {} requests, at most {} in flight, {} flushes\n",
        s.requests, s.max_in_flight, s.flushes
    ));
    Ok(())
}

async fn raw_second(p: &'static Platform, disk: &VirtioBlk) -> Result<(), StartError> {
    let console = p.console();
    let mut back = vec![0u8; PATTERN_BYTES];
    disk.read(8, &mut back)
        .await
        .map_err(|e| StartError::new("disk1", &e))?;
    if !back.iter().enumerate().all(|(i, &b)| b == pattern(i)) {
        return Err(fail("disk 1 lost its pattern"));
    }
    console.print(format_args!(
        "disk1: read-only {}, pattern intact\n",
        disk.is_read_only()
    ));
    match disk.write(8, &back[..512]).await {
        Err(e) if e.kind() == BlockErrorKind::ReadOnly => {
            console.print(format_args!("disk1: write refused: {e}\n"))
        }
        Err(e) => return Err(StartError::new("disk1", &e)),
        Ok(()) => return Err(fail("a read-only disk took a write")),
    }
    match disk.flush().await {
        Err(e) if e.kind() == BlockErrorKind::ReadOnly => {
            console.print(format_args!("disk1: flush refused: {e}\n"))
        }
        _ => return Err(fail("a read-only disk took a flush")),
    }
    Ok(())
}

async fn store_first(p: &'static Platform, disk: VirtioBlk) -> Result<(), StartError> {
    let console = p.console();
    let options = FormatOptions::new(0x4D47_5053_544F_5245);
    let mut store = Store::open_or_format(disk, options, Config::default())
        .await
        .map_err(|e| StartError::new("store", &e))?;
    let mut bytes = 0;
    for k in 0..KEYS {
        let v = value(k);
        bytes += v.len();
        store
            .put(&key(k), &v, u64::from(k))
            .await
            .map_err(|e| StartError::new("store", &e))?;
    }
    store
        .sync()
        .await
        .map_err(|e| StartError::new("store", &e))?;
    for k in (0..KEYS).step_by(7) {
        let got = store
            .get(&key(k))
            .await
            .map_err(|e| StartError::new("store", &e))?;
        if got.map(|v| v.data != value(k)).unwrap_or(true) {
            return Err(fail("the store read back something else"));
        }
    }
    let s = store.stats();
    console.print(format_args!(
        "store: {KEYS} keys ({bytes} bytes) put and synced, {} segments of {} KiB in use\n",
        s.segments - s.free_segments,
        s.segment_size / 1024
    ));
    Ok(())
}

async fn store_second(p: &'static Platform, disk: VirtioBlk) -> Result<(), StartError> {
    let console = p.console();
    let mut store = Store::open(disk, Config::default())
        .await
        .map_err(|e| StartError::new("store", &e))?;
    if store.len() != u64::from(KEYS) {
        return Err(fail("the store lost keys across the reboot"));
    }
    for k in 0..KEYS {
        let got = store
            .get(&key(k))
            .await
            .map_err(|e| StartError::new("store", &e))?;
        match got {
            Some(v) if v.data == value(k) && v.meta == u64::from(k) => {}
            _ => return Err(fail("a key came back wrong after the reboot")),
        }
    }
    console.print(format_args!(
        "store: mounted after reboot, all {KEYS} keys intact\n"
    ));
    Ok(())
}

async fn main(p: &'static Platform) -> Result<(), StartError> {
    let console = p.console();
    let irq = match p.cmdline_arg("irq") {
        Some("poll") => InterruptPreference::Poll,
        _ => InterruptPreference::Auto,
    };
    let disk0 = VirtioBlk::find_nth(p, 0, BlkConfig::default(), irq)
        .map_err(|e| StartError::new("disk0", &e))?;
    let disk1 = VirtioBlk::find_nth(p, 1, BlkConfig::default(), irq)
        .map_err(|e| StartError::new("disk1", &e))?;
    console.print(format_args!(
        "disk0: {} sectors of {} bytes, flush {}, {} slots\n",
        disk0.sectors(),
        disk0.sector_size(),
        disk0.has_flush(),
        disk0.slots()
    ));
    match p.cmdline_arg("mode") {
        Some("second") => {
            store_second(p, disk0).await?;
            raw_second(p, &disk1).await?;
        }
        _ => {
            raw_first(p, &disk1).await?;
            store_first(p, disk0).await?;
        }
    }
    console.print(format_args!("disk: all checks passed\n"));
    Ok(())
}

morgana_pvh::entry!(main, heap_bytes = 24 << 20, log_level = Info);
