//! Link arguments for the example kernels, and the linker script's path for dependents.
//!
//! A PVH kernel is a static, libc-free ELF laid out by `kernel.ld`. The same arguments
//! are what the appliance compiler emits for appliance binaries on the PVH target (it can
//! read the script's path from `DEP_MORGANA_PVH_KERNEL_LD`).

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let script = dir.join("kernel.ld");
    println!("cargo:rerun-if-changed=kernel.ld");
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
    println!("cargo:kernel_ld={}", script.display());
}
