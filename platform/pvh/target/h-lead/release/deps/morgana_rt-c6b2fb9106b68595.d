/work/main/platform/pvh/target/h-lead/release/deps/morgana_rt-c6b2fb9106b68595.d: platform/rt/src/lib.rs platform/rt/src/executor.rs platform/rt/src/freestanding.rs platform/rt/src/taskset.rs platform/rt/src/time.rs

/work/main/platform/pvh/target/h-lead/release/deps/libmorgana_rt-c6b2fb9106b68595.rlib: platform/rt/src/lib.rs platform/rt/src/executor.rs platform/rt/src/freestanding.rs platform/rt/src/taskset.rs platform/rt/src/time.rs

/work/main/platform/pvh/target/h-lead/release/deps/libmorgana_rt-c6b2fb9106b68595.rmeta: platform/rt/src/lib.rs platform/rt/src/executor.rs platform/rt/src/freestanding.rs platform/rt/src/taskset.rs platform/rt/src/time.rs

platform/rt/src/lib.rs:
platform/rt/src/executor.rs:
platform/rt/src/freestanding.rs:
platform/rt/src/taskset.rs:
platform/rt/src/time.rs:
