//! Secrets: private keys and other key material, kept apart from public content.
//!
//! A [`Secret`] is the only way key material travels through an appliance:
//! - **Compiled in**: [`secret!`] places the file's bytes in a static of their own in
//!   the linker section [`SECTION`] (`.morgana.secrets`), never in a `crunch!` table or in
//!   `.rodata` next to public strings, so a build can be checked (`readelf -x
//!   .morgana.secrets`, `strings`) and a build without secrets has no such section.
//! - **Loaded at boot** ([`Secret::from_vec`]): the platform reads it (on Unix
//!   `morgana_unix::read_secret_file`, from a path, never from the environment's value
//!   itself) into one exact-size allocation, zeroised when the secret is dropped.
//!
//! `Secret` implements neither `Debug` nor `Display` (so no `{:?}` of a struct holding
//! one can print it, and such a struct cannot derive `Debug` by accident), nor `Clone`
//! (copies are explicit: [`Secret::expose`] and the caller's own buffer, which it must
//! zeroise). Consumers that decode a secret (the TLS component parsing a PEM key) keep
//! the decoded key in types that zeroise themselves on drop.
//!
//! # Where a secret comes from, per target
//!
//! | target | compiled in | at boot |
//! |---|---|---|
//! | Unix process | `secret!` | a file whose path is configured (appliance.ron) or given by the environment variable named there; the file is read once at start |
//! | Xen PVH | `secret!` | a xenstore key under the domain's own `data/` tree, written by the toolstack after `xl create` and removed by the guest once read (values are at most 4 KiB: chunks `<key>/0`, `<key>/1`, ...) |
//! | PVH under QEMU/KVM | `secret!` | none: the command line and fw_cfg are readable by anyone who can list processes or the VM's configuration, so a private key never travels that way |
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::vec::Vec;
use zeroize::Zeroizing;

/// The linker section compiled-in secrets live in.
pub const SECTION: &str = ".morgana.secrets";

/// Key material. Not `Debug`, `Display` or `Clone`; an owned secret is zeroised on drop.
pub struct Secret {
    inner: Inner,
}

enum Inner {
    CompiledIn(&'static [u8]),
    Loaded(Zeroizing<Vec<u8>>),
}

impl Secret {
    /// A secret compiled into the image (use [`secret!`], which puts the bytes in
    /// [`SECTION`]).
    pub const fn compiled_in(bytes: &'static [u8]) -> Secret {
        Secret {
            inner: Inner::CompiledIn(bytes),
        }
    }

    /// A secret loaded at boot. Takes the buffer over; it is zeroised when the secret is
    /// dropped.
    pub fn from_vec(bytes: Vec<u8>) -> Secret {
        Secret {
            inner: Inner::Loaded(Zeroizing::new(bytes)),
        }
    }

    /// The bytes. The name is meant to stand out in review: every read of key material
    /// goes through here.
    pub fn expose(&self) -> &[u8] {
        match &self.inner {
            Inner::CompiledIn(b) => b,
            Inner::Loaded(v) => v,
        }
    }

    /// The bytes of a secret loaded at boot, to fill it in place (a compiled-in secret
    /// is read-only: empty).
    pub fn expose_mut(&mut self) -> &mut [u8] {
        match &mut self.inner {
            Inner::CompiledIn(_) => &mut [],
            Inner::Loaded(v) => v,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it was compiled in (rather than loaded at boot).
    pub fn is_compiled_in(&self) -> bool {
        matches!(self.inner, Inner::CompiledIn(_))
    }
}

/// Compiles the file at `path` (absolute, e.g. `concat!(env!("CARGO_MANIFEST_DIR"),
/// "/secrets/tls.key")`) into the image as a [`Secret`], its bytes in a static of their
/// own in the linker section [`SECTION`].
///
/// The static is an array, not a slice: its bytes live in the section itself, not behind
/// a pointer into `.rodata`.
#[macro_export]
macro_rules! secret {
    ($path:expr) => {{
        #[unsafe(link_section = ".morgana.secrets")]
        static BYTES: [u8; include_bytes!($path).len()] = *include_bytes!($path);
        $crate::Secret::compiled_in(&BYTES)
    }};
}

#[cfg(test)]
extern crate std;

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn secrets_expose_their_bytes_and_say_where_they_came_from() {
        let s = Secret::from_vec(vec![1, 2, 3]);
        assert_eq!(s.expose(), &[1, 2, 3]);
        assert_eq!(s.len(), 3);
        assert!(!s.is_compiled_in());
        let c = Secret::compiled_in(b"key");
        assert!(c.is_compiled_in() && !c.is_empty());
    }

    #[test]
    #[allow(unsafe_code)] // `#[unsafe(link_section)]` in the macro's expansion
    fn the_macro_puts_the_bytes_in_the_secrets_section() {
        let s = secret!(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        assert!(s.expose().starts_with(b"[package]"));
        assert!(s.is_compiled_in());
        // The test binary has the section, and the secret's bytes are inside it.
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new("readelf")
            .args(["-W", "-S"])
            .arg(&exe)
            .output()
            .expect("readelf (binutils, scripts/setup.sh)");
        let table = std::string::String::from_utf8_lossy(&out.stdout);
        let line = table
            .lines()
            .find(|l| l.contains(SECTION))
            .unwrap_or_else(|| panic!("no {SECTION} section in:\n{table}"));
        // `[Nr] Name Type Address Off Size ...`
        let fields: std::vec::Vec<&str> =
            line.split(']').nth(1).unwrap().split_whitespace().collect();
        let offset = usize::from_str_radix(fields[3], 16).unwrap();
        let size = usize::from_str_radix(fields[4], 16).unwrap();
        let image = std::fs::read(&exe).unwrap();
        let section = &image[offset..offset + size];
        assert!(
            section.windows(s.len()).any(|w| w == s.expose()),
            "the secret's bytes are not in {SECTION}"
        );
    }
}
