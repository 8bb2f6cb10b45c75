//! Links the example (a freestanding `#![no_main]` binary with `morgana_unix::entry!`)
//! the way codegen links appliances: no C runtime, no libc, static, not
//! position-independent. The library itself needs nothing from this script. (The list
//! is written out here: morgana-unix is only a dev-dependency of this crate, so its
//! published `DEP_MORGANA_UNIX_LINK_ARGS` does not reach this script.)

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
