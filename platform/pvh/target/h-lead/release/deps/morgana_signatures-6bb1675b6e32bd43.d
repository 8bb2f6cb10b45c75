/work/main/platform/pvh/target/h-lead/release/deps/morgana_signatures-6bb1675b6e32bd43.d: platform/signatures/src/lib.rs

/work/main/platform/pvh/target/h-lead/release/deps/libmorgana_signatures-6bb1675b6e32bd43.rlib: platform/signatures/src/lib.rs

/work/main/platform/pvh/target/h-lead/release/deps/libmorgana_signatures-6bb1675b6e32bd43.rmeta: platform/signatures/src/lib.rs

platform/signatures/src/lib.rs:
