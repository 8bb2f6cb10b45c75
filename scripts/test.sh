#!/usr/bin/env bash
# Installs what the tests need, then runs every check CI runs: formatting, clippy, and
# every test (unit, golden, broken-input corpus, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --quiet
