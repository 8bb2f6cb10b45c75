//! Link arguments for the example kernels, published to dependents as well.
//!
//! A PVH kernel is a static, libc-free ELF laid out by `kernel.ld`. The same arguments
//! are what the appliance compiler emits for appliance binaries on the PVH target (it can
//! read the script's path from `DEP_MORGANA_PVH_KERNEL_LD`); dependents' build scripts get the
//! whole list as `DEP_MORGANA_PVH_LINK_ARGS`.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let script = dir.join("kernel.ld");
    println!("cargo:rerun-if-changed=kernel.ld");
    println!("cargo:rerun-if-changed=build.rs");
    let script_arg = format!("-Wl,-T,{}", script.display());
    let args = [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,--gc-sections",
        script_arg.as_str(),
    ];
    for arg in args {
        println!("cargo:rustc-link-arg-examples={arg}");
    }
    // For dependents' examples (e.g. morgana-virtio's): DEP_MORGANA_PVH_LINK_ARGS.
    println!("cargo:link_args={}", args.join(" "));
    println!("cargo:kernel_ld={}", script.display());
}
