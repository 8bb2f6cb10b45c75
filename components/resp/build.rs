//! Links the `kv-server` example (a freestanding `#![no_main]` binary made with
//! `morgana_unix::entry!`) the way codegen links appliances: no C runtime, no libc,
//! static, not position-independent.

fn main() {
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--gc-sections",
        "-Wl,--build-id=none",
    ] {
        println!("cargo:rustc-link-arg-examples={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
