/work/main/platform/pvh/target/h-lead/release/examples/hello-78bcdf0462f850d6.d: platform/pvh/examples/hello.rs

/work/main/platform/pvh/target/h-lead/release/examples/hello-78bcdf0462f850d6: platform/pvh/examples/hello.rs

platform/pvh/examples/hello.rs:
