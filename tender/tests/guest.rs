//! The tender runs its test guest on this machine's KVM (`tender/test-guest`, built with
//! the `kernel` feature) and must report each outcome correctly: a clean run and its
//! exit status, every fault kind, every kind of bad request, a runaway guest, a silent
//! one, a deadlock, a triple fault, the disk, and images it must refuse.
//!
//! Needs `/dev/kvm` (CI has it); without it the tests skip, or fail under `CI=true`.

mod common;

use common::{kvm_missing, run_guest, unavailable};
use std::time::{SystemTime, UNIX_EPOCH};

fn skip() -> bool {
    unavailable(kvm_missing())
}

#[test]
fn the_guest_runs_at_cpl_3_and_its_status_becomes_the_tenders() {
    if skip() {
        return;
    }
    let run = run_guest(&["--stats"], &["exit=3"]);
    run.status_is(3)
        .console_has("tender-test-guest: hello from CPL 3")
        .console_has("tender-test-guest: abi 2, TSC ")
        .console_has("command line \"exit=3\"")
        .console_has("sse: 1.5 * 2.25 = 3.375")
        .console_has("exiting with status 3")
        .report_has("morgana-tender: the guest exited with status 3")
        .report_has("stats: ready_us=");
    // The hypervisor leaves are the tender's, unless the host's KVM answers them itself:
    // PVM (`kvm_pvm`, KVM without hardware nesting) keeps its own signature and feature
    // leaf whatever the tender sets (docs/tender-abi.md, "CPUID").
    if !run
        .stdout
        .contains("cpuid: hypervisor \"MorganaTendr\", abi 2")
    {
        assert!(
            std::path::Path::new("/sys/module/kvm_pvm").exists(),
            "the guest did not see the tender's CPUID leaves, and this host's KVM is not \
             PVM (the one known to keep its own):\n{}",
            run.stdout
        );
        run.console_has("cpuid: hypervisor \"KVMKVMKVM\\0\\0\\0\", abi ");
        println!(
            "note: this host's KVM is PVM: the guest sees its CPUID hypervisor leaves, not the tender's"
        );
    }

    // Time: the guest slept on the wait call, measured with its own TSC.
    let slept: u64 = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("tender-test-guest: slept "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no sleep line:\n{}", run.stdout));
    assert!((20..2000).contains(&slept), "slept {slept} ms for 20");
    // The wall clock from the boot information is the host's.
    let wall: u64 = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("tender-test-guest: wall clock "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no wall clock line:\n{}", run.stdout));
    let host = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(host.abs_diff(wall) < 120, "guest {wall} s, host {host} s");
    // Entropy from the host: 16 bytes, not all zero, different in another run.
    let entropy = |out: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix("tender-test-guest: entropy "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no entropy line:\n{out}"))
    };
    let first = entropy(&run.stdout);
    assert_eq!(first.len(), 32, "{first}");
    assert_ne!(first, "0".repeat(32));
    let again = run_guest(&[], &[]);
    again.status_is(0);
    assert!(
        again.stderr.is_empty(),
        "a clean run reports nothing: {}",
        again.stderr
    );
    assert_ne!(entropy(&again.stdout), first);
}

#[test]
fn every_fault_is_reported_and_stops_the_guest() {
    if skip() {
        return;
    }
    let cases: &[(&str, &[&str])] = &[
        (
            "null",
            &[
                "CPU exception #PF page fault (vector 14)",
                "read of 0x0: a null pointer dereference",
                "(tender_test_guest_start + 0x",
            ],
        ),
        (
            "stack-overflow",
            &[
                "#PF page fault",
                "stack overflow: it hit the stack's guard page",
                "tender_test_guest::faults::recurse",
            ],
        ),
        (
            "write-text",
            &[
                "write to 0x",
                "the kernel's .text is read-only (read+execute for the kernel): W^X",
            ],
        ),
        (
            "write-rodata",
            &[
                "write to 0x",
                ".rodata",
                "is read-only (read for the kernel): W^X",
            ],
        ),
        (
            "nx",
            &["instruction fetch at 0x", "the stack is not executable"],
        ),
        (
            "hlt",
            &["#GP general protection fault", "hlt, privileged at CPL 3"],
        ),
        (
            "ud2",
            &["#UD invalid opcode (vector 6)", "ud2: a deliberate trap"],
        ),
        (
            "divide",
            &["#DE divide error (vector 0)", "division by zero"],
        ),
        ("int3", &["int3"]),
        (
            "tender-memory",
            &["read of 0x2000: the tender's GDT, which the kernel cannot access"],
        ),
    ];
    for (kind, expected) in cases {
        let run = run_guest(&[], &["quiet", &format!("fault={kind}")]);
        run.status_is(100)
            .console_has(&format!("fault={kind}: faulting on purpose"))
            .report_has("morgana-tender: guest stopped: CPU exception");
        for e in *expected {
            run.report_has(e);
        }
        assert!(
            !run.stdout.contains("did not fault"),
            "fault={kind} did not fault:\n{}",
            run.stdout
        );
    }
    // A panic is the guest's own report and status.
    run_guest(&[], &["quiet", "fault=panic"])
        .status_is(5)
        .console_has("panic: panicked at")
        .report_has("the guest exited with status 5");
}

#[test]
fn bad_requests_stop_the_guest_with_a_report() {
    if skip() {
        return;
    }
    let cases: &[(&str, &str)] = &[
        (
            "outside",
            "bad request: console-write: its text: 0x4001000 + 64 is outside the guest's memory (0x0..0x4000000)",
        ),
        ("text", "bad request: entropy: its buffer: 0x"),
        (
            "block",
            "bad request: entropy: its request block: 0x3000 + 24 reaches the tender's IDT",
        ),
        (
            "frames",
            "bad request: net-recv: 100000 frames in one call; at most 64 are allowed",
        ),
        (
            "disk",
            "bad request: disk: its buffer: 0x4001000 + 512 is outside the guest's memory (0x0..0x4000000)",
        ),
        (
            "in-port",
            "bad request: in from port 0x4d00: the tender ABI has no input ports",
        ),
        (
            "width",
            "bad request: out to port 0x4d01 (exit) with 1 byte(s)",
        ),
    ];
    for (kind, expected) in cases {
        let run = run_guest(&["--memory-mib", "64"], &["quiet", &format!("bad={kind}")]);
        run.status_is(102)
            .report_has(expected)
            .report_has("at rip 0x");
        assert!(
            !run.stdout.contains("the tender accepted it"),
            "bad={kind} was accepted:\n{}",
            run.stdout
        );
    }
    let run = run_guest(&[], &["quiet", "bad=text"]);
    run.report_has("reaches the kernel's .text at 0x")
        .report_has("(read+execute for the kernel), which the call must write");
    // A fault gate's port: refused by the I/O bitmap (#GP) where KVM ignores IOPL 3, by
    // the tender (a bad request) where it honours it.
    let run = run_guest(&[], &["quiet", "bad=gate-port"]);
    match run.status {
        Some(100) => run.report_has("in/out on a port that is no tender call"),
        _ => run
            .status_is(102)
            .report_has("a fault gate, reserved for the tender's exception stubs"),
    };
}

#[test]
fn runaway_silent_and_deadlocked_guests_are_stopped() {
    if skip() {
        return;
    }
    run_guest(&["--runaway-calls", "1000"], &["quiet", "runaway"])
        .status_is(103)
        .report_has("guest stopped: runaway: 1000 calls in a row did nothing (the last: wait)");
    run_guest(&["--watchdog-ms", "200"], &["quiet", "spin"])
        .status_is(104)
        .report_has("guest stopped: watchdog: no call to the tender for 200 ms")
        .report_has("at rip 0x");
    run_guest(&[], &["quiet", "deadlock"])
        .status_is(105)
        .report_has(
            "guest stopped: deadlock: the guest waits with no deadline and no network device",
        );
    // With no fault gates, a fault cannot be delivered: a triple fault, still reported.
    run_guest(&["--no-fault-gates"], &["quiet", "fault=null"])
        .status_is(101)
        .report_has("guest stopped: triple fault: an exception could not be delivered")
        .report_has("(tender_test_guest_start + 0x");
}

#[test]
fn the_disk_is_read_and_written() {
    if skip() {
        return;
    }
    let path =
        std::env::temp_dir().join(format!("morgana-tender-test-disk-{}", std::process::id()));
    std::fs::write(&path, vec![0u8; 16 * 512]).unwrap();
    let disk = path.to_str().unwrap();
    run_guest(&["--disk", disk], &["quiet", "block"])
        .status_is(0)
        .console_has(
            "block: 16 sectors; write Ok(()), read Ok(()) (same bytes), flush Ok(()), read past the end Err(OutOfRange)",
        )
        .console_has(
            "disk 0: 16 sectors, flags 1; write Ok(()), read Ok(()) (same bytes), flush Ok(()), discard Ok(()); disk 1 Err(NoDevice)",
        );
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes[..512].iter().all(|b| *b == 0), "sector 0 untouched");
    for (i, b) in bytes[512..1536].iter().enumerate() {
        assert_eq!(*b, (i % 251) as u8, "byte {i} of sectors 1-2");
    }
    // Version 2's disk calls wrote sectors 3-4 and discarded sector 4 (zeros again).
    for (i, b) in bytes[1536..2048].iter().enumerate() {
        assert_eq!(*b, (i % 251) as u8, "byte {i} of sector 3");
    }
    assert!(
        bytes[2048..].iter().all(|b| *b == 0),
        "sectors 4.. untouched or discarded"
    );
    run_guest(&["--disk-ro", disk], &["quiet", "block"])
        .status_is(0)
        .console_has("write Err(ReadOnly)")
        .console_has(
            "disk 0: 16 sectors, flags 3; write Err(ReadOnly), read Ok(()) (different bytes), flush Err(ReadOnly), discard Err(ReadOnly); disk 1 Err(NoDevice)",
        );
    run_guest(&[], &["quiet", "block"])
        .status_is(6)
        .console_has("block: no disk");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn images_the_tender_cannot_run_are_refused_clearly() {
    if skip() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("morgana-tender-images-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run_image = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut c = std::process::Command::new(common::tender());
        c.arg(&path);
        common::run(c)
    };
    run_image("text.elf", b"this is not a kernel")
        .status_is(110)
        .report_has("morgana-tender: error:")
        .report_has("not an ELF64 kernel image");

    // A minimal ELF whose only segment is writable and executable.
    let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
    elf.extend([0; 8]);
    elf.extend(2u16.to_le_bytes()); // ET_EXEC
    elf.extend(62u16.to_le_bytes()); // x86-64
    elf.extend(1u32.to_le_bytes());
    elf.extend(0x20_0000u64.to_le_bytes()); // entry
    elf.extend(64u64.to_le_bytes()); // phoff
    elf.extend(0u64.to_le_bytes()); // shoff
    elf.extend(0u32.to_le_bytes());
    for v in [64u16, 56, 1, 64, 0, 0] {
        elf.extend(v.to_le_bytes());
    }
    elf.extend(1u32.to_le_bytes()); // PT_LOAD
    elf.extend(7u32.to_le_bytes()); // RWX
    for v in [0x1000u64, 0x20_0000, 0x20_0000, 16, 16, 0x1000] {
        elf.extend(v.to_le_bytes());
    }
    elf.resize(0x1010, 0xc3);
    run_image("wx.elf", &elf)
        .status_is(110)
        .report_has("is writable and executable; the tender keeps W^X");
    // The same segment read+execute: no Morgana note, so no entry for the tender.
    elf[68] = 5;
    run_image("plain.elf", &elf)
        .status_is(110)
        .report_has("the image has no Morgana tender note");
    // With the note (a PT_NOTE segment over 44 bytes appended to the file), linked
    // below 1 MiB.
    elf[56..58].copy_from_slice(&2u16.to_le_bytes()); // e_phnum
    let note_at = elf.len() as u64;
    elf[64 + 56..64 + 112].fill(0);
    let mut ph = Vec::new();
    ph.extend(4u32.to_le_bytes()); // PT_NOTE
    ph.extend(4u32.to_le_bytes()); // R
    for v in [note_at, 0, 0, 44, 44, 4] {
        ph.extend(v.to_le_bytes());
    }
    elf[64 + 56..64 + 112].copy_from_slice(&ph);
    elf.extend(8u32.to_le_bytes());
    elf.extend(24u32.to_le_bytes());
    elf.extend(morgana_tender_abi::NOTE_TYPE_TENDER.to_le_bytes());
    elf.extend(b"Morgana\0");
    elf.extend(morgana_tender_abi::ABI_VERSION.to_le_bytes());
    elf.extend(0u32.to_le_bytes());
    elf.extend(0x8_0000u64.to_le_bytes()); // entry
    elf.extend(0u64.to_le_bytes());
    for off in [80usize, 88] {
        elf[off..off + 8].copy_from_slice(&0x8_0000u64.to_le_bytes());
    }
    elf[24..32].copy_from_slice(&0x8_0000u64.to_le_bytes());
    run_image("low.elf", &elf)
        .status_is(110)
        .report_has("below 1 MiB, where the tender keeps its own tables");
    std::fs::remove_dir_all(&dir).unwrap();

    // Too little memory for the guest and its stack.
    let mut c = std::process::Command::new(common::tender());
    c.args(["--memory-mib", "2"]).arg(common::guest());
    common::run(c)
        .status_is(110)
        .report_has("cannot hold the kernel and its stack");
}
