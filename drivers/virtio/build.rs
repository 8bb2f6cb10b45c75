//! Links the example kernel with the link arguments morgana-pvh publishes
//! (`DEP_MORGANA_PVH_LINK_ARGS`: a static, libc-free ELF laid out by its `kernel.ld`).

fn main() {
    let args = std::env::var("DEP_MORGANA_PVH_LINK_ARGS")
        .expect("morgana-pvh publishes its link arguments (links = \"morgana_pvh\")");
    for arg in args.split_whitespace() {
        println!("cargo:rustc-link-arg-examples={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
