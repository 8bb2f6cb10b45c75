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

/// A secret loaded at start, with the name appliance.ron gives it (the path of its file,
/// as written in the `Secrets` device's `files`).
pub struct Named {
    /// The name.
    pub name: &'static str,
    /// The key material.
    pub secret: Secret,
}

/// A compiled-in secret with its name: the bytes are a static in [`SECTION`] (see
/// [`table!`]). No destructor, so that a table of them can be a `static`.
pub struct CompiledIn {
    /// The name.
    pub name: &'static str,
    /// The bytes, in [`SECTION`].
    pub bytes: &'static [u8],
}

/// The secrets of a `Secrets` device: compiled in ([`table!`], a `static`) or loaded at
/// start ([`Table::from_vec`]). Looked up by name; names are checked when the appliance
/// is built, so a lookup of a name the device was given cannot fail.
pub struct Table {
    entries: Entries,
}

enum Entries {
    Static(&'static [CompiledIn]),
    Loaded(Vec<Named>),
}

/// The bytes of two secrets that belong together (a certificate chain and its key).
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// A name that the table does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Missing(pub &'static str);

impl core::fmt::Display for Missing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "secrets: no secret named {:?}", self.0)
    }
}

impl core::error::Error for Missing {}

impl Table {
    /// A table of compiled-in secrets (what [`table!`] expands to).
    pub const fn new(entries: &'static [CompiledIn]) -> Table {
        Table {
            entries: Entries::Static(entries),
        }
    }

    /// A table of secrets loaded at start; each is zeroised when the table is dropped.
    pub fn from_vec(entries: Vec<Named>) -> Table {
        Table {
            entries: Entries::Loaded(entries),
        }
    }

    /// The bytes of the secret called `name`. The name is meant to stand out in review,
    /// like [`Secret::expose`].
    pub fn expose(&self, name: &'static str) -> Result<&[u8], Missing> {
        match &self.entries {
            Entries::Static(e) => e.iter().find(|n| n.name == name).map(|n| n.bytes),
            Entries::Loaded(e) => e.iter().find(|n| n.name == name).map(|n| n.secret.expose()),
        }
        .ok_or(Missing(name))
    }

    /// The names, in the order of appliance.ron (for logs: never the bytes).
    pub fn names(&self) -> Vec<&'static str> {
        match &self.entries {
            Entries::Static(e) => e.iter().map(|n| n.name).collect(),
            Entries::Loaded(e) => e.iter().map(|n| n.name).collect(),
        }
    }

    /// How many secrets the table holds.
    pub fn len(&self) -> usize {
        match &self.entries {
            Entries::Static(e) => e.len(),
            Entries::Loaded(e) => e.len(),
        }
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the secrets were compiled in (rather than loaded at start).
    pub fn is_compiled_in(&self) -> bool {
        matches!(self.entries, Entries::Static(_))
    }

    /// The bytes of the secrets named `firsts[i]` and `seconds[i]`, in pairs (a
    /// certificate chain with its key): what a `Tls` device's `certificates` and
    /// `private_keys` become.
    pub fn pairs(
        &self,
        firsts: &[&'static str],
        seconds: &[&'static str],
    ) -> Result<Vec<Pair<'_>>, Missing> {
        firsts
            .iter()
            .zip(seconds)
            .map(|(a, b)| Ok((self.expose(a)?, self.expose(b)?)))
            .collect()
    }
}

/// The `secrets` signature of the catalog: key material by name.
pub trait Secrets {
    /// The bytes of the secret called `name`.
    fn expose(&self, name: &'static str) -> Result<&[u8], Missing>;
}

impl Secrets for Table {
    fn expose(&self, name: &'static str) -> Result<&[u8], Missing> {
        Table::expose(self, name)
    }
}

/// A table of compiled-in secrets from files named relative to the crate's directory
/// (`CARGO_MANIFEST_DIR`), each named by its path as written: what a `Secrets` device
/// compiles to. `table!(&["secrets/tls.crt", "secrets/tls.key"])`; every file's bytes
/// go to a static array of their own in [`SECTION`].
#[macro_export]
macro_rules! table {
    (&[$($path:literal),* $(,)?]) => {
        $crate::Table::new(&[$($crate::CompiledIn {
            name: $path,
            bytes: {
                #[unsafe(link_section = ".morgana.secrets")]
                static BYTES: [u8; include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path)).len()] =
                    *include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path));
                &BYTES
            },
        }),*])
    };
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

    #[allow(unsafe_code)] // `#[unsafe(link_section)]` in the macro's expansion
    static TABLE: Table = table!(&["Cargo.toml", "src/lib.rs"]);

    #[test]
    fn a_compiled_in_table_finds_its_secrets_by_name() {
        assert_eq!(TABLE.len(), 2);
        assert!(
            TABLE
                .expose("Cargo.toml")
                .unwrap()
                .starts_with(b"[package]")
        );
        assert!(TABLE.is_compiled_in());
        assert_eq!(
            TABLE.expose("nope").err().map(|e| std::format!("{e}")),
            Some("secrets: no secret named \"nope\"".into())
        );
        let pairs = TABLE.pairs(&["Cargo.toml"], &["src/lib.rs"]).unwrap();
        assert_eq!(pairs.len(), 1);
        assert!(pairs[0].1.starts_with(b"//! Secrets"));
        assert!(TABLE.pairs(&["Cargo.toml"], &["x"]).is_err());
        assert_eq!(TABLE.names(), ["Cargo.toml", "src/lib.rs"]);
    }

    #[test]
    fn a_loaded_table_holds_what_it_was_given() {
        let t = Table::from_vec(vec![Named {
            name: "k",
            secret: Secret::from_vec(vec![7]),
        }]);
        assert_eq!(t.expose("k").unwrap(), &[7]);
        assert!(!t.is_compiled_in());
        assert!(!t.is_empty());
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
