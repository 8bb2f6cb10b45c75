#!/usr/bin/env bash
# Installs what the tests need, then runs every check CI runs: formatting, clippy, and
# every test (unit, golden, broken-input corpus, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# Kernel images boot under QEMU with TCG: the generated `.qemu` files ask for KVM first,
# and this project's machines have a nested KVM that cannot run a guest's kernel code
# (docs/deploy.md, "Acceleration"). scripts/morgana-run and the tests read this.
export MORGANA_ACCEL=tcg
# CI builds a clean clone once: incremental compilation's caches would cost CPU time and
# disk for the debug builds (clippy's, the tests', the nested ones) and never be read
# again. A developer's repeated runs keep them (docs/testing.md, "CI time").
if [ "${CI:-}" = true ]; then
    export CARGO_INCREMENTAL=0
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --quiet --no-fail-fast
