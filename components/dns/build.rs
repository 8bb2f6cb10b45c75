//! Links the `link-check` binary (freestanding, `morgana_unix::entry!`) the way codegen
//! links appliances: no C runtime, no libc, static, not position-independent.

fn main() {
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--gc-sections",
        "-Wl,--build-id=none",
    ] {
        println!("cargo:rustc-link-arg-bin=link-check={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
