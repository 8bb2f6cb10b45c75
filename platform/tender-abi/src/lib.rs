//! The guest ABI of `morgana-tender`, version 2: how a kernel running at CPL 3 under the
//! tender talks to it. Shared by the tender (host side, `std`) and the kernels it runs
//! (`no_std`); the prose reference is `docs/tender-abi.md`.
//!
//! In short:
//! - **Entry.** The tender enters the kernel in 64-bit mode at CPL 3 with IOPL 3, paging
//!   on (identity map built by the tender), at the address of the kernel's [`TenderNote`]
//!   (an image without the note is refused), as `extern "C" fn(&'static BootInfo) -> !`: RDI holds the
//!   [`BootInfo`] address, RSP is the top of a stack with an unmapped guard page below it
//!   (aligned as right after a `call`).
//! - **Calls.** `out dx, eax` with DX = [`Call::port`] and EAX = the guest-physical (==
//!   virtual) address of the call's request block, which must lie below 4 GiB, be 8-byte
//!   aligned and sit in memory the kernel may write. For [`Call::Exit`] EAX is the exit
//!   status itself. The tender validates every address, length and count it is handed;
//!   a request that fails validation stops the guest with a report (it never gets a
//!   status back). Soft failures (no such device, an I/O error on the host) come back in
//!   the block's `status` field ([`Status`]).
//! - **Time** is the TSC (`rdtsc` works at CPL 3) at [`BootInfo::tsc_hz`]; the wall clock
//!   is [`BootInfo::boot_wall_ns`] at TSC [`BootInfo::boot_tsc`].
//! - **No `hlt`, no interrupts.** [`Call::Wait`] blocks until a frame is waiting or a TSC
//!   deadline passes. CPU exceptions are not delivered to the kernel: the tender's own
//!   fault gates report them and stop the guest.
//!
//! The [`guest`] module has the kernel side: one safe function per call.
#![no_std]
#![deny(missing_docs, clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "zerocopy")]
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The ABI version this crate describes. The tender refuses a kernel whose
/// [`TenderNote::abi_version`] it does not implement, writes the kernel's own version
/// (the one it speaks with that kernel) into [`BootInfo::abi_version`], and its newest
/// into CPUID leaf [`CPUID_INFO_LEAF`].
///
/// Version 2 added [`Call::DiskInfo`] and [`Call::Disk`] (several disks, discard); every
/// version-1 layout is unchanged, so a tender of version 2 runs version-1 kernels too.
pub const ABI_VERSION: u32 = 2;
/// The oldest ABI version a tender of this crate still runs.
pub const MIN_ABI_VERSION: u32 = 1;

/// CPUID leaf whose EBX, ECX, EDX spell [`CPUID_SIGNATURE`] under the tender (the
/// hypervisor leaf, where Xen says `XenVMMXenVMM` and KVM `KVMKVMKVM`); EAX is the
/// highest hypervisor leaf ([`CPUID_INFO_LEAF`]). A kernel image that also boots
/// elsewhere can detect the tender with it, as a hint: a host whose KVM answers the
/// hypervisor leaves itself (PVM) shows its own, so the contract is the entry point and
/// the boot information's version, never CPUID.
pub const CPUID_SIGNATURE_LEAF: u32 = 0x4000_0000;
/// The tender's hypervisor signature, in EBX, ECX, EDX order.
pub const CPUID_SIGNATURE: [u8; 12] = *b"MorganaTendr";
/// CPUID leaf whose EAX is the [`ABI_VERSION`] the tender speaks.
pub const CPUID_INFO_LEAF: u32 = 0x4000_0001;

/// The first call port; call `n` is port `CALL_PORT_BASE + n` (`'M'` in the high byte).
pub const CALL_PORT_BASE: u16 = 0x4D00;

/// The tender's fault gates: its exception stubs (at CPL 0, in a page the kernel cannot
/// see) write to port `FAULT_GATE_PORT_BASE + vector` for vectors 0–31. They are not
/// part of what a kernel may call: a kernel writing there is stopped for a bad request.
pub const FAULT_GATE_PORT_BASE: u16 = 0xE0;
/// Number of fault gates (the CPU's exception vectors).
pub const FAULT_GATES: u16 = 32;
// The gates use `out imm8, al`, which reaches ports below 0x100 only.
const _: () = assert!(FAULT_GATE_PORT_BASE + FAULT_GATES <= 0x100);

/// The calls, numbered from [`CALL_PORT_BASE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Call {
    /// Writes bytes to the console (the tender's standard output). Block: [`ConsoleWrite`].
    ConsoleWrite = 0,
    /// Ends the run; EAX is the status (0 success). No block, never returns.
    Exit = 1,
    /// Waits until a frame is waiting or a TSC deadline passes. Block: [`Wait`].
    Wait = 2,
    /// Sends frames on the network. Block: [`NetFrames`] over [`FrameDesc`]s.
    NetSend = 3,
    /// Takes received frames. Block: [`NetFrames`] over [`FrameDesc`]s.
    NetRecv = 4,
    /// Fills a buffer with random bytes from the host. Block: [`Entropy`].
    Entropy = 5,
    /// Reads, writes or flushes the first disk (version 1). Block: [`BlockRequest`].
    Block = 6,
    /// (Version 2) Describes disk `n`: capacity, sector size, read-only. Block:
    /// [`DiskInfo`].
    DiskInfo = 7,
    /// (Version 2) Reads, writes, flushes or discards on disk `n`. Block: [`DiskRequest`].
    Disk = 8,
}

impl Call {
    /// Every call, in port order.
    pub const ALL: [Call; 9] = [
        Call::ConsoleWrite,
        Call::Exit,
        Call::Wait,
        Call::NetSend,
        Call::NetRecv,
        Call::Entropy,
        Call::Block,
        Call::DiskInfo,
        Call::Disk,
    ];

    /// The port the call is made on.
    pub const fn port(self) -> u16 {
        CALL_PORT_BASE + self as u16
    }

    /// The call made on `port`, if any.
    pub fn from_port(port: u16) -> Option<Call> {
        Call::ALL.into_iter().find(|c| c.port() == port)
    }

    /// The call's name in reports (`console-write`, `exit`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Call::ConsoleWrite => "console-write",
            Call::Exit => "exit",
            Call::Wait => "wait",
            Call::NetSend => "net-send",
            Call::NetRecv => "net-recv",
            Call::Entropy => "entropy",
            Call::Block => "block",
            Call::DiskInfo => "disk-info",
            Call::Disk => "disk",
        }
    }
}

/// The outcome of a call that can fail softly, in the block's `status` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// Done.
    Ok = 0,
    /// The tender runs this guest without that device (no tap, no disk, no disk of that
    /// number).
    NoDevice = 1,
    /// The host's device failed (the tap or the disk file returned an error).
    IoError = 2,
    /// A block request's sector range ends past the disk's end.
    OutOfRange = 3,
    /// A write to a read-only disk (and, with [`Call::Disk`], a flush or a discard).
    ReadOnly = 4,
}

impl Status {
    /// The status for a raw `status` field; `None` for a value this version does not know.
    pub fn from_u32(v: u32) -> Option<Status> {
        [
            Status::Ok,
            Status::NoDevice,
            Status::IoError,
            Status::OutOfRange,
            Status::ReadOnly,
        ]
        .into_iter()
        .find(|s| *s as u32 == v)
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Status::Ok => "done",
            Status::NoDevice => "no such device",
            Status::IoError => "host I/O error",
            Status::OutOfRange => "past the end of the disk",
            Status::ReadOnly => "the disk is read-only",
        })
    }
}

/// Most bytes one [`Call::ConsoleWrite`] may carry.
pub const MAX_CONSOLE_WRITE: u64 = 64 * 1024;
/// Most frames one [`Call::NetSend`] or [`Call::NetRecv`] may carry.
pub const MAX_FRAMES_PER_CALL: u32 = 64;
/// Most bytes one [`Call::Entropy`] may ask for.
pub const MAX_ENTROPY: u64 = 64 * 1024;
/// Most bytes one [`Call::Block`] or [`Call::Disk`] read or write may move.
pub const MAX_BLOCK_TRANSFER: u64 = 1024 * 1024;
/// Longest command line the tender passes (bytes, without the NUL it appends).
pub const MAX_CMDLINE: usize = 2048;

/// [`Wait::events`]: a received frame is waiting ([`Call::NetRecv`] will return it).
pub const EVENT_NET_RX: u32 = 1 << 0;
/// [`Wait::events`]: the deadline has passed.
pub const EVENT_DEADLINE: u32 = 1 << 1;
/// [`Wait::deadline_tsc`] for "no deadline": wait for a frame only.
pub const NO_DEADLINE: u64 = u64::MAX;

/// [`Call::ConsoleWrite`]'s block: `len` bytes at `buf` (readable by the kernel, at most
/// [`MAX_CONSOLE_WRITE`]). Nothing is written back.
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ConsoleWrite {
    /// Address of the bytes.
    pub buf: u64,
    /// How many.
    pub len: u64,
}

/// [`Call::Wait`]'s block. The tender returns when a frame is waiting or when the TSC
/// reaches `deadline_tsc` ([`NO_DEADLINE`]: no deadline), and writes what happened into
/// `events` ([`EVENT_NET_RX`], [`EVENT_DEADLINE`]; both may be set). `now_tsc` is the
/// kernel's TSC right before the call: the tender turns `deadline_tsc - now_tsc` into a
/// host timeout with [`BootInfo::tsc_hz`]. A wait that nothing could ever end (no
/// deadline and no network) stops the guest with a report.
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Wait {
    /// TSC value to wait until; [`NO_DEADLINE`] for none.
    pub deadline_tsc: u64,
    /// The TSC when the kernel made the call.
    pub now_tsc: u64,
    /// Out: what ended the wait.
    pub events: u32,
    /// Out: [`Status`] (always [`Status::Ok`] in this version).
    pub status: u32,
}

/// [`Call::NetSend`]'s and [`Call::NetRecv`]'s block: `count` (at most
/// [`MAX_FRAMES_PER_CALL`]) [`FrameDesc`]s in an array at `descs` (8-byte aligned, in
/// memory the kernel may write). The tender writes how many frames it sent or received
/// into `done` and the [`Status`] into `status`.
///
/// Send: descriptor `i` is a whole Ethernet frame (14..=14+mtu bytes, readable). A frame
/// the host's queue has no room for is dropped, as a NIC would; `done` counts the frames
/// handed to the host. Receive: descriptor `i` is a buffer (`len` bytes, writable); the
/// tender fills buffers in order with waiting frames, sets each filled descriptor's `len`
/// to the bytes written and its `flags` ([`FRAME_TRUNCATED`] when the frame was longer than
/// the buffer: the rest is lost), and stops when no frame is waiting.
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct NetFrames {
    /// Address of the descriptor array.
    pub descs: u64,
    /// Number of descriptors.
    pub count: u32,
    /// Out: frames sent or received.
    pub done: u32,
    /// Out: [`Status`].
    pub status: u32,
    /// Zero.
    pub reserved: u32,
}

/// One frame (send) or buffer (receive) of a [`NetFrames`] call.
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FrameDesc {
    /// Address of the frame or buffer.
    pub addr: u64,
    /// Send: frame length. Receive: buffer length in, frame bytes written out.
    pub len: u32,
    /// Receive, out: [`FRAME_TRUNCATED`] or 0. Send: zero.
    pub flags: u32,
}

/// [`FrameDesc::flags`]: the received frame was longer than the buffer.
pub const FRAME_TRUNCATED: u32 = 1 << 0;

/// [`Call::Entropy`]'s block: fill `len` bytes at `buf` (writable, at most
/// [`MAX_ENTROPY`]) with random bytes from the host's generator (`getrandom`).
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Entropy {
    /// Address of the buffer.
    pub buf: u64,
    /// Its length.
    pub len: u64,
    /// Out: [`Status`].
    pub status: u32,
    /// Zero.
    pub reserved: u32,
}

/// [`BlockRequest::op`]: read `len` bytes from `sector` into `buf` (writable).
pub const BLOCK_READ: u32 = 0;
/// [`BlockRequest::op`]: write `len` bytes at `buf` (readable) to `sector`.
pub const BLOCK_WRITE: u32 = 1;
/// [`BlockRequest::op`]: make every completed write durable (`sector`, `buf`, `len` zero).
pub const BLOCK_FLUSH: u32 = 2;

/// [`Call::Block`]'s block. Requests complete before the call returns. `len` is a multiple
/// of [`BlockInfo::sector_size`], at most [`MAX_BLOCK_TRANSFER`]; a range past the disk's
/// end gets [`Status::OutOfRange`], a write to a read-only disk [`Status::ReadOnly`].
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct BlockRequest {
    /// [`BLOCK_READ`], [`BLOCK_WRITE`] or [`BLOCK_FLUSH`].
    pub op: u32,
    /// Out: [`Status`].
    pub status: u32,
    /// First sector.
    pub sector: u64,
    /// Address of the data.
    pub buf: u64,
    /// Bytes to move.
    pub len: u64,
}

/// Most disks a tender gives one guest ([`DiskRequest::disk`] is below it).
pub const MAX_DISKS: u32 = 16;
/// [`DiskRequest::op`]: tell the host that `len` bytes from `sector` hold nothing of value
/// (TRIM). A hint: their contents are undefined afterwards (the tender punches a hole in
/// the image file where the host's file system can, and does nothing where it cannot).
pub const BLOCK_DISCARD: u32 = 3;

/// [`Call::DiskInfo`]'s block (version 2): the kernel sets `disk`; the tender writes the
/// rest, or [`Status::NoDevice`] into `status` when it has no disk of that number. Disks
/// are numbered from 0 in the order the tender was given them (`--disk`, `--disk-ro`);
/// disk 0 is also [`BootInfo::block`].
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct DiskInfo {
    /// The disk's number.
    pub disk: u32,
    /// Out: [`Status`].
    pub status: u32,
    /// Out: capacity in sectors.
    pub sectors: u64,
    /// Out: bytes per sector (512).
    pub sector_size: u32,
    /// Out: [`BLOCK_PRESENT`], [`BLOCK_READ_ONLY`].
    pub flags: u32,
}

/// [`Call::Disk`]'s block (version 2): one request on disk `disk`, complete (the data in
/// the host's file, or in `buf`) when the call returns.
///
/// - [`BLOCK_READ`]: `len` bytes from `sector` into `buf` (writable by the kernel).
/// - [`BLOCK_WRITE`]: `len` bytes at `buf` (readable) to `sector`.
/// - [`BLOCK_FLUSH`]: every write completed before the call is on stable storage when
///   it returns (`fdatasync` on the image file); `sector`, `buf` and `len` are 0.
/// - [`BLOCK_DISCARD`]: `len` bytes from `sector` hold nothing of value; `buf` is 0.
///
/// `len` is a whole number of sectors, at most [`MAX_BLOCK_TRANSFER`] for reads and
/// writes. A bad buffer, a partial sector, an unknown operation, a field the operation
/// does not use that is not 0, or a nonzero `reserved` stops the guest (a bad request);
/// the disk's answers come back in `status`: [`Status::NoDevice`] (no disk of that
/// number), [`Status::OutOfRange`] (past the end), [`Status::ReadOnly`] (a write, flush or
/// discard on a read-only disk), [`Status::IoError`] (the host's file failed).
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct DiskRequest {
    /// The disk's number (0 first).
    pub disk: u32,
    /// [`BLOCK_READ`], [`BLOCK_WRITE`], [`BLOCK_FLUSH`] or [`BLOCK_DISCARD`].
    pub op: u32,
    /// First sector.
    pub sector: u64,
    /// Address of the data (0 for flush and discard).
    pub buf: u64,
    /// Bytes (whole sectors).
    pub len: u64,
    /// Out: [`Status`].
    pub status: u32,
    /// Zero.
    pub reserved: u32,
}

/// [`BootInfo::magic`].
pub const BOOT_MAGIC: u64 = u64::from_le_bytes(*b"MORGANAT");
/// [`BootInfo::flags`]: the tender booted this guest because a frame arrived for it
/// (`--summon`); the frames that arrived during boot wait in [`Call::NetRecv`].
pub const BOOT_SUMMONED: u64 = 1 << 0;

/// What the tender tells the kernel at entry (RDI points to it; read-only to the kernel).
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct BootInfo {
    /// [`BOOT_MAGIC`].
    pub magic: u64,
    /// The [`ABI_VERSION`] the tender speaks.
    pub abi_version: u32,
    /// `size_of::<BootInfo>()` as the tender wrote it (later versions only append).
    pub size: u32,
    /// [`BOOT_SUMMONED`].
    pub flags: u64,
    /// TSC ticks per second (the guest's TSC, as `rdtsc` reads it).
    pub tsc_hz: u64,
    /// The guest's TSC when [`BootInfo::boot_wall_ns`] was read.
    pub boot_tsc: u64,
    /// The host's wall clock (nanoseconds since the Unix epoch) at boot.
    pub boot_wall_ns: u64,
    /// Address of the command line (bytes, as given; a NUL follows them).
    pub cmdline: u64,
    /// Its length in bytes, without the NUL.
    pub cmdline_len: u64,
    /// Address of the memory map: an array of [`MemoryRegion`], sorted by address.
    pub memory_map: u64,
    /// Number of [`MemoryRegion`]s.
    pub memory_map_len: u64,
    /// Lowest address of the stack the kernel was entered on; the page below it is an
    /// unmapped guard page.
    pub stack_bottom: u64,
    /// One past its highest address.
    pub stack_top: u64,
    /// The network device.
    pub net: NetInfo,
    /// The first disk (disk 0 of [`Call::DiskInfo`]), as version 1 describes it.
    pub block: BlockInfo,
}

/// [`NetInfo::flags`]: the tender has a network device (a host tap) for this guest.
pub const NET_PRESENT: u16 = 1 << 0;
/// [`BlockInfo::flags`]: the tender has a disk for this guest.
pub const BLOCK_PRESENT: u32 = 1 << 0;
/// [`BlockInfo::flags`]: the disk is read-only.
pub const BLOCK_READ_ONLY: u32 = 1 << 1;

/// The network device, in [`BootInfo`].
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct NetInfo {
    /// The guest's MAC address.
    pub mac: [u8; 6],
    /// [`NET_PRESENT`].
    pub flags: u16,
    /// The IP MTU (largest frame: 14 + mtu bytes).
    pub mtu: u32,
    /// Zero.
    pub reserved: u32,
}

/// The block device, in [`BootInfo`].
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct BlockInfo {
    /// Capacity in sectors.
    pub sectors: u64,
    /// Bytes per sector (512).
    pub sector_size: u32,
    /// [`BLOCK_PRESENT`], [`BLOCK_READ_ONLY`].
    pub flags: u32,
}

/// One entry of the memory map.
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct MemoryRegion {
    /// First address (page aligned).
    pub start: u64,
    /// Length in bytes (whole pages).
    pub len: u64,
    /// What it is: [`REGION_RAM`], [`REGION_KERNEL`], ...
    pub kind: u32,
    /// What the kernel may do there: [`ACCESS_READ`] | [`ACCESS_WRITE`] | [`ACCESS_EXECUTE`].
    pub access: u32,
}

/// [`MemoryRegion::kind`]: free memory, the kernel's to use (read, write, no execute).
pub const REGION_RAM: u32 = 1;
/// [`MemoryRegion::kind`]: a loaded segment of the kernel image, mapped with its ELF flags.
pub const REGION_KERNEL: u32 = 2;
/// [`MemoryRegion::kind`]: the stack the kernel was entered on.
pub const REGION_STACK: u32 = 3;
/// [`MemoryRegion::kind`]: the boot information, memory map and command line (read-only).
pub const REGION_BOOT_INFO: u32 = 4;
/// [`MemoryRegion::kind`]: the tender's (page tables, descriptor tables, fault gates);
/// not accessible to the kernel.
pub const REGION_RESERVED: u32 = 5;
/// [`MemoryRegion::kind`]: an unmapped guard page (or the null page).
pub const REGION_GUARD: u32 = 6;

/// [`MemoryRegion::access`]: readable.
pub const ACCESS_READ: u32 = 1 << 0;
/// [`MemoryRegion::access`]: writable.
pub const ACCESS_WRITE: u32 = 1 << 1;
/// [`MemoryRegion::access`]: executable.
pub const ACCESS_EXECUTE: u32 = 1 << 2;

/// The ELF note that marks a kernel image as runnable under the tender: note name
/// [`NOTE_NAME`], type [`NOTE_TYPE_TENDER`], this struct as its descriptor. Emit it with
/// [`tender_note!`]. The tender refuses a kernel image without it (an image built for
/// another loader has no entry the tender could use at CPL 3) and one whose note names
/// an ABI version it does not speak. `morgana_pvh::entry!` emits it in every Morgana
/// kernel, beside the PVH note.
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TenderNote {
    /// The [`ABI_VERSION`] the kernel was built against.
    pub abi_version: u32,
    /// Zero.
    pub reserved: u32,
    /// The 64-bit CPL 3 entry point (`extern "C" fn(&'static BootInfo) -> !`).
    pub entry: u64,
    /// Bytes of stack the kernel wants (rounded up to pages); 0 for the tender's default.
    pub stack_bytes: u64,
}

/// The ELF note name of [`TenderNote`] (with its NUL: 8 bytes).
pub const NOTE_NAME: &[u8] = b"Morgana\0";
/// The ELF note type of [`TenderNote`].
pub const NOTE_TYPE_TENDER: u32 = 0x7465_6e64; // "tend"

/// Emits the kernel's [`TenderNote`] into section `.note.morgana.tender` (the linker
/// script must put it in a `PT_NOTE` segment):
///
/// ```ignore
/// extern "C" fn start(boot: &'static morgana_tender_abi::BootInfo) -> ! { ... }
/// morgana_tender_abi::tender_note!(entry = start, stack_bytes = 256 * 1024);
/// ```
#[macro_export]
macro_rules! tender_note {
    (entry = $entry:path, stack_bytes = $stack:expr $(,)?) => {
        ::core::arch::global_asm!(
            ".pushsection .note.morgana.tender, \"a\", @note",
            ".balign 4",
            ".long 8",
            ".long 24",
            ".long {ty}",
            ".ascii \"Morgana\\0\"",
            ".long {abi}",
            ".long 0",
            ".quad {entry}",
            ".quad {stack}",
            ".popsection",
            ty = const $crate::NOTE_TYPE_TENDER,
            abi = const $crate::ABI_VERSION,
            entry = sym $entry,
            stack = const $stack,
        );
    };
}

#[cfg(target_arch = "x86_64")]
pub mod guest;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_are_fixed() {
        assert_eq!(size_of::<ConsoleWrite>(), 16);
        assert_eq!(size_of::<Wait>(), 24);
        assert_eq!(size_of::<NetFrames>(), 24);
        assert_eq!(size_of::<FrameDesc>(), 16);
        assert_eq!(size_of::<Entropy>(), 24);
        assert_eq!(size_of::<BlockRequest>(), 32);
        assert_eq!(size_of::<DiskInfo>(), 24);
        assert_eq!(size_of::<DiskRequest>(), 40);
        assert_eq!(size_of::<NetInfo>(), 16);
        assert_eq!(size_of::<BlockInfo>(), 16);
        assert_eq!(size_of::<MemoryRegion>(), 24);
        assert_eq!(size_of::<TenderNote>(), 24);
        assert_eq!(size_of::<BootInfo>(), 128);
        // The offsets docs/tender-abi.md lists.
        use core::mem::offset_of;
        assert_eq!(offset_of!(BootInfo, flags), 16);
        assert_eq!(offset_of!(BootInfo, tsc_hz), 24);
        assert_eq!(offset_of!(BootInfo, boot_wall_ns), 40);
        assert_eq!(offset_of!(BootInfo, cmdline), 48);
        assert_eq!(offset_of!(BootInfo, memory_map), 64);
        assert_eq!(offset_of!(BootInfo, stack_bottom), 80);
        assert_eq!(offset_of!(BootInfo, net), 96);
        assert_eq!(offset_of!(BootInfo, block), 112);
        assert_eq!(offset_of!(NetInfo, mtu), 8);
        assert_eq!(offset_of!(Wait, events), 16);
        assert_eq!(offset_of!(NetFrames, done), 12);
        assert_eq!(offset_of!(BlockRequest, sector), 8);
        assert_eq!(offset_of!(DiskInfo, sectors), 8);
        assert_eq!(offset_of!(DiskInfo, flags), 20);
        assert_eq!(offset_of!(DiskRequest, sector), 8);
        assert_eq!(offset_of!(DiskRequest, len), 24);
        assert_eq!(offset_of!(DiskRequest, status), 32);
        assert_eq!(offset_of!(MemoryRegion, kind), 16);
        assert_eq!(offset_of!(TenderNote, entry), 8);
    }

    #[test]
    fn ports_round_trip() {
        for c in Call::ALL {
            assert_eq!(Call::from_port(c.port()), Some(c));
        }
        assert_eq!(Call::from_port(CALL_PORT_BASE + 8), Some(Call::Disk));
        assert_eq!(Call::from_port(CALL_PORT_BASE + 9), None);
        assert_eq!(Call::from_port(FAULT_GATE_PORT_BASE), None);
    }

    #[test]
    fn statuses_round_trip() {
        for v in 0..5 {
            assert_eq!(Status::from_u32(v).map(|s| s as u32), Some(v));
        }
        assert_eq!(Status::from_u32(5), None);
    }
}
