/work/main/platform/pvh/target/h-lead/release/examples/idle-430fb6de4edee756.d: platform/pvh/examples/idle.rs

/work/main/platform/pvh/target/h-lead/release/examples/idle-430fb6de4edee756: platform/pvh/examples/idle.rs

platform/pvh/examples/idle.rs:
