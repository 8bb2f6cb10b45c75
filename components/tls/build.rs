//! Links the example (a freestanding `#![no_main]` binary with `morgana_unix::entry!`)
//! the way codegen links appliances: no C runtime, no libc, static, not
//! position-independent. The library itself needs nothing from this script. (Written out
//! as in morgana-direct's build.rs: morgana-unix is only a dev-dependency here.)

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
    println!("cargo:rerun-if-changed=examples/site");
    println!("cargo:rerun-if-changed=build.rs");
}
