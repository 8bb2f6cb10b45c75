//! Link arguments for the example kernel (the same ones morgana-pvh's build script emits
//! for its own examples): a PVH kernel is a static, libc-free ELF laid out by
//! morgana-pvh's `kernel.ld`.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let script = dir.join("../pvh/kernel.ld");
    println!("cargo:rerun-if-changed=../pvh/kernel.ld");
    println!("cargo:rerun-if-changed=build.rs");
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,--gc-sections",
    ] {
        println!("cargo:rustc-link-arg-examples={arg}");
    }
    println!("cargo:rustc-link-arg-examples=-Wl,-T,{}", script.display());
}
