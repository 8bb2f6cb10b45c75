/work/main/platform/pvh/target/h-lead/release/deps/scopeguard-fba49dc323e7f7bf.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/scopeguard-1.2.0/src/lib.rs

/work/main/platform/pvh/target/h-lead/release/deps/libscopeguard-fba49dc323e7f7bf.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/scopeguard-1.2.0/src/lib.rs

/work/main/platform/pvh/target/h-lead/release/deps/libscopeguard-fba49dc323e7f7bf.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/scopeguard-1.2.0/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/scopeguard-1.2.0/src/lib.rs:
