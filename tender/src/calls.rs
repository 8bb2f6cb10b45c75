//! The guest's calls: each request is validated against the guest's memory map before
//! the tender touches anything it names, then carried out on the host's devices.
//!
//! Validation, for every call: the request block is 8-byte aligned and lies in memory the
//! kernel may write (so neither the tender's pages nor the kernel's read-only ones); every
//! buffer it names lies inside guest memory with the rights the call needs (readable for
//! what the host takes, writable for what the host gives); lengths and counts are within
//! the ABI's limits; reserved fields are zero. A request that fails any of this is a
//! [`BadRequest`]: the guest is stopped with a report naming the call, the field and the
//! region it reached, and the tender carries on. Host-side failures (a tap error, a disk
//! error, a missing device) are soft: the block's `status` says so.

use crate::disk::{Disk, SECTOR};
use crate::image::Rights;
use crate::layout::{AccessError, Layout};
use crate::net::Net;
use morgana_tender_abi::{self as abi, Call, Status};
use std::io;
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress, GuestMemoryError, GuestMemoryMmap, WriteVolatile};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A request the tender refuses: the guest is stopped with this as the report.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadRequest {
    /// The request block is not 8-byte aligned.
    #[error("{call}: its request block at {addr:#x} is not 8-byte aligned")]
    Misaligned {
        /// The call.
        call: &'static str,
        /// The block's address.
        addr: u64,
    },
    /// The request block is not in writable guest memory.
    #[error("{call}: its request block: {err}")]
    Block {
        /// The call.
        call: &'static str,
        /// Why.
        err: AccessError,
    },
    /// A buffer the block names is out of bounds or lacks the needed rights.
    #[error("{call}: {what}: {err}")]
    Memory {
        /// The call.
        call: &'static str,
        /// Which buffer.
        what: String,
        /// Why.
        err: AccessError,
    },
    /// A length above the ABI's limit.
    #[error("{call}: {what} is {len} bytes; at most {max} are allowed")]
    TooLong {
        /// The call.
        call: &'static str,
        /// Which length.
        what: &'static str,
        /// The length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// Too many frames in one call.
    #[error("{call}: {count} frames in one call; at most {max} are allowed")]
    TooMany {
        /// The call.
        call: &'static str,
        /// How many.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// A frame shorter than an Ethernet header or longer than the MTU allows.
    #[error("{call}: frame {index} is {len} bytes; a frame has {min} to {max}")]
    FrameLength {
        /// The call.
        call: &'static str,
        /// Descriptor index.
        index: usize,
        /// Its length.
        len: u32,
        /// Smallest.
        min: u64,
        /// Largest.
        max: u64,
    },
    /// An operation this ABI version does not have.
    #[error("{call}: unknown operation {op}")]
    UnknownOp {
        /// The call.
        call: &'static str,
        /// The operation.
        op: u32,
    },
    /// A reserved field is not zero.
    #[error("{call}: a reserved field holds {value:#x}; it must be 0")]
    Reserved {
        /// The call.
        call: &'static str,
        /// The value.
        value: u32,
    },
    /// A field the operation does not use is not zero.
    #[error("{call}: operation {op} does not use {field}, which holds {value:#x}; it must be 0")]
    Unused {
        /// The call.
        call: &'static str,
        /// The operation.
        op: u32,
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A block transfer that is not whole sectors.
    #[error("{call}: {len} bytes is not a whole number of {SECTOR}-byte sectors")]
    PartialSector {
        /// The call.
        call: &'static str,
        /// The length.
        len: u64,
    },
    /// `out` to a port that is no call.
    #[error(
        "out to port {port:#x}: not a call of tender ABI version {}",
        abi::ABI_VERSION
    )]
    UnknownPort {
        /// The port.
        port: u16,
    },
    /// A call made with `out dx, al` or `out dx, ax`.
    #[error("out to port {port:#x} ({call}) with {size} byte(s): calls pass 32 bits (out dx, eax)")]
    WrongWidth {
        /// The port.
        port: u16,
        /// The call.
        call: &'static str,
        /// Bytes written.
        size: usize,
    },
    /// `in` from any port.
    #[error("in from port {port:#x}: the tender ABI has no input ports")]
    InPort {
        /// The port.
        port: u16,
    },
    /// A kernel writing to one of the tender's fault-gate ports.
    #[error("out to port {port:#x}: a fault gate, reserved for the tender's exception stubs")]
    GatePort {
        /// The port.
        port: u16,
    },
}

/// Why a call stops the guest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// The request is invalid.
    #[error("bad request: {0}")]
    Bad(#[from] BadRequest),
    /// A wait nothing could ever end.
    #[error("the guest waits with no deadline and no network device: nothing could ever wake it")]
    WaitsForever,
}

/// What a handled call leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Done {
    /// Resume the guest. `effect`: the call did something (moved bytes, or waited);
    /// a long run of calls without effect is a runaway guest.
    Continue {
        /// Whether it did anything.
        effect: bool,
    },
    /// The guest asked to end with this status.
    Exit(u32),
    /// (Summon) the guest has been idle for the idle time while waiting: stop it.
    Idle,
}

/// What a call needs to know about the machine.
pub struct Context<'a> {
    /// Guest memory.
    pub mem: &'a GuestMemoryMmap,
    /// Its map.
    pub layout: &'a Layout,
    /// The guest's TSC rate.
    pub tsc_hz: u64,
    /// (Summon) stop the guest when it has had no traffic for this long.
    pub idle: Option<Duration>,
}

/// The devices and counters behind the calls. `C` is where console output goes (the
/// tender's standard output; a buffer in tests).
#[derive(Debug)]
pub struct Devices<C> {
    /// Console output.
    pub console: C,
    /// The network device, if any.
    pub net: Option<Net>,
    /// The disks, in the order the tender was given them (disk 0 first).
    pub disks: Vec<Disk>,
    /// Calls made, per [`Call`] (index: the call number).
    pub counts: [u64; Call::ALL.len()],
    /// When the guest first wrote to the console (since the last reset).
    pub first_output: Option<Instant>,
}

fn read_block<T>(cx: &Context<'_>, call: Call, arg: u32) -> Result<T, BadRequest>
where
    T: FromBytes + IntoBytes + KnownLayout + Immutable,
{
    let addr = u64::from(arg);
    let call = call.name();
    if !addr.is_multiple_of(8) {
        return Err(BadRequest::Misaligned { call, addr });
    }
    cx.layout
        .check(addr, size_of::<T>() as u64, Rights::RW)
        .map_err(|err| BadRequest::Block { call, err })?;
    let mut block = T::new_zeroed();
    cx.mem
        .read_slice(block.as_mut_bytes(), GuestAddress(addr))
        .map_err(|_| BadRequest::Block {
            call,
            err: AccessError::Outside {
                addr,
                len: size_of::<T>() as u64,
                size: cx.layout.size,
            },
        })?;
    Ok(block)
}

fn write_back<T: IntoBytes + Immutable>(cx: &Context<'_>, arg: u32, block: &T) {
    // Checked writable by `read_block`.
    let _ = cx
        .mem
        .write_slice(block.as_bytes(), GuestAddress(u64::from(arg)));
}

fn check(
    cx: &Context<'_>,
    call: Call,
    what: impl FnOnce() -> String,
    addr: u64,
    len: u64,
    rights: Rights,
) -> Result<(), BadRequest> {
    cx.layout
        .check(addr, len, rights)
        .map_err(|err| BadRequest::Memory {
            call: call.name(),
            what: what(),
            err,
        })
}

fn would_block(e: &GuestMemoryError) -> bool {
    matches!(e, GuestMemoryError::IOError(io) if io.kind() == io::ErrorKind::WouldBlock)
}

/// Converts TSC ticks to time.
pub fn ticks_to_duration(ticks: u64, hz: u64) -> Duration {
    let hz = hz.max(1);
    let secs = ticks / hz;
    let nanos = ((ticks % hz) as u128 * 1_000_000_000 / hz as u128) as u32;
    Duration::new(secs, nanos)
}

/// Fills `buf` from the host's random generator.
pub fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is valid for writes of its length.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

impl<C: WriteVolatile> Devices<C> {
    /// Devices with console output to `console`.
    pub fn new(console: C, net: Option<Net>, disks: Vec<Disk>) -> Devices<C> {
        Devices {
            console,
            net,
            disks,
            counts: [0; Call::ALL.len()],
            first_output: None,
        }
    }

    /// Carries out `call` with EAX = `arg`.
    pub fn call(&mut self, call: Call, arg: u32, cx: &Context<'_>) -> Result<Done, CallError> {
        self.counts[call as usize] += 1;
        let effect = match call {
            Call::Exit => return Ok(Done::Exit(arg)),
            Call::ConsoleWrite => self.console_write(arg, cx)?,
            Call::Wait => return self.wait(arg, cx),
            Call::NetSend => self.net_send(arg, cx)?,
            Call::NetRecv => self.net_recv(arg, cx)?,
            Call::Entropy => self.entropy(arg, cx)?,
            Call::Block => self.block(arg, cx)?,
            Call::DiskInfo => self.disk_info(arg, cx)?,
            Call::Disk => self.disk(arg, cx)?,
        };
        Ok(Done::Continue { effect })
    }

    fn console_write(&mut self, arg: u32, cx: &Context<'_>) -> Result<bool, BadRequest> {
        let call = Call::ConsoleWrite;
        let b: abi::ConsoleWrite = read_block(cx, call, arg)?;
        if b.len > abi::MAX_CONSOLE_WRITE {
            return Err(BadRequest::TooLong {
                call: call.name(),
                what: "the text",
                len: b.len,
                max: abi::MAX_CONSOLE_WRITE,
            });
        }
        check(cx, call, || "its text".into(), b.buf, b.len, Rights::R)?;
        if b.len > 0 {
            self.first_output.get_or_insert_with(Instant::now);
            // A console nobody reads (a closed pipe) must not stop the guest.
            let _ = cx.mem.write_all_volatile_to(
                GuestAddress(b.buf),
                &mut self.console,
                b.len as usize,
            );
        }
        Ok(b.len > 0)
    }

    /// Reads and checks a [`abi::NetFrames`] block and its descriptors.
    fn frames(
        &self,
        call: Call,
        arg: u32,
        cx: &Context<'_>,
    ) -> Result<(abi::NetFrames, Vec<abi::FrameDesc>), BadRequest> {
        let b: abi::NetFrames = read_block(cx, call, arg)?;
        if b.reserved != 0 {
            return Err(BadRequest::Reserved {
                call: call.name(),
                value: b.reserved,
            });
        }
        if b.count > abi::MAX_FRAMES_PER_CALL {
            return Err(BadRequest::TooMany {
                call: call.name(),
                count: b.count,
                max: abi::MAX_FRAMES_PER_CALL,
            });
        }
        let bytes = u64::from(b.count) * size_of::<abi::FrameDesc>() as u64;
        if !b.descs.is_multiple_of(8) {
            return Err(BadRequest::Misaligned {
                call: call.name(),
                addr: b.descs,
            });
        }
        check(
            cx,
            call,
            || "its descriptor array".into(),
            b.descs,
            bytes,
            Rights::RW,
        )?;
        let mut descs = vec![abi::FrameDesc::default(); b.count as usize];
        cx.mem
            .read_slice(descs.as_mut_bytes(), GuestAddress(b.descs))
            .map_err(|_| BadRequest::Memory {
                call: call.name(),
                what: "its descriptor array".into(),
                err: AccessError::Outside {
                    addr: b.descs,
                    len: bytes,
                    size: cx.layout.size,
                },
            })?;
        Ok((b, descs))
    }

    fn net_send(&mut self, arg: u32, cx: &Context<'_>) -> Result<bool, BadRequest> {
        let call = Call::NetSend;
        let (mut b, descs) = self.frames(call, arg, cx)?;
        let Some(net) = self.net.as_mut() else {
            b.done = 0;
            b.status = Status::NoDevice as u32;
            write_back(cx, arg, &b);
            return Ok(false);
        };
        let max = net.max_frame();
        for (index, d) in descs.iter().enumerate() {
            if d.flags != 0 {
                return Err(BadRequest::Reserved {
                    call: call.name(),
                    value: d.flags,
                });
            }
            if u64::from(d.len) < 14 || u64::from(d.len) > max {
                return Err(BadRequest::FrameLength {
                    call: call.name(),
                    index,
                    len: d.len,
                    min: 14,
                    max,
                });
            }
            check(
                cx,
                call,
                || format!("frame {index}"),
                d.addr,
                d.len.into(),
                Rights::R,
            )?;
        }
        b.done = 0;
        b.status = Status::Ok as u32;
        for d in &descs {
            match cx
                .mem
                .write_all_volatile_to(GuestAddress(d.addr), net.file(), d.len as usize)
            {
                Ok(()) => {
                    b.done += 1;
                    net.frames_out += 1;
                }
                Err(e) if would_block(&e) => net.dropped_out += 1,
                Err(_) => {
                    b.status = Status::IoError as u32;
                    break;
                }
            }
        }
        if b.done > 0 {
            let now = Instant::now();
            net.first_send.get_or_insert(now);
            net.last_traffic = now;
        }
        write_back(cx, arg, &b);
        Ok(!descs.is_empty())
    }

    fn net_recv(&mut self, arg: u32, cx: &Context<'_>) -> Result<bool, BadRequest> {
        let call = Call::NetRecv;
        let (mut b, mut descs) = self.frames(call, arg, cx)?;
        let Some(net) = self.net.as_mut() else {
            b.done = 0;
            b.status = Status::NoDevice as u32;
            write_back(cx, arg, &b);
            return Ok(false);
        };
        for (index, d) in descs.iter().enumerate() {
            check(
                cx,
                call,
                || format!("buffer {index}"),
                d.addr,
                d.len.into(),
                Rights::RW,
            )?;
        }
        net.first_recv.get_or_insert_with(Instant::now);
        let mut syns = 0;
        b.done = 0;
        b.status = Status::Ok as u32;
        for d in &mut descs {
            match net.next_frame() {
                Ok(Some(frame)) => {
                    if crate::net::is_tcp_syn(frame) {
                        syns += 1;
                    }
                    let n = frame.len().min(d.len as usize);
                    let _ = cx.mem.write_slice(&frame[..n], GuestAddress(d.addr));
                    d.flags = if n < frame.len() {
                        abi::FRAME_TRUNCATED
                    } else {
                        0
                    };
                    d.len = n as u32;
                    b.done += 1;
                }
                Ok(None) => break,
                Err(_) => {
                    b.status = Status::IoError as u32;
                    break;
                }
            }
        }
        net.syns_in += syns;
        if b.done > 0 {
            net.frames_in += u64::from(b.done);
            net.last_traffic = Instant::now();
            let filled = &descs[..b.done as usize];
            let _ = cx.mem.write_slice(filled.as_bytes(), GuestAddress(b.descs));
        }
        write_back(cx, arg, &b);
        Ok(b.done > 0)
    }

    fn entropy(&mut self, arg: u32, cx: &Context<'_>) -> Result<bool, BadRequest> {
        let call = Call::Entropy;
        let mut b: abi::Entropy = read_block(cx, call, arg)?;
        if b.reserved != 0 {
            return Err(BadRequest::Reserved {
                call: call.name(),
                value: b.reserved,
            });
        }
        if b.len > abi::MAX_ENTROPY {
            return Err(BadRequest::TooLong {
                call: call.name(),
                what: "the buffer",
                len: b.len,
                max: abi::MAX_ENTROPY,
            });
        }
        check(cx, call, || "its buffer".into(), b.buf, b.len, Rights::RW)?;
        let mut bytes = vec![0u8; b.len as usize];
        b.status = match getrandom(&mut bytes) {
            Ok(()) => {
                let _ = cx.mem.write_slice(&bytes, GuestAddress(b.buf));
                Status::Ok as u32
            }
            Err(_) => Status::IoError as u32,
        };
        write_back(cx, arg, &b);
        Ok(b.len > 0)
    }

    /// Version 1's `block`: a request on the first disk.
    fn block(&mut self, arg: u32, cx: &Context<'_>) -> Result<bool, BadRequest> {
        let call = Call::Block;
        let mut b: abi::BlockRequest = read_block(cx, call, arg)?;
        if b.op == abi::BLOCK_DISCARD {
            // Version 2's operation, not on version 1's call.
            return Err(BadRequest::UnknownOp {
                call: call.name(),
                op: b.op,
            });
        }
        // Version 1 leaves flush's other fields unchecked, and lets a read-only disk flush.
        let (sector, buf, len) = if b.op == abi::BLOCK_FLUSH {
            (0, 0, 0)
        } else {
            (b.sector, b.buf, b.len)
        };
        let read_only_flush = b.op == abi::BLOCK_FLUSH;
        b.status = self.disk_request(call, cx, 0, b.op, sector, buf, len, read_only_flush)? as u32;
        write_back(cx, arg, &b);
        Ok(b.status != Status::NoDevice as u32)
    }

    fn disk_info(&mut self, arg: u32, cx: &Context<'_>) -> Result<bool, BadRequest> {
        let call = Call::DiskInfo;
        let mut b: abi::DiskInfo = read_block(cx, call, arg)?;
        let disk = usize::try_from(b.disk).ok().and_then(|i| self.disks.get(i));
        b = match disk {
            Some(d) => abi::DiskInfo {
                disk: b.disk,
                status: Status::Ok as u32,
                sectors: d.sectors,
                sector_size: SECTOR as u32,
                flags: abi::BLOCK_PRESENT | if d.read_only { abi::BLOCK_READ_ONLY } else { 0 },
            },
            None => abi::DiskInfo {
                disk: b.disk,
                status: Status::NoDevice as u32,
                ..abi::DiskInfo::default()
            },
        };
        write_back(cx, arg, &b);
        Ok(disk.is_some())
    }

    fn disk(&mut self, arg: u32, cx: &Context<'_>) -> Result<bool, BadRequest> {
        let call = Call::Disk;
        let mut b: abi::DiskRequest = read_block(cx, call, arg)?;
        if b.reserved != 0 {
            return Err(BadRequest::Reserved {
                call: call.name(),
                value: b.reserved,
            });
        }
        let unused: &[(&'static str, u64)] = match b.op {
            abi::BLOCK_FLUSH => &[("sector", b.sector), ("buf", b.buf), ("len", b.len)],
            abi::BLOCK_DISCARD => &[("buf", b.buf)],
            _ => &[],
        };
        if let Some((field, value)) = unused.iter().find(|(_, v)| *v != 0) {
            return Err(BadRequest::Unused {
                call: call.name(),
                op: b.op,
                field,
                value: *value,
            });
        }
        b.status = self.disk_request(call, cx, b.disk, b.op, b.sector, b.buf, b.len, false)? as u32;
        write_back(cx, arg, &b);
        Ok(b.status != Status::NoDevice as u32)
    }

    /// Validates and carries out one request on disk `index`. Everything the guest named
    /// is checked before the disk is touched: the operation, whole sectors, the transfer
    /// limit, the buffer's bounds and rights. What the disk says (no such disk, past the
    /// end, read-only, a host error) is the returned status. `flush_read_only`: version
    /// 1's `block` lets a read-only disk flush.
    #[allow(clippy::too_many_arguments)]
    fn disk_request(
        &mut self,
        call: Call,
        cx: &Context<'_>,
        index: u32,
        op: u32,
        sector: u64,
        buf: u64,
        len: u64,
        flush_read_only: bool,
    ) -> Result<Status, BadRequest> {
        let name = call.name();
        let transfer = matches!(op, abi::BLOCK_READ | abi::BLOCK_WRITE);
        if !transfer && !matches!(op, abi::BLOCK_FLUSH | abi::BLOCK_DISCARD) {
            return Err(BadRequest::UnknownOp { call: name, op });
        }
        if !len.is_multiple_of(SECTOR) {
            return Err(BadRequest::PartialSector { call: name, len });
        }
        if transfer {
            if len > abi::MAX_BLOCK_TRANSFER {
                return Err(BadRequest::TooLong {
                    call: name,
                    what: "the transfer",
                    len,
                    max: abi::MAX_BLOCK_TRANSFER,
                });
            }
            let rights = if op == abi::BLOCK_WRITE {
                Rights::R
            } else {
                Rights::RW
            };
            check(cx, call, || "its buffer".into(), buf, len, rights)?;
        }
        let Some(disk) = usize::try_from(index)
            .ok()
            .and_then(|i| self.disks.get_mut(i))
        else {
            return Ok(Status::NoDevice);
        };
        let io = |r: io::Result<()>| match r {
            Ok(()) => Status::Ok,
            Err(_) => Status::IoError,
        };
        Ok(match op {
            abi::BLOCK_FLUSH if disk.read_only && !flush_read_only => Status::ReadOnly,
            abi::BLOCK_FLUSH => io(disk.flush()),
            _ if !disk.fits(sector, len) => Status::OutOfRange,
            abi::BLOCK_READ => {
                let mut data = vec![0u8; len as usize];
                let status = io(disk.read(sector, &mut data));
                if status == Status::Ok {
                    let _ = cx.mem.write_slice(&data, GuestAddress(buf));
                }
                status
            }
            _ if disk.read_only => Status::ReadOnly,
            abi::BLOCK_WRITE => {
                let mut data = vec![0u8; len as usize];
                let _ = cx.mem.read_slice(&mut data, GuestAddress(buf));
                io(disk.write(sector, &data))
            }
            _ => io(disk.discard(sector, len)),
        })
    }

    fn wait(&mut self, arg: u32, cx: &Context<'_>) -> Result<Done, CallError> {
        let call = Call::Wait;
        let mut b: abi::Wait = read_block(cx, call, arg)?;
        let start = Instant::now();
        let guest_timeout = (b.deadline_tsc != abi::NO_DEADLINE)
            .then(|| ticks_to_duration(b.deadline_tsc.saturating_sub(b.now_tsc), cx.tsc_hz));
        let idle = cx.idle.filter(|_| self.net.is_some());
        if guest_timeout.is_none() && self.net.is_none() {
            return Err(CallError::WaitsForever);
        }
        let mut blocked = false;
        let events = loop {
            let mut events = 0;
            if let Some(net) = &self.net
                && net.ready().unwrap_or(true)
            {
                events |= abi::EVENT_NET_RX;
            }
            let elapsed = start.elapsed();
            if guest_timeout.is_some_and(|t| elapsed >= t) {
                events |= abi::EVENT_DEADLINE;
            }
            if events != 0 {
                break events;
            }
            let now = Instant::now();
            let idle_left = match (idle, &self.net) {
                (Some(idle), Some(net)) => {
                    let left = (net.last_traffic + idle).saturating_duration_since(now);
                    if left.is_zero() {
                        return Ok(Done::Idle);
                    }
                    Some(left)
                }
                _ => None,
            };
            let guest_left = guest_timeout.map(|t| t.saturating_sub(elapsed));
            let timeout = match (guest_left, idle_left) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            blocked = true;
            match &mut self.net {
                Some(net) => match crate::net::poll_readable(net.file(), timeout) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // A broken host device: report the frame event; the receive call
                    // then reports the I/O error.
                    Err(_) => break abi::EVENT_NET_RX,
                },
                None => std::thread::sleep(timeout.unwrap_or(Duration::ZERO)),
            }
        };
        b.events = events;
        b.status = Status::Ok as u32;
        write_back(cx, arg, &b);
        Ok(Done::Continue { effect: blocked })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::tests::image;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixDatagram;
    use vm_memory::GuestMemoryMmap;

    const HZ: u64 = 1_000_000_000;

    struct Guest {
        mem: GuestMemoryMmap,
        layout: Layout,
    }

    impl Guest {
        fn new() -> Guest {
            let layout = Layout::new(&image(), 8).unwrap();
            let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 8 << 20)]).unwrap();
            Guest { mem, layout }
        }
        fn cx(&self) -> Context<'_> {
            Context {
                mem: &self.mem,
                layout: &self.layout,
                tsc_hz: HZ,
                idle: None,
            }
        }
        /// An address in RAM (above the stack).
        fn ram(&self, offset: u64) -> u64 {
            self.layout.stack_top + offset
        }
        fn put<T: IntoBytes + Immutable>(&self, addr: u64, v: &T) -> u32 {
            self.mem
                .write_slice(v.as_bytes(), GuestAddress(addr))
                .unwrap();
            addr as u32
        }
        fn get<T: FromBytes + IntoBytes + KnownLayout + Immutable>(&self, addr: u64) -> T {
            let mut v = T::new_zeroed();
            self.mem
                .read_slice(v.as_mut_bytes(), GuestAddress(addr))
                .unwrap();
            v
        }
    }

    fn devices(net: Option<Net>) -> Devices<Vec<u8>> {
        Devices::new(Vec::new(), net, Vec::new())
    }

    fn net_pair() -> (Net, UnixDatagram) {
        let (a, b) = UnixDatagram::pair().unwrap();
        (
            Net::new(OwnedFd::from(a), [2, 0, 0, 0, 0, 9], 1500).unwrap(),
            b,
        )
    }

    #[test]
    fn console_output_reaches_the_console() {
        let g = Guest::new();
        let mut d = devices(None);
        g.mem
            .write_slice(b"hello", GuestAddress(g.ram(0x100)))
            .unwrap();
        let arg = g.put(
            g.ram(0),
            &abi::ConsoleWrite {
                buf: g.ram(0x100),
                len: 5,
            },
        );
        assert_eq!(
            d.call(Call::ConsoleWrite, arg, &g.cx()),
            Ok(Done::Continue { effect: true })
        );
        assert_eq!(d.console, b"hello");
        // From the kernel's read-only data: fine (it may read it).
        let arg = g.put(
            g.ram(0),
            &abi::ConsoleWrite {
                buf: 0x20_3000,
                len: 4,
            },
        );
        assert!(d.call(Call::ConsoleWrite, arg, &g.cx()).is_ok());
    }

    #[test]
    fn buffers_outside_memory_are_refused_by_name() {
        let g = Guest::new();
        let mut d = devices(None);
        let arg = g.put(
            g.ram(0),
            &abi::ConsoleWrite {
                buf: 0x4000_0000,
                len: 5,
            },
        );
        let e = d.call(Call::ConsoleWrite, arg, &g.cx()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad request: console-write: its text: 0x40000000 + 5 is outside the guest's memory (0x0..0x800000)"
        );
        // Wrapping lengths.
        let arg = g.put(
            g.ram(0),
            &abi::ConsoleWrite {
                buf: g.ram(0),
                len: u64::MAX,
            },
        );
        assert!(matches!(
            d.call(Call::ConsoleWrite, arg, &g.cx()),
            Err(CallError::Bad(BadRequest::TooLong { .. }))
        ));
        // The tender's own pages are never readable.
        let arg = g.put(
            g.ram(0),
            &abi::ConsoleWrite {
                buf: crate::layout::GDT,
                len: 8,
            },
        );
        let e = d.call(Call::ConsoleWrite, arg, &g.cx()).unwrap_err();
        assert!(e.to_string().contains("the tender's GDT"), "{e}");
        assert!(d.console.is_empty());
    }

    #[test]
    fn request_blocks_must_be_aligned_and_writable() {
        let g = Guest::new();
        let mut d = devices(None);
        assert!(matches!(
            d.call(Call::ConsoleWrite, g.ram(4) as u32, &g.cx()),
            Err(CallError::Bad(BadRequest::Misaligned { .. }))
        ));
        // In the kernel's text (read-only): refused, nothing written there.
        assert!(matches!(
            d.call(Call::Entropy, 0x20_0000, &g.cx()),
            Err(CallError::Bad(BadRequest::Block { .. }))
        ));
        // The null page.
        assert!(matches!(
            d.call(Call::Wait, 0, &g.cx()),
            Err(CallError::Bad(BadRequest::Block { .. }))
        ));
        // Straddling the end of memory.
        assert!(matches!(
            d.call(Call::Entropy, ((8 << 20) - 8) as u32, &g.cx()),
            Err(CallError::Bad(BadRequest::Block { .. }))
        ));
    }

    #[test]
    fn entropy_never_writes_into_text() {
        let g = Guest::new();
        let mut d = devices(None);
        let arg = g.put(
            g.ram(0),
            &abi::Entropy {
                buf: 0x20_0100,
                len: 16,
                ..Default::default()
            },
        );
        let e = d.call(Call::Entropy, arg, &g.cx()).unwrap_err();
        assert!(e.to_string().contains("the kernel's .text"), "{e}");
        let mut text = [0u8; 16];
        g.mem
            .read_slice(&mut text, GuestAddress(0x20_0100))
            .unwrap();
        assert_eq!(text, [0; 16]);
        // Into RAM: filled.
        let arg = g.put(
            g.ram(0),
            &abi::Entropy {
                buf: g.ram(0x100),
                len: 32,
                ..Default::default()
            },
        );
        assert!(d.call(Call::Entropy, arg, &g.cx()).is_ok());
        let b: abi::Entropy = g.get(g.ram(0));
        assert_eq!(b.status, 0);
        let mut got = [0u8; 32];
        g.mem
            .read_slice(&mut got, GuestAddress(g.ram(0x100)))
            .unwrap();
        assert_ne!(got, [0; 32]);
    }

    #[test]
    fn frames_go_out_and_come_in() {
        let g = Guest::new();
        let (net, peer) = net_pair();
        let mut d = devices(Some(net));
        // Send two frames in one call.
        let f1 = [0xAAu8; 60];
        let f2 = [0xBBu8; 1514];
        g.mem.write_slice(&f1, GuestAddress(g.ram(0x1000))).unwrap();
        g.mem.write_slice(&f2, GuestAddress(g.ram(0x2000))).unwrap();
        let descs = [
            abi::FrameDesc {
                addr: g.ram(0x1000),
                len: 60,
                flags: 0,
            },
            abi::FrameDesc {
                addr: g.ram(0x2000),
                len: 1514,
                flags: 0,
            },
        ];
        g.put(g.ram(0x800), &descs);
        let arg = g.put(
            g.ram(0),
            &abi::NetFrames {
                descs: g.ram(0x800),
                count: 2,
                ..Default::default()
            },
        );
        assert_eq!(
            d.call(Call::NetSend, arg, &g.cx()),
            Ok(Done::Continue { effect: true })
        );
        let b: abi::NetFrames = g.get(g.ram(0));
        assert_eq!((b.done, b.status), (2, 0));
        let mut buf = [0u8; 2000];
        assert_eq!(peer.recv(&mut buf).unwrap(), 60);
        assert_eq!(peer.recv(&mut buf).unwrap(), 1514);
        assert_eq!(&buf[..1514], &f2[..]);

        // Receive: one frame fits, one is cut, then nothing.
        peer.send(&[1u8; 100]).unwrap();
        peer.send(&[2u8; 300]).unwrap();
        let descs = [
            abi::FrameDesc {
                addr: g.ram(0x1000),
                len: 200,
                flags: 0,
            },
            abi::FrameDesc {
                addr: g.ram(0x2000),
                len: 200,
                flags: 0,
            },
            abi::FrameDesc {
                addr: g.ram(0x3000),
                len: 200,
                flags: 0,
            },
        ];
        g.put(g.ram(0x800), &descs);
        let arg = g.put(
            g.ram(0),
            &abi::NetFrames {
                descs: g.ram(0x800),
                count: 3,
                ..Default::default()
            },
        );
        assert_eq!(
            d.call(Call::NetRecv, arg, &g.cx()),
            Ok(Done::Continue { effect: true })
        );
        let b: abi::NetFrames = g.get(g.ram(0));
        assert_eq!((b.done, b.status), (2, 0));
        let back: [abi::FrameDesc; 3] = g.get(g.ram(0x800));
        assert_eq!((back[0].len, back[0].flags), (100, 0));
        assert_eq!((back[1].len, back[1].flags), (200, abi::FRAME_TRUNCATED));
        assert_eq!(back[2].len, 200, "unfilled descriptors are left alone");
        // Nothing waiting: no effect.
        assert_eq!(
            d.call(Call::NetRecv, arg, &g.cx()),
            Ok(Done::Continue { effect: false })
        );
    }

    #[test]
    fn hostile_frame_requests_are_refused_before_anything_moves() {
        let g = Guest::new();
        let (net, peer) = net_pair();
        peer.send(&[7u8; 64]).unwrap();
        let mut d = devices(Some(net));
        let put_frames = |descs: &[abi::FrameDesc], count: u32| {
            g.mem
                .write_slice(descs.as_bytes(), GuestAddress(g.ram(0x800)))
                .unwrap();
            g.put(
                g.ram(0),
                &abi::NetFrames {
                    descs: g.ram(0x800),
                    count,
                    ..Default::default()
                },
            )
        };
        // Second buffer points into the text: the first frame must not be taken.
        let arg = put_frames(
            &[
                abi::FrameDesc {
                    addr: g.ram(0x1000),
                    len: 1514,
                    flags: 0,
                },
                abi::FrameDesc {
                    addr: 0x20_0000,
                    len: 1514,
                    flags: 0,
                },
            ],
            2,
        );
        let e = d.call(Call::NetRecv, arg, &g.cx()).unwrap_err();
        assert!(e.to_string().contains("buffer 1"), "{e}");
        assert_eq!(
            d.net
                .as_mut()
                .unwrap()
                .next_frame()
                .unwrap()
                .map(<[u8]>::len),
            Some(64)
        );
        // Too many frames.
        let arg = put_frames(&[], 65);
        assert!(matches!(
            d.call(Call::NetSend, arg, &g.cx()),
            Err(CallError::Bad(BadRequest::TooMany { count: 65, .. }))
        ));
        // A count whose descriptor array runs off the end of memory.
        let arg = g.put(
            g.ram(0),
            &abi::NetFrames {
                descs: (8 << 20) - 16,
                count: 4,
                ..Default::default()
            },
        );
        assert!(matches!(
            d.call(Call::NetSend, arg, &g.cx()),
            Err(CallError::Bad(BadRequest::Memory { .. }))
        ));
        // Oversized and runt frames.
        for len in [13, 1515, u32::MAX] {
            let arg = put_frames(
                &[abi::FrameDesc {
                    addr: g.ram(0x1000),
                    len,
                    flags: 0,
                }],
                1,
            );
            assert!(
                matches!(
                    d.call(Call::NetSend, arg, &g.cx()),
                    Err(CallError::Bad(BadRequest::FrameLength { .. }))
                ),
                "{len}"
            );
        }
        // Reserved fields.
        let arg = g.put(
            g.ram(0),
            &abi::NetFrames {
                descs: g.ram(0x800),
                count: 0,
                reserved: 1,
                ..Default::default()
            },
        );
        assert!(matches!(
            d.call(Call::NetSend, arg, &g.cx()),
            Err(CallError::Bad(BadRequest::Reserved { .. }))
        ));
        let mut out = [0u8; 16];
        peer.set_nonblocking(true).unwrap();
        assert!(peer.recv(&mut out).is_err(), "nothing was sent");
    }

    #[test]
    fn without_a_network_device_frames_get_a_status() {
        let g = Guest::new();
        let mut d = devices(None);
        let arg = g.put(
            g.ram(0),
            &abi::NetFrames {
                descs: g.ram(0x800),
                count: 0,
                ..Default::default()
            },
        );
        assert!(d.call(Call::NetRecv, arg, &g.cx()).is_ok());
        let b: abi::NetFrames = g.get(g.ram(0));
        assert_eq!(b.status, Status::NoDevice as u32);
    }

    #[test]
    fn waits_end_at_the_deadline_or_a_frame() {
        let g = Guest::new();
        let (net, peer) = net_pair();
        let mut d = devices(Some(net));
        // A deadline already passed: no effect.
        let arg = g.put(
            g.ram(0),
            &abi::Wait {
                deadline_tsc: 100,
                now_tsc: 200,
                ..Default::default()
            },
        );
        assert_eq!(
            d.call(Call::Wait, arg, &g.cx()),
            Ok(Done::Continue { effect: false })
        );
        assert_eq!(g.get::<abi::Wait>(g.ram(0)).events, abi::EVENT_DEADLINE);
        // 2 ms ahead.
        let arg = g.put(
            g.ram(0),
            &abi::Wait {
                deadline_tsc: 2_000_000,
                now_tsc: 0,
                ..Default::default()
            },
        );
        let t = Instant::now();
        assert_eq!(
            d.call(Call::Wait, arg, &g.cx()),
            Ok(Done::Continue { effect: true })
        );
        assert!(t.elapsed() >= Duration::from_millis(2));
        assert_eq!(g.get::<abi::Wait>(g.ram(0)).events, abi::EVENT_DEADLINE);
        // A frame waiting ends a wait without deadline.
        peer.send(&[0u8; 60]).unwrap();
        let arg = g.put(
            g.ram(0),
            &abi::Wait {
                deadline_tsc: abi::NO_DEADLINE,
                now_tsc: 0,
                ..Default::default()
            },
        );
        assert!(d.call(Call::Wait, arg, &g.cx()).is_ok());
        assert_eq!(g.get::<abi::Wait>(g.ram(0)).events, abi::EVENT_NET_RX);
    }

    #[test]
    fn a_wait_nothing_can_end_is_refused() {
        let g = Guest::new();
        let mut d = devices(None);
        let arg = g.put(
            g.ram(0),
            &abi::Wait {
                deadline_tsc: abi::NO_DEADLINE,
                ..Default::default()
            },
        );
        assert_eq!(
            d.call(Call::Wait, arg, &g.cx()),
            Err(CallError::WaitsForever)
        );
    }

    #[test]
    fn an_idle_guest_is_stopped_in_its_wait() {
        let g = Guest::new();
        let (net, _peer) = net_pair();
        let mut d = devices(Some(net));
        let mut cx = g.cx();
        cx.idle = Some(Duration::from_millis(5));
        let arg = g.put(
            g.ram(0),
            &abi::Wait {
                deadline_tsc: abi::NO_DEADLINE,
                ..Default::default()
            },
        );
        assert_eq!(d.call(Call::Wait, arg, &cx), Ok(Done::Idle));
    }

    #[test]
    fn block_requests_are_checked_and_served() {
        let g = Guest::new();
        let path = std::env::temp_dir().join(format!("morgana-tender-disk-{}", std::process::id()));
        std::fs::write(&path, vec![0u8; 8 * 512]).unwrap();
        let mut d = devices(None);
        d.disks = vec![Disk::open(&path, false).unwrap()];
        g.mem
            .write_slice(&[0x5A; 1024], GuestAddress(g.ram(0x1000)))
            .unwrap();
        let req = |op, sector, buf, len| abi::BlockRequest {
            op,
            status: 0,
            sector,
            buf,
            len,
        };
        let arg = g.put(g.ram(0), &req(abi::BLOCK_WRITE, 6, g.ram(0x1000), 1024));
        assert!(d.call(Call::Block, arg, &g.cx()).is_ok());
        assert_eq!(g.get::<abi::BlockRequest>(g.ram(0)).status, 0);
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk[6 * 512..].iter().all(|b| *b == 0x5A));
        // Past the end: a status, not a stop.
        let arg = g.put(g.ram(0), &req(abi::BLOCK_READ, 7, g.ram(0x1000), 1024));
        assert!(d.call(Call::Block, arg, &g.cx()).is_ok());
        assert_eq!(
            g.get::<abi::BlockRequest>(g.ram(0)).status,
            Status::OutOfRange as u32
        );
        // A read into the text: a stop.
        let arg = g.put(g.ram(0), &req(abi::BLOCK_READ, 0, 0x20_0000, 512));
        assert!(matches!(
            d.call(Call::Block, arg, &g.cx()),
            Err(CallError::Bad(_))
        ));
        // Partial sectors and unknown operations.
        let arg = g.put(g.ram(0), &req(abi::BLOCK_READ, 0, g.ram(0x1000), 100));
        assert!(matches!(
            d.call(Call::Block, arg, &g.cx()),
            Err(CallError::Bad(BadRequest::PartialSector { .. }))
        ));
        let arg = g.put(g.ram(0), &req(9, 0, 0, 0));
        assert!(matches!(
            d.call(Call::Block, arg, &g.cx()),
            Err(CallError::Bad(BadRequest::UnknownOp { op: 9, .. }))
        ));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn disk_requests_are_validated_before_any_disk_is_touched() {
        let g = Guest::new();
        let dir = std::env::temp_dir().join(format!("morgana-tender-disks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (rw, ro) = (dir.join("rw.img"), dir.join("ro.img"));
        std::fs::write(&rw, vec![0u8; 64 * 512]).unwrap();
        std::fs::write(&ro, vec![7u8; 8 * 512]).unwrap();
        let mut d = devices(None);
        d.disks = vec![
            Disk::open(&rw, false).unwrap(),
            Disk::open(&ro, true).unwrap(),
        ];
        let req = |disk, op, sector, buf, len| abi::DiskRequest {
            disk,
            op,
            sector,
            buf,
            len,
            status: 0xffff,
            reserved: 0,
        };
        let data = g.ram(0x1000);
        g.mem
            .write_slice(&[0xA5; 4096], GuestAddress(data))
            .unwrap();
        let status = |d: &mut Devices<Vec<u8>>, r: abi::DiskRequest| {
            let arg = g.put(g.ram(0), &r);
            let done = d.call(Call::Disk, arg, &g.cx()).map(|_| ());
            done.map(|()| Status::from_u32(g.get::<abi::DiskRequest>(g.ram(0)).status))
        };
        // disk-info: both disks in order, then none.
        for (n, sectors, flags) in [
            (0, 64, abi::BLOCK_PRESENT),
            (1, 8, abi::BLOCK_PRESENT | abi::BLOCK_READ_ONLY),
        ] {
            let arg = g.put(
                g.ram(0),
                &abi::DiskInfo {
                    disk: n,
                    ..Default::default()
                },
            );
            d.call(Call::DiskInfo, arg, &g.cx()).unwrap();
            let info = g.get::<abi::DiskInfo>(g.ram(0));
            assert_eq!(
                (info.status, info.sectors, info.sector_size, info.flags),
                (0, sectors, 512, flags)
            );
        }
        let arg = g.put(
            g.ram(0),
            &abi::DiskInfo {
                disk: 2,
                ..Default::default()
            },
        );
        d.call(Call::DiskInfo, arg, &g.cx()).unwrap();
        assert_eq!(
            g.get::<abi::DiskInfo>(g.ram(0)).status,
            Status::NoDevice as u32
        );

        // Served: write, read back, flush, discard (a hole reads back as zeros).
        assert_eq!(
            status(&mut d, req(0, abi::BLOCK_WRITE, 60, data, 2048)),
            Ok(Some(Status::Ok))
        );
        assert!(
            std::fs::read(&rw).unwrap()[60 * 512..]
                .iter()
                .all(|b| *b == 0xA5)
        );
        assert_eq!(
            status(&mut d, req(1, abi::BLOCK_READ, 0, data, 512)),
            Ok(Some(Status::Ok))
        );
        let mut back = [0u8; 512];
        g.mem.read_slice(&mut back, GuestAddress(data)).unwrap();
        assert_eq!(back, [7u8; 512]);
        assert_eq!(
            status(&mut d, req(0, abi::BLOCK_FLUSH, 0, 0, 0)),
            Ok(Some(Status::Ok))
        );
        assert_eq!(
            status(&mut d, req(0, abi::BLOCK_DISCARD, 60, 0, 1024)),
            Ok(Some(Status::Ok))
        );
        let on_disk = std::fs::read(&rw).unwrap();
        assert!(
            on_disk[60 * 512..62 * 512].iter().all(|b| *b == 0),
            "discarded"
        );
        assert!(on_disk[62 * 512..].iter().all(|b| *b == 0xA5), "kept");

        // The disk's answers: typed statuses, the guest carries on, nothing written.
        assert_eq!(
            status(&mut d, req(0, abi::BLOCK_READ, 63, data, 1024)),
            Ok(Some(Status::OutOfRange))
        );
        assert_eq!(
            status(&mut d, req(0, abi::BLOCK_WRITE, u64::MAX, data, 512)),
            Ok(Some(Status::OutOfRange))
        );
        for op in [abi::BLOCK_WRITE, abi::BLOCK_DISCARD] {
            let buf = if op == abi::BLOCK_WRITE { data } else { 0 };
            assert_eq!(
                status(&mut d, req(1, op, 0, buf, 512)),
                Ok(Some(Status::ReadOnly))
            );
        }
        assert_eq!(
            status(&mut d, req(1, abi::BLOCK_FLUSH, 0, 0, 0)),
            Ok(Some(Status::ReadOnly))
        );
        assert_eq!(std::fs::read(&ro).unwrap(), vec![7u8; 8 * 512]);
        assert_eq!(
            status(&mut d, req(5, abi::BLOCK_READ, 0, data, 512)),
            Ok(Some(Status::NoDevice))
        );

        // Bad requests: the guest is stopped with a report, the disk untouched.
        let before = std::fs::read(&rw).unwrap();
        let bad = |d: &mut Devices<Vec<u8>>, r| status(d, r).unwrap_err().to_string();
        let e = bad(&mut d, req(0, abi::BLOCK_WRITE, 0, 0x4000_0000, 512));
        assert!(
            e.contains("disk: its buffer: 0x40000000 + 512 is outside the guest's memory"),
            "{e}"
        );
        let e = bad(&mut d, req(0, abi::BLOCK_READ, 0, 0x20_0000, 512));
        assert!(e.contains("disk: its buffer") && e.contains(".text"), "{e}");
        let e = bad(&mut d, req(0, abi::BLOCK_READ, 0, crate::layout::GDT, 512));
        assert!(e.contains("the tender's GDT"), "{e}");
        let e = bad(&mut d, req(0, abi::BLOCK_WRITE, 0, data, 100));
        assert!(
            e.contains("100 bytes is not a whole number of 512-byte sectors"),
            "{e}"
        );
        let e = bad(&mut d, req(0, abi::BLOCK_READ, 0, data, 2 << 20));
        assert!(
            e.contains("the transfer is 2097152 bytes; at most 1048576"),
            "{e}"
        );
        let e = bad(&mut d, req(0, 7, 0, 0, 0));
        assert!(e.contains("unknown operation 7"), "{e}");
        let e = bad(&mut d, req(0, abi::BLOCK_FLUSH, 3, 0, 0));
        assert!(e.contains("does not use sector"), "{e}");
        let e = bad(&mut d, req(0, abi::BLOCK_DISCARD, 0, data, 512));
        assert!(e.contains("does not use buf"), "{e}");
        let e = bad(
            &mut d,
            abi::DiskRequest {
                reserved: 1,
                ..req(0, abi::BLOCK_FLUSH, 0, 0, 0)
            },
        );
        assert!(e.contains("reserved field"), "{e}");
        // A block in the kernel's text is refused before anything is read from it.
        assert!(matches!(
            d.call(Call::Disk, 0x20_0000, &g.cx()),
            Err(CallError::Bad(BadRequest::Block { .. }))
        ));
        assert_eq!(std::fs::read(&rw).unwrap(), before);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tsc_ticks_convert_to_time() {
        assert_eq!(
            ticks_to_duration(3_000_000_000, 3_000_000_000),
            Duration::from_secs(1)
        );
        assert_eq!(
            ticks_to_duration(1_500, 3_000_000_000),
            Duration::from_nanos(500)
        );
        assert_eq!(
            ticks_to_duration(u64::MAX, 1),
            Duration::from_secs(u64::MAX)
        );
        assert_eq!(ticks_to_duration(5, 0), Duration::from_secs(5));
    }
}
