//! Helpers shared by the test files.
#![allow(dead_code)]

use std::path::Path;

/// Whether `UPDATE_GOLDEN=1` asks to re-bless expected files.
pub fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// Compares `actual` with the file at `expected`, or rewrites it when updating.
/// Returns a description of the mismatch, if any.
pub fn compare(expected: &Path, actual: &str) -> Option<String> {
    if updating() {
        std::fs::write(expected, actual)
            .unwrap_or_else(|e| panic!("write {}: {e}", expected.display()));
        return None;
    }
    let want = std::fs::read_to_string(expected).unwrap_or_default();
    if want == actual {
        return None;
    }
    let first_diff = want
        .lines()
        .zip(actual.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| want.lines().count().min(actual.lines().count()));
    Some(format!(
        "{} differs from the generated text (first difference at line {}; rerun with UPDATE_GOLDEN=1 to bless)\n--- expected\n{want}\n--- actual\n{actual}",
        expected.display(),
        first_diff + 1
    ))
}

/// Whether CI runs us (`CI=true`): then a test that lacks a tool fails instead of
/// skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether a test that needs `what` may go on: true if `available`; false (the test
/// skips, saying why) on a developer's machine; a failure under CI, where every tool a
/// test needs is installed by scripts/setup.sh.
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    assert!(
        !in_ci(),
        "{what} is not available, and CI=true: CI must run this test (scripts/setup.sh installs what it needs)"
    );
    eprintln!("skipped: {what} is not available (under CI=true this test fails instead)");
    false
}
