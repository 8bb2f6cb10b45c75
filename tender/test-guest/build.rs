//! Links the test guest as a tender kernel: static, no C runtime, laid out by guest.ld
//! (three W^X segments at 2 MiB and a PT_NOTE for the Morgana tender note).

fn main() {
    let dir =
        std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed=guest.ld");
    println!("cargo:rerun-if-changed=build.rs");
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--gc-sections",
        "-Wl,--build-id=none",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,-T,{}",
        dir.join("guest.ld").display()
    );
}
