//! The tender's test guest: a small kernel entered by `morgana-tender` at CPL 3.
//!
//! It says hello, checks that it runs at CPL 3 with IOPL 3, reads its boot information,
//! computes with SSE, sleeps on the tender's wait call, reads the wall clock and takes
//! entropy; then does what its command line asks:
//!
//! | switch | what |
//! |---|---|
//! | `exit=N` | exits with status N (default 0) |
//! | `fault=KIND` | faults on purpose: `null`, `stack-overflow`, `write-text`, `write-rodata`, `nx`, `hlt`, `ud2`, `int3`, `divide`, `tender-memory`, `panic` |
//! | `bad=KIND` | hands the tender a bad request: `outside` (a buffer beyond its memory), `text` (entropy into its own text), `block` (a request block in the tender's pages), `frames` (too many frames), `gate-port`, `in-port`, `width` |
//! | `runaway` | calls `wait` with a past deadline, forever |
//! | `spin` | loops without calling the tender |
//! | `deadlock` | waits with no deadline and no network |
//! | `block` | writes sector 1 of its disk, reads it back, flushes |
//! | `serve` | serves HTTP on `ip=A.B.C.D/N` port `port=P` (default 80) with smoltcp, answers pings; exits 0 after `requests=N` responses (default: never). Path `/bad-pointer` makes it hand the tender a bad pointer |
//! | `quiet` | skips the hello lines |
#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks)]

mod faults;
mod heap;
mod serve;

use core::fmt::{self, Write};
use morgana_tender_abi::{self as abi, BootInfo, guest};

morgana_rt::freestanding_symbols!(unwind_resume = abort);
morgana_tender_abi::tender_note!(entry = tender_test_guest_start, stack_bytes = 128 * 1024);

#[global_allocator]
static HEAP: heap::Heap = heap::Heap::new();

/// Status for a panic.
const PANIC_STATUS: u32 = 5;

extern "C" fn abort() -> ! {
    guest::console_write(b"tender-test-guest: _Unwind_Resume called\n");
    guest::exit(PANIC_STATUS)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("panic: {info}");
    guest::exit(PANIC_STATUS)
}

/// Collects one line of output and writes it with one console call.
pub struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    /// An empty line.
    pub const fn new() -> Line {
        Line {
            buf: [0; 512],
            len: 0,
        }
    }

    /// What was collected.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Writes what was collected.
    pub fn flush(&mut self) {
        guest::console_write(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Default for Line {
    fn default() -> Line {
        Line::new()
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.as_bytes().chunks(self.buf.len()) {
            if self.len + chunk.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}

/// Prints a line on the tender's console, prefixed with the guest's name.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        let mut line = $crate::Line::new();
        let _ = ::core::fmt::Write::write_str(&mut line, "tender-test-guest: ");
        let _ = ::core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
        let _ = ::core::fmt::Write::write_str(&mut line, "\n");
        line.flush();
    }};
}

/// What the guest knows at boot.
pub struct Boot {
    /// The boot information.
    pub info: &'static BootInfo,
    /// The command line.
    pub cmdline: &'static str,
    /// The memory map.
    pub memory: &'static [abi::MemoryRegion],
}

impl Boot {
    /// Nanoseconds since boot, from the TSC.
    pub fn now_ns(&self) -> u64 {
        let ticks = guest::rdtsc().wrapping_sub(self.info.boot_tsc);
        (u128::from(ticks) * 1_000_000_000 / u128::from(self.info.tsc_hz.max(1))) as u64
    }

    /// The TSC value `ns` nanoseconds from now.
    pub fn deadline_after(&self, ns: u64) -> u64 {
        let ticks = u128::from(ns) * u128::from(self.info.tsc_hz) / 1_000_000_000;
        guest::rdtsc().saturating_add(ticks as u64)
    }

    /// The value of `key=value` on the command line; `Some("")` for a bare `key`.
    pub fn arg(&self, key: &str) -> Option<&'static str> {
        self.cmdline
            .split_ascii_whitespace()
            .find_map(|w| match w.split_once('=') {
                Some((k, v)) if k == key => Some(v),
                None if w == key => Some(""),
                _ => None,
            })
    }

    /// One past the guest's last byte of memory.
    pub fn memory_end(&self) -> u64 {
        self.memory
            .iter()
            .map(|r| r.start + r.len)
            .max()
            .unwrap_or(0)
    }
}

fn cpl_and_iopl() -> (u16, u64) {
    let cs: u16;
    let flags: u64;
    // SAFETY: reads CS and RFLAGS; both are allowed at CPL 3.
    unsafe {
        core::arch::asm!("mov {0:x}, cs", "pushfq", "pop {1}", out(reg) cs, out(reg) flags);
    }
    (cs & 3, (flags >> 12) & 3)
}

/// The kernel's entry point, named by the tender note.
#[unsafe(no_mangle)]
pub extern "C" fn tender_test_guest_start(info: &'static BootInfo) -> ! {
    if info.magic != abi::BOOT_MAGIC || info.abi_version != abi::ABI_VERSION {
        guest::console_write(b"tender-test-guest: bad boot information\n");
        guest::exit(9);
    }
    // SAFETY: the tender put the command line and the memory map where the boot
    // information says, in memory the guest may read, for the whole run.
    let (cmdline, memory) = unsafe {
        (
            core::slice::from_raw_parts(info.cmdline as *const u8, info.cmdline_len as usize),
            core::slice::from_raw_parts(
                info.memory_map as *const abi::MemoryRegion,
                info.memory_map_len as usize,
            ),
        )
    };
    let boot = Boot {
        info,
        cmdline: core::str::from_utf8(cmdline).unwrap_or(""),
        memory,
    };
    // The largest RAM region becomes the heap.
    if let Some(ram) = memory
        .iter()
        .filter(|r| r.kind == abi::REGION_RAM)
        .max_by_key(|r| r.len)
    {
        // SAFETY: RAM regions are the guest's alone, mapped read-write, and claimed once.
        unsafe { HEAP.claim(ram.start, ram.len) };
    }

    if boot.arg("quiet").is_none() {
        hello(&boot);
    }
    if let Some(kind) = boot.arg("fault") {
        faults::fault(kind);
    }
    if let Some(kind) = boot.arg("bad") {
        faults::bad_request(kind, &boot);
    }
    if boot.arg("runaway").is_some() {
        println!("calling wait with a past deadline, forever");
        loop {
            guest::wait(0);
        }
    }
    if boot.arg("spin").is_some() {
        println!("spinning without calls");
        loop {
            core::hint::spin_loop();
        }
    }
    if boot.arg("deadlock").is_some() {
        println!("waiting for nothing");
        guest::wait(abi::NO_DEADLINE);
        println!("the wait returned");
        guest::exit(8);
    }
    if boot.arg("block").is_some() {
        block_test(&boot);
    }
    if boot.arg("serve").is_some() {
        serve::serve(&boot);
    }
    let status = boot.arg("exit").and_then(|s| s.parse().ok()).unwrap_or(0);
    println!("exiting with status {status}");
    guest::exit(status)
}

fn hello(boot: &Boot) {
    let info = boot.info;
    let (cpl, iopl) = cpl_and_iopl();
    println!("hello from CPL {cpl} with IOPL {iopl}");
    let ram: u64 = boot
        .memory
        .iter()
        .filter(|r| r.kind == abi::REGION_RAM)
        .map(|r| r.len)
        .sum();
    println!(
        "abi {}, TSC {} Hz, {} KiB RAM in {} regions, stack {:#x}..{:#x}{}",
        info.abi_version,
        info.tsc_hz,
        ram / 1024,
        boot.memory.len(),
        info.stack_bottom,
        info.stack_top,
        if info.flags & abi::BOOT_SUMMONED != 0 {
            ", summoned"
        } else {
            ""
        }
    );
    println!("command line {:?}", boot.cmdline);
    // The hypervisor leaves say who runs the guest.
    let sig = core::arch::x86_64::__cpuid(abi::CPUID_SIGNATURE_LEAF);
    let leaf = core::arch::x86_64::__cpuid(abi::CPUID_INFO_LEAF);
    let mut name = [0u8; 12];
    name[..4].copy_from_slice(&sig.ebx.to_le_bytes());
    name[4..8].copy_from_slice(&sig.ecx.to_le_bytes());
    name[8..].copy_from_slice(&sig.edx.to_le_bytes());
    println!(
        "cpuid: hypervisor {:?}, abi {}",
        core::str::from_utf8(&name).unwrap_or("?"),
        leaf.eax
    );
    // Floating point is SSE on x86-64: native at CPL 3 (KVM's emulator would fail on it
    // at CPL 0 on this kind of host).
    let a = core::hint::black_box(1.5f64);
    let b = core::hint::black_box(2.25f64);
    println!("sse: {a} * {b} = {}", a * b);
    // Frames may wake the wait early (the host's tap chatter): wait until the deadline.
    let before = boot.now_ns();
    let deadline = boot.deadline_after(20_000_000);
    let mut wakes = 0;
    while guest::wait(deadline) & abi::EVENT_DEADLINE == 0 {
        wakes += 1;
    }
    let slept = (boot.now_ns() - before) / 1_000_000;
    println!("slept {slept} ms for 20 ({wakes} early wake-ups)");
    let wall = info.boot_wall_ns + boot.now_ns();
    println!("wall clock {} s since the epoch", wall / 1_000_000_000);
    let mut random = [0u8; 16];
    match guest::entropy(&mut random) {
        Ok(()) => {
            let mut line = Line::new();
            let _ = line.write_str("tender-test-guest: entropy ");
            for b in random {
                let _ = write!(line, "{b:02x}");
            }
            let _ = line.write_str("\n");
            line.flush();
        }
        Err(e) => println!("entropy failed: {e}"),
    }
    if info.net.flags & abi::NET_PRESENT != 0 {
        let m = info.net.mac;
        println!(
            "network: mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, mtu {}",
            m[0], m[1], m[2], m[3], m[4], m[5], info.net.mtu
        );
    }
}

fn block_test(boot: &Boot) {
    let block = boot.info.block;
    if block.flags & abi::BLOCK_PRESENT == 0 {
        println!("block: no disk");
        guest::exit(6);
    }
    let mut data = [0u8; 1024];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let wrote = guest::block_write(1, &data);
    let mut back = [0u8; 1024];
    let read = guest::block_read(1, &mut back);
    let flushed = guest::block_flush();
    let beyond = guest::block_read(block.sectors, &mut back[..512]);
    println!(
        "block: {} sectors; write {:?}, read {:?} ({}), flush {:?}, read past the end {:?}",
        block.sectors,
        wrote,
        read,
        if back == data {
            "same bytes"
        } else {
            "different bytes"
        },
        flushed,
        beyond
    );
    // Version 2: the same disk as disk 0 of the disk calls; no disk 1.
    let info = guest::disk_info(0);
    let wrote = guest::disk_write(0, 3, &data);
    let mut back = [0u8; 1024];
    let read = guest::disk_read(0, 3, &mut back);
    let flushed = guest::disk_flush(0);
    let discarded = guest::disk_discard(0, 4, 512);
    println!(
        "disk 0: {} sectors, flags {}; write {:?}, read {:?} ({}), flush {:?}, discard {:?}; disk 1 {:?}",
        info.map_or(0, |i| i.sectors),
        info.map_or(0, |i| i.flags),
        wrote,
        read,
        if back == data {
            "same bytes"
        } else {
            "different bytes"
        },
        flushed,
        discarded,
        guest::disk_info(1).map(|_| ()),
    );
}
