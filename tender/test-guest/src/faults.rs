//! Faults and bad requests on purpose, so the tender's tests can check its reports.

use crate::{Boot, println};
use core::arch::asm;
use morgana_tender_abi::{self as abi, Call, guest};

/// A constant in `.rodata`, the target of `write-rodata`.
static READ_ONLY: [u8; 8] = *b"morgana\0";

/// Faults as `kind` says; never returns for a known kind.
pub fn fault(kind: &str) {
    println!("fault={kind}: faulting on purpose");
    match kind {
        "null" => {
            let v: u64;
            // SAFETY: deliberately reads address 0, never mapped: the CPU faults before
            // anything is read, and the tender stops the guest.
            unsafe { asm!("mov {}, [0]", out(reg) v, options(nostack, readonly)) };
            core::hint::black_box(v);
        }
        "stack-overflow" => {
            core::hint::black_box(recurse(0));
        }
        "write-text" => {
            let target = crate::tender_test_guest_start as *const u8;
            // SAFETY: deliberately writes to the text, mapped read+execute: the CPU
            // faults and the write never happens.
            unsafe { asm!("mov byte ptr [{}], 0", in(reg) target, options(nostack)) };
        }
        "write-rodata" => {
            let target = READ_ONLY.as_ptr();
            // SAFETY: deliberately writes to .rodata, mapped read-only: the CPU faults.
            unsafe { asm!("mov byte ptr [{}], 0", in(reg) target, options(nostack)) };
        }
        "nx" => {
            let code = [0xC3u8; 16]; // ret
            let code = core::hint::black_box(code);
            // SAFETY: deliberately calls into the stack, mapped no-execute: the
            // instruction fetch faults, nothing runs.
            unsafe { asm!("call {}", in(reg) code.as_ptr(), clobber_abi("C")) };
        }
        "hlt" => {
            // SAFETY: `hlt` is privileged at CPL 3: it raises #GP and does nothing.
            unsafe { asm!("hlt", options(nomem, nostack)) };
        }
        "ud2" => {
            // SAFETY: deliberately raises #UD.
            unsafe { asm!("ud2", options(nomem, nostack)) };
        }
        "int3" => {
            // SAFETY: a breakpoint: the gate's DPL is 0, so this raises #GP.
            unsafe { asm!("int3", options(nomem, nostack)) };
        }
        "divide" => {
            // SAFETY: deliberately divides by zero: #DE before anything changes.
            unsafe {
                asm!("xor ecx, ecx", "mov eax, 1", "xor edx, edx", "div ecx",
                     out("eax") _, out("ecx") _, out("edx") _, options(nomem, nostack))
            };
        }
        "tender-memory" => {
            let v: u64;
            // SAFETY: deliberately reads the tender's GDT page (supervisor-only): the CPU
            // raises a page fault at CPL 3.
            unsafe { asm!("mov {}, [0x2000]", out(reg) v, options(nostack, readonly)) };
            core::hint::black_box(v);
        }
        "panic" => panic!("fault=panic requested"),
        _ => {
            println!("unknown fault {kind:?}");
            guest::exit(7);
        }
    }
    panic!("fault={kind} did not fault")
}

/// Recurses until the stack runs into its guard page.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = [depth; 256];
    let frame = core::hint::black_box(frame);
    if core::hint::black_box(depth) == u64::MAX {
        return frame[0];
    }
    recurse(depth + 1).wrapping_add(frame[depth as usize % 256])
}

/// Hands the tender a request it must refuse; the tender stops the guest.
pub fn bad_request(kind: &str, boot: &Boot) {
    println!("bad={kind}: handing the tender a bad request");
    match kind {
        "outside" => {
            let mut block = abi::ConsoleWrite {
                buf: boot.memory_end() + 0x1000,
                len: 64,
            };
            // SAFETY: the block is valid; the buffer it names is deliberately outside
            // guest memory, which the tender must refuse without reading.
            unsafe { guest::call(Call::ConsoleWrite, (&raw mut block) as u32) };
        }
        "text" => {
            let mut block = abi::Entropy {
                buf: crate::tender_test_guest_start as *const u8 as u64,
                len: 64,
                ..Default::default()
            };
            // SAFETY: the block is valid; the buffer is the guest's own text, which the
            // tender must refuse to write.
            unsafe { guest::call(Call::Entropy, (&raw mut block) as u32) };
        }
        "block" => {
            // SAFETY: the "request block" is the tender's IDT page, which the tender must
            // refuse to read or write.
            unsafe { guest::call(Call::Entropy, 0x3000) };
        }
        "disk" => {
            let mut block = abi::DiskRequest {
                op: abi::BLOCK_READ,
                buf: boot.memory_end() + 0x1000,
                len: 512,
                ..Default::default()
            };
            // SAFETY: the block is valid; the buffer it names is deliberately outside
            // guest memory, which the tender must refuse before touching any disk.
            unsafe { guest::call(Call::Disk, (&raw mut block) as u32) };
        }
        "frames" => {
            let mut block = abi::NetFrames {
                descs: 0,
                count: 100_000,
                ..Default::default()
            };
            // SAFETY: the block is valid; its count is deliberately beyond the limit.
            unsafe { guest::call(Call::NetRecv, (&raw mut block) as u32) };
        }
        "gate-port" => {
            // SAFETY: writes to a fault gate's port from CPL 3, which the tender refuses.
            unsafe { asm!("out 0xee, al", in("al") 0u8, options(nomem, nostack)) };
        }
        "in-port" => {
            let v: u8;
            // SAFETY: `in` exits to the tender, which has no input ports and refuses it.
            unsafe {
                asm!("in al, dx", out("al") v, in("dx") Call::ConsoleWrite.port(), options(nomem, nostack))
            };
            core::hint::black_box(v);
        }
        "width" => {
            // SAFETY: a call made with an 8-bit `out`, which the tender refuses.
            unsafe {
                asm!("out dx, al", in("dx") Call::Exit.port(), in("al") 0u8, options(nomem, nostack))
            };
        }
        _ => {
            println!("unknown bad request {kind:?}");
            guest::exit(7);
        }
    }
    println!("bad={kind}: the tender accepted it");
    guest::exit(7)
}
