//! Links the example (a freestanding `#![no_main]` binary with `morgana_unix::entry!`)
//! the way codegen links appliances: no C runtime, no libc, static, not
//! position-independent. The library itself needs nothing from this script. (The list is
//! written out here, as in morgana-unix's build.rs: morgana-unix is only a dev-dependency
//! of this crate, so no `links` metadata of it could reach this script.)

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
    // The example compiles in `examples/site` with `crunch!`: a new file there must
    // rebuild it.
    println!("cargo:rerun-if-changed=examples/site");
    println!("cargo:rerun-if-changed=build.rs");
}
