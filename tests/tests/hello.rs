//! End to end: `hello` prints the greeting its appliance.ron configures and exits 0.

use morgana_tests::build_appliance;
use std::process::Command;

#[test]
fn hello_prints_its_configured_greeting() {
    let binary = build_appliance("hello", &[]);
    let out = Command::new(&binary).output().expect("hello runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello, world!\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn hello_is_a_static_binary_without_libc() {
    let binary = build_appliance("hello", &[]);
    let elf = std::fs::read(&binary).expect("read binary");
    assert_eq!(&elf[..4], b"\x7fELF");
    // No program interpreter: nothing is loaded at run time.
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let phentsize = u16::from_le_bytes(elf[0x36..0x38].try_into().unwrap()) as usize;
    let phnum = u16::from_le_bytes(elf[0x38..0x3a].try_into().unwrap()) as usize;
    for i in 0..phnum {
        let p_type = u32::from_le_bytes(
            elf[phoff + i * phentsize..phoff + i * phentsize + 4]
                .try_into()
                .unwrap(),
        );
        assert_ne!(
            p_type, 3,
            "PT_INTERP present: the binary is dynamically linked"
        );
    }
}
