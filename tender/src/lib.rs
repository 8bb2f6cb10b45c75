//! `morgana-tender`: runs a Morgana kernel directly on KVM, at CPL 3, and summons it on
//! its first packet. The binary is `src/main.rs`; this library holds its parts so that
//! their tests run without KVM:
//!
//! | module | what |
//! |---|---|
//! | [`image`] | the kernel ELF: segments and their rights, the Morgana note, symbols |
//! | [`layout`] | the guest's memory, region by region; checks guest addresses against it |
//! | [`paging`] | the identity-mapped page tables (W^X, guard pages unmapped, user bit) |
//! | [`cpu`] | GDT, IDT, TSS, the fault gates, control registers, CPUID |
//! | [`vm`] | a guest on KVM: template, boot, the run loop, why it stopped |
//! | [`calls`] | the guest ABI's calls, validated and carried out |
//! | [`net`], [`disk`] | the host devices behind the calls: a tap, a file |
//! | [`report`] | fault reports |
//! | [`summon`] | `--summon`: hold the tap, boot on the first frame, stop when idle |
//! | [`tick`] | the periodic signal that interrupts a guest that makes no calls |
//!
//! The guest ABI itself (ports, request blocks, boot information) is the
//! `morgana-tender-abi` crate, documented in `docs/tender-abi.md`.

#![deny(clippy::undocumented_unsafe_blocks, missing_docs)]

pub mod calls;
pub mod cpu;
pub mod disk;
pub mod image;
pub mod layout;
pub mod net;
pub mod paging;
pub mod report;
pub mod summon;
pub mod tick;
pub mod vm;

/// VmRSS and VmHWM of this process, in KiB, from `/proc/self/status`.
pub fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
