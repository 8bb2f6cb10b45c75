//! The final layout of `appliance.rs`: rustfmt's, when the toolchain has rustfmt.
//!
//! prettyplease lays out each generated block well, but not always as rustfmt would (a
//! struct pattern broken over lines that rustfmt keeps on one, a call's arguments put
//! on lines of their own). The generated file is read by people — in the build's
//! `OUT_DIR`, in the goldens, in docs — and they run rustfmt on their own code, so the
//! whole file goes through rustfmt once it is assembled: `rustfmt --edition 2024
//! --emit stdout`, fed on stdin, which is Cargo's own toolchain through rustup (`RUSTFMT`
//! names another). Its configuration is the one rustfmt finds from the build script's
//! directory, i.e. the appliance's own `rustfmt.toml` if it has one.
//!
//! Without rustfmt (a toolchain installed without the component), or if it fails, the
//! prettyplease layout is kept: the code is the same either way, only its line breaks
//! differ, and a build never fails for want of a formatter. The golden tests
//! (`codegen/tests/golden.rs`) require rustfmt, so the goldens are rustfmt's layout.

use std::io::Write;
use std::process::{Command, Stdio};

/// `source` as rustfmt lays it out, or `None` when rustfmt is missing or refuses it.
pub fn format(source: &str) -> Option<String> {
    let program = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let mut child = Command::new(program)
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // A writer thread: rustfmt may fill its stdout pipe before it has read all of stdin.
    let mut stdin = child.stdin.take()?;
    let input = source.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    (!text.trim().is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_what_fits_on_a_line_and_keeps_comments() {
        let Some(out) = format("/// doc\npub const X:\n u16 =\n 80;\n// keep me\n") else {
            // Only a toolchain without rustfmt gets here; the golden tests fail there.
            eprintln!("rustfmt not found: skipped");
            return;
        };
        assert_eq!(out, "/// doc\npub const X: u16 = 80;\n// keep me\n");
    }

    #[test]
    fn refuses_what_is_not_rust() {
        assert_eq!(format("fn (("), None);
    }
}
