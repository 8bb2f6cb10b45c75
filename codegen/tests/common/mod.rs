//! Helpers shared by the test files.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

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

/// Whether `rustfmt` can be run.
pub fn have_rustfmt() -> bool {
    Command::new("rustfmt")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `rustfmt --edition 2024 --check` on `file`; returns its complaint, if any.
pub fn rustfmt_check(file: &Path) -> Option<String> {
    let out = Command::new("rustfmt")
        .args(["--edition", "2024", "--check"])
        .arg(file)
        .output()
        .expect("run rustfmt");
    (!out.status.success()).then(|| {
        format!(
            "rustfmt would change {}:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
