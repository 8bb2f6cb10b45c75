//! The kernel's side of the ABI: one function per call.
//!
//! Only meaningful inside a guest of the tender (at CPL 3 with IOPL 3): anywhere else
//! `out` faults (a Unix process) or talks to whatever device owns the port. Request
//! blocks live on the caller's stack; the tender reads them, and writes their `out`
//! fields, while the vCPU is stopped at the `out` instruction, so no other code runs in
//! between.

use crate::{
    BLOCK_DISCARD, BLOCK_FLUSH, BLOCK_READ, BLOCK_WRITE, BlockRequest, Call, ConsoleWrite,
    DiskInfo, DiskRequest, Entropy, FrameDesc, MAX_CONSOLE_WRITE, MAX_ENTROPY, MAX_FRAMES_PER_CALL,
    NetFrames, Status, Wait,
};
use core::arch::asm;

/// The TSC (ticks at [`crate::BootInfo::tsc_hz`]).
#[inline(always)]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: `rdtsc` only reads the time-stamp counter; the tender leaves CR4.TSD clear,
    // so it is allowed at CPL 3.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Makes `call` with `arg` in EAX.
///
/// # Safety
/// For every call but [`Call::Exit`], `arg` is the address of that call's request block,
/// valid for reads and writes, and every address inside the block names memory valid for
/// what the call does with it (read for data sent, write for data received) for the
/// duration of the call. The tender checks all of it against the guest's memory map, but
/// Rust's aliasing rules are the caller's to keep.
#[inline(always)]
pub unsafe fn call(call: Call, arg: u32) {
    // SAFETY: `out` exits to the tender, which reads and writes only what the caller's
    // contract covers; no `nomem`, so the compiler treats memory as read and written.
    unsafe {
        asm!("out dx, eax", in("dx") call.port(), in("eax") arg, options(nostack, preserves_flags))
    };
}

/// A request block's address as EAX carries it. Blocks live on the stack or in statics,
/// below 4 GiB under the tender; an address above is passed as 0, which the tender
/// refuses with a report instead of acting on a truncated address.
fn block_address<T>(block: *mut T) -> u32 {
    u32::try_from(block as usize).unwrap_or(0)
}

/// Writes `bytes` to the console (split into calls of at most [`MAX_CONSOLE_WRITE`]).
pub fn console_write(bytes: &[u8]) {
    for chunk in bytes.chunks(MAX_CONSOLE_WRITE as usize) {
        let mut block = ConsoleWrite {
            buf: chunk.as_ptr() as u64,
            len: chunk.len() as u64,
        };
        // SAFETY: the block and `chunk` are valid for the call; the tender only reads them.
        unsafe { call(Call::ConsoleWrite, block_address(&raw mut block)) };
    }
}

/// Ends the run with `status` (0: success).
pub fn exit(status: u32) -> ! {
    // SAFETY: Exit passes a value, not an address.
    unsafe { call(Call::Exit, status) };
    // The tender never resumes a guest after Exit.
    loop {
        core::hint::spin_loop();
    }
}

/// Waits until a frame is waiting or the TSC reaches `deadline_tsc`
/// ([`crate::NO_DEADLINE`]: no deadline); returns the events
/// ([`crate::EVENT_NET_RX`], [`crate::EVENT_DEADLINE`]).
pub fn wait(deadline_tsc: u64) -> u32 {
    let mut block = Wait {
        deadline_tsc,
        now_tsc: rdtsc(),
        events: 0,
        status: 0,
    };
    // SAFETY: the block is valid for the call.
    unsafe { call(Call::Wait, block_address(&raw mut block)) };
    block.events
}

fn frames(call_kind: Call, descs: &mut [FrameDesc]) -> Result<usize, Status> {
    let mut block = NetFrames {
        descs: descs.as_mut_ptr() as u64,
        count: descs.len() as u32,
        done: 0,
        status: 0,
        reserved: 0,
    };
    // SAFETY: the block and the descriptors are valid for the call; the callers below
    // build descriptors from live slices (readable for send, exclusively borrowed for
    // receive).
    unsafe { call(call_kind, block_address(&raw mut block)) };
    match Status::from_u32(block.status) {
        Some(Status::Ok) => Ok(block.done as usize),
        Some(other) => Err(other),
        None => Err(Status::IoError),
    }
}

/// Sends up to [`MAX_FRAMES_PER_CALL`] whole Ethernet frames in one call; returns how
/// many the host took (the rest were dropped, as a full NIC queue drops them).
pub fn net_send(frames_out: &[&[u8]]) -> Result<usize, Status> {
    let mut descs = [FrameDesc::default(); MAX_FRAMES_PER_CALL as usize];
    let n = frames_out.len().min(descs.len());
    for (d, f) in descs.iter_mut().zip(&frames_out[..n]) {
        *d = FrameDesc {
            addr: f.as_ptr() as u64,
            len: u32::try_from(f.len()).unwrap_or(u32::MAX),
            flags: 0,
        };
    }
    frames(Call::NetSend, &mut descs[..n])
}

/// One received frame's length and whether it was cut to fit its buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Bytes written into the buffer.
    pub len: usize,
    /// The frame was longer than the buffer; the rest is lost.
    pub truncated: bool,
}

/// Takes waiting frames into `bufs` (at most [`MAX_FRAMES_PER_CALL`]), in order; returns
/// how many were filled, with each one's length in `received`.
pub fn net_recv(bufs: &mut [&mut [u8]], received: &mut [Received]) -> Result<usize, Status> {
    let mut descs = [FrameDesc::default(); MAX_FRAMES_PER_CALL as usize];
    let n = bufs.len().min(received.len()).min(descs.len());
    for (d, b) in descs.iter_mut().zip(bufs[..n].iter_mut()) {
        *d = FrameDesc {
            addr: b.as_mut_ptr() as u64,
            len: u32::try_from(b.len()).unwrap_or(u32::MAX),
            flags: 0,
        };
    }
    let done = frames(Call::NetRecv, &mut descs[..n])?.min(n);
    for (r, d) in received.iter_mut().zip(&descs[..done]) {
        *r = Received {
            len: d.len as usize,
            truncated: d.flags & crate::FRAME_TRUNCATED != 0,
        };
    }
    Ok(done)
}

/// Fills `buf` with random bytes from the host.
pub fn entropy(buf: &mut [u8]) -> Result<(), Status> {
    for chunk in buf.chunks_mut(MAX_ENTROPY as usize) {
        let mut block = Entropy {
            buf: chunk.as_mut_ptr() as u64,
            len: chunk.len() as u64,
            status: 0,
            reserved: 0,
        };
        // SAFETY: the block and `chunk` (exclusively borrowed) are valid for the call.
        unsafe { call(Call::Entropy, block_address(&raw mut block)) };
        status(block.status)?;
    }
    Ok(())
}

fn status(raw: u32) -> Result<(), Status> {
    match Status::from_u32(raw) {
        Some(Status::Ok) => Ok(()),
        Some(other) => Err(other),
        None => Err(Status::IoError),
    }
}

fn block(op: u32, sector: u64, buf: u64, len: usize) -> Result<(), Status> {
    let mut block = BlockRequest {
        op,
        status: 0,
        sector,
        buf,
        len: len as u64,
    };
    // SAFETY: the block is valid for the call; the callers pass a live buffer of `len`
    // bytes (exclusively borrowed for reads).
    unsafe { call(Call::Block, block_address(&raw mut block)) };
    status(block.status)
}

/// Reads `buf.len()` bytes (a multiple of the sector size) from `sector` on.
pub fn block_read(sector: u64, buf: &mut [u8]) -> Result<(), Status> {
    block(BLOCK_READ, sector, buf.as_mut_ptr() as u64, buf.len())
}

/// Writes `data` (a multiple of the sector size) from `sector` on.
pub fn block_write(sector: u64, data: &[u8]) -> Result<(), Status> {
    block(BLOCK_WRITE, sector, data.as_ptr() as u64, data.len())
}

/// Makes every completed write durable.
pub fn block_flush() -> Result<(), Status> {
    block(BLOCK_FLUSH, 0, 0, 0)
}

/// (Version 2) Describes disk `disk` (0 first, in the order the tender was given them):
/// `Err(Status::NoDevice)` when the tender has no such disk.
pub fn disk_info(disk: u32) -> Result<DiskInfo, Status> {
    let mut block = DiskInfo {
        disk,
        ..DiskInfo::default()
    };
    // SAFETY: the block is valid for the call; the tender writes only its fields.
    unsafe { call(Call::DiskInfo, block_address(&raw mut block)) };
    status(block.status).map(|()| block)
}

fn disk(disk: u32, op: u32, sector: u64, buf: u64, len: usize) -> Result<(), Status> {
    let mut block = DiskRequest {
        disk,
        op,
        sector,
        buf,
        len: len as u64,
        status: 0,
        reserved: 0,
    };
    // SAFETY: the block is valid for the call; the callers pass a live buffer of `len`
    // bytes (exclusively borrowed for reads), or none (flush, discard).
    unsafe { call(Call::Disk, block_address(&raw mut block)) };
    status(block.status)
}

/// (Version 2) Reads `buf.len()` bytes (whole sectors, at most
/// [`crate::MAX_BLOCK_TRANSFER`]) from `sector` of disk `n`.
pub fn disk_read(n: u32, sector: u64, buf: &mut [u8]) -> Result<(), Status> {
    disk(n, BLOCK_READ, sector, buf.as_mut_ptr() as u64, buf.len())
}

/// (Version 2) Writes `data` (whole sectors, at most [`crate::MAX_BLOCK_TRANSFER`]) to
/// disk `n` from `sector` on.
pub fn disk_write(n: u32, sector: u64, data: &[u8]) -> Result<(), Status> {
    disk(n, BLOCK_WRITE, sector, data.as_ptr() as u64, data.len())
}

/// (Version 2) Returns once every write to disk `n` completed before it is durable.
pub fn disk_flush(n: u32) -> Result<(), Status> {
    disk(n, BLOCK_FLUSH, 0, 0, 0)
}

/// (Version 2) Tells disk `n` that `len` bytes (whole sectors) from `sector` hold nothing
/// of value.
pub fn disk_discard(n: u32, sector: u64, len: usize) -> Result<(), Status> {
    disk(n, BLOCK_DISCARD, sector, 0, len)
}
