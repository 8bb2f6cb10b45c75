//! Compiled-in read-only key-value stores: the runtime side of [`crunch!`].
//!
//! `crunch!("htdocs")` turns a directory of the invoking crate into a [`Table`] at compile
//! time. The table is a `'static` slice of [`Entry`]s sorted by key; every lookup is a
//! binary search over it, so nothing is allocated and nothing is computed at run time.
//! `&Table` implements [`KvRo`] (through the blanket `impl KvRo for &K` of the
//! signatures), which is what `morgana_http::StaticSite` serves.
//!
//! ```
//! use morgana_signatures::KvRo;
//!
//! // Relative to this crate's manifest directory; an appliance says "htdocs".
//! pub static SITE: kv_crunch::Table = kv_crunch::crunch!("tests/fixtures/site");
//!
//! let page = SITE.get("index.html").unwrap();
//! assert_eq!(page.media_type, "text/html; charset=utf-8");
//! assert!(SITE.is_dir("css"));
//!
//! // What a component sees: any `KvRo`.
//! fn has_index(kv: impl KvRo) -> bool {
//!     matches!(kv.get("index.html"), Ok(Some(_)))
//! }
//! assert!(has_index(&SITE));
//! ```
//!
//! # What the macro puts in an entry
//!
//! - `key`: the file's path relative to the directory, `/`-separated, no leading slash
//!   (`index.html`, `css/site.css`). Keys are compared as bytes; a lookup uses the key as
//!   it is (an HTTP server percent-decodes and strips the leading `/` first).
//! - `data`: the contents, as `include_bytes!("/absolute/path")`. That keeps the expansion
//!   small (no giant integer arrays) and makes rustc track every file: editing one
//!   rebuilds the crate.
//! - `media_type`: from the file extension (case-insensitive) through a built-in table;
//!   textual types carry `; charset=utf-8`; anything unknown is
//!   `application/octet-stream`. The table is documented on `morgana_macros::crunch`.
//! - `etag`: a strong entity tag, quotes included: `"` + the first 16 bytes of the
//!   SHA-256 of the contents in lower-case hex (32 digits) + `"`. Equal contents give
//!   equal tags, whatever the file name.
//! - `gzip`: the contents gzip-compressed at the best level, kept only when that saves
//!   at least 5 % *and* at least 64 bytes (less is not worth the `Content-Encoding` and
//!   `Vary` headers nor the image space). Types that are already compressed (PNG, JPEG,
//!   GIF, WebP, AVIF, WOFF/WOFF2, audio/video, archives) are not even tried. The gzip
//!   stream is reproducible: header mtime 0, no file name, OS byte 255 ("unknown").
//!
//! # Which files
//!
//! Every regular file under the directory, recursively, *including dotfiles* (a site
//! needs `.well-known/`), except version-control metadata and desktop litter: entries
//! named `.git`, `.hg`, `.svn` (files or directories) and `.DS_Store`. Symbolic links are
//! followed; a dangling link, a link loop, a special file (FIFO, socket, device) or a
//! name that is not UTF-8 is a compile error naming the path. A missing directory is a
//! compile error naming both the path and the directory it was resolved against (the
//! `CARGO_MANIFEST_DIR` of the crate that invokes the macro; absolute paths are taken
//! as they are).
//!
//! # Reproducibility
//!
//! The expansion depends only on the directory's contents: entries are sorted by key,
//! the gzip headers carry no time or name, nothing reads the clock or the environment
//! beyond `CARGO_MANIFEST_DIR`. The absolute paths given to `include_bytes!` appear in
//! the expansion but not in the compiled data.
//!
//! # Rebuilding when files change
//!
//! *Editing* a file rebuilds the crate: rustc records every `include_bytes!` file in its
//! dependency info. *Adding or removing* a file cannot be seen by a proc macro on stable
//! Rust (there is no way to make rustc track a directory listing). Therefore the build
//! script of a crate that uses `crunch!` must also print
//! `cargo:rerun-if-changed=<dir>` for each crunched directory (Cargo then re-runs the
//! script, and so recompiles the crate, when anything under the directory changes, new
//! files included). `morgana-codegen`'s `build()` is the place for it in appliances; a
//! hand-written build script can print [`build::RerunIfChanged`]:
//!
//! ```
//! // build.rs
//! println!("{}", kv_crunch::build::RerunIfChanged("htdocs"));
//! ```
//!
//! Without a build script, `touch` the source file that invokes `crunch!` after adding or
//! removing files.
//!
//! # Const construction
//!
//! [`Table::new`] is a `const fn` that checks, at compile time when used in a `static`,
//! that the keys are strictly increasing; the macro sorts them, so this only guards
//! hand-written tables.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

// Lets the macro's `::kv_crunch::…` paths resolve inside this crate's own tests.
extern crate self as kv_crunch;

use core::cmp::Ordering;
use core::fmt;

use morgana_signatures::{KvRo, Object};

/// Turns a directory into a [`Table`] at compile time: `crunch!("htdocs")`.
///
/// The path is relative to the `CARGO_MANIFEST_DIR` of the invoking crate (or absolute).
/// See the [crate documentation](crate) for what the table holds and the
/// `morgana_macros::crunch` documentation for the media-type table.
pub use morgana_macros::crunch;

/// One file of a [`Table`].
///
/// The fields are public so that `crunch!` can build entries in a `static` initializer;
/// [`Table::new`] checks their order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The path relative to the crunched directory, `/`-separated, no leading slash.
    pub key: &'static str,
    /// The contents.
    pub data: &'static [u8],
    /// The media type, e.g. `text/html; charset=utf-8`.
    pub media_type: &'static str,
    /// A strong entity tag, quotes included: `"…"`.
    pub etag: &'static str,
    /// The contents gzip-compressed, when that is worthwhile.
    pub gzip: Option<&'static [u8]>,
}

impl Entry {
    /// The entry as a [`KvRo`] value.
    pub const fn object(&self) -> Object<'static> {
        Object {
            data: self.data,
            media_type: self.media_type,
            etag: self.etag,
            gzip: self.gzip,
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The bytes themselves would drown any log.
        f.debug_struct("Entry")
            .field("key", &self.key)
            .field("len", &self.data.len())
            .field("media_type", &self.media_type)
            .field("etag", &self.etag)
            .field("gzip_len", &self.gzip.map(<[u8]>::len))
            .finish()
    }
}

/// A compiled-in read-only store: a `'static` slice of [`Entry`]s sorted by key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Table {
    entries: &'static [Entry],
}

impl Table {
    /// A table with no entries.
    pub const EMPTY: Table = Table { entries: &[] };

    /// A table over `entries`.
    ///
    /// # Panics
    ///
    /// If the keys are not strictly increasing (byte-wise), i.e. unsorted or duplicated.
    /// In a `static` or `const` initializer that is a compile error.
    pub const fn new(entries: &'static [Entry]) -> Table {
        let mut i = 1;
        while i < entries.len() {
            if !str_lt(entries[i - 1].key, entries[i].key) {
                panic!("kv_crunch::Table::new: keys must be strictly increasing");
            }
            i += 1;
        }
        Table { entries }
    }

    /// All entries, sorted by key.
    pub const fn entries(&self) -> &'static [Entry] {
        self.entries
    }

    /// Iterates over the entries in key order.
    pub fn iter(&self) -> core::slice::Iter<'static, Entry> {
        self.entries.iter()
    }

    /// Number of entries.
    pub const fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entry.
    pub const fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry stored under `key`.
    pub fn entry(&self, key: &str) -> Option<&'static Entry> {
        let entries = self.entries;
        entries
            .binary_search_by(|e| e.key.cmp(key))
            .ok()
            .map(|i| &entries[i])
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<Object<'static>> {
        self.entry(key).map(Entry::object)
    }

    /// Whether some key starts with `dir/`.
    ///
    /// One trailing `/` of `dir` is ignored (`"css/"` is `"css"`), and the empty key
    /// names the root, which is a directory when the table is not empty.
    pub fn is_dir(&self, dir: &str) -> bool {
        let dir = dir.strip_suffix('/').unwrap_or(dir);
        if dir.is_empty() {
            return !self.entries.is_empty();
        }
        let dir = dir.as_bytes();
        // The entries under `dir/` are contiguous and are the first ones >= `dir/`.
        let first = self
            .entries
            .partition_point(|e| cmp_with_dir(e.key.as_bytes(), dir) == Ordering::Less);
        self.entries.get(first).is_some_and(|e| {
            let k = e.key.as_bytes();
            k.len() > dir.len() && k.starts_with(dir) && k[dir.len()] == b'/'
        })
    }
}

impl Default for Table {
    fn default() -> Table {
        Table::EMPTY
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("len", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl IntoIterator for &Table {
    type Item = &'static Entry;
    type IntoIter = core::slice::Iter<'static, Entry>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The error of [`Table`]'s [`KvRo`] methods: there is none, a compiled-in lookup cannot
/// fail. The type is uninhabited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {}

impl fmt::Display for Error {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl KvRo for Table {
    type Error = Error;

    fn get(&self, key: &str) -> Result<Option<Object<'_>>, Error> {
        Ok(Table::get(self, key))
    }

    fn is_dir(&self, key: &str) -> Result<bool, Error> {
        Ok(Table::is_dir(self, key))
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// `a < b`, byte-wise, usable in `const fn`.
const fn str_lt(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

/// Compares `key` with `dir/` (`dir` followed by a slash) as a prefix: `Equal` when `key`
/// starts with `dir/`. Nothing is allocated.
fn cmp_with_dir(key: &[u8], dir: &[u8]) -> Ordering {
    let common = key.len().min(dir.len());
    match key[..common].cmp(&dir[..common]) {
        Ordering::Equal => {}
        other => return other,
    }
    // `key` and `dir` agree on `common` bytes.
    if key.len() <= dir.len() {
        // `key` is a prefix of `dir`, so shorter than `dir/`.
        return Ordering::Less;
    }
    key[dir.len()].cmp(&b'/')
}

/// Helpers for the build script of a crate that uses [`crunch!`].
pub mod build {
    use core::fmt;

    /// Renders as `cargo:rerun-if-changed=<dir>`: print it from the build script of a
    /// crate that crunches `dir`, so that adding or removing a file rebuilds the crate
    /// (Cargo scans a directory given to `rerun-if-changed` recursively). The path is
    /// relative to the package root, like the macro's.
    ///
    /// ```
    /// let line = format!("{}", kv_crunch::build::RerunIfChanged("htdocs"));
    /// assert_eq!(line, "cargo:rerun-if-changed=htdocs");
    /// ```
    ///
    /// Note that a build script that prints any `rerun-if-changed` line is then re-run
    /// only for the paths it names; it must name its other inputs too.
    #[derive(Clone, Copy, Debug)]
    pub struct RerunIfChanged<'a>(pub &'a str);

    impl fmt::Display for RerunIfChanged<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "cargo:rerun-if-changed={}", self.0)
        }
    }
}

#[cfg(test)]
extern crate std;

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const fn entry(key: &'static str, data: &'static [u8]) -> Entry {
        Entry {
            key,
            data,
            media_type: "text/plain; charset=utf-8",
            etag: "\"0\"",
            gzip: None,
        }
    }

    static TABLE: Table = Table::new(&[
        entry("a-b", b"dash"),
        entry("a/b", b"ab"),
        entry("a/c/d", b"acd"),
        entry("a0", b"zero"),
        entry("css/site.css", b"body{}"),
        entry("index.html", b"<html>"),
        entry("x", b"x"),
    ]);

    #[test]
    fn lookup_hits_and_misses() {
        let o = TABLE.get("css/site.css").unwrap();
        assert_eq!(o.data, b"body{}");
        assert_eq!(TABLE.get("index.html").unwrap().data, b"<html>");
        assert_eq!(TABLE.get("a/c/d").unwrap().data, b"acd");
        for miss in [
            "",
            "/index.html",
            "css",
            "css/",
            "a",
            "a/c",
            "index.htm",
            "y",
            "\u{0}",
        ] {
            assert!(TABLE.get(miss).is_none(), "{miss:?}");
        }
    }

    #[test]
    fn is_dir_checks_prefix_with_slash() {
        for dir in ["a", "a/", "a/c", "css", "css/", ""] {
            assert!(TABLE.is_dir(dir), "{dir:?}");
        }
        for not in [
            "a-b",
            "a0",
            "a/b",
            "a/c/d",
            "x",
            "c",
            "cs",
            "index.html",
            "b",
            "z",
        ] {
            assert!(!TABLE.is_dir(not), "{not:?}");
        }
        assert!(!Table::EMPTY.is_dir(""));
        assert!(!Table::EMPTY.is_dir("a"));
    }

    #[test]
    fn kv_ro_through_reference() {
        fn via<K: KvRo>(k: K) -> (usize, bool, bool) {
            (
                k.len(),
                k.get("x").unwrap().is_some(),
                k.is_dir("a").unwrap(),
            )
        }
        assert_eq!(via::<&Table>(&TABLE), (7, true, true));
        assert_eq!(via(TABLE), (7, true, true));
        assert!(!KvRo::is_empty(&&TABLE));
        assert!(KvRo::is_empty(&Table::EMPTY));
    }

    #[test]
    fn iteration_is_sorted() {
        let keys: Vec<_> = TABLE.iter().map(|e| e.key).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        assert_eq!((&TABLE).into_iter().count(), TABLE.len());
    }

    #[test]
    #[should_panic(expected = "strictly increasing")]
    fn unsorted_keys_are_rejected() {
        let entries = std::vec![entry("b", b""), entry("a", b"")].leak();
        let _ = Table::new(entries);
    }

    #[test]
    #[should_panic(expected = "strictly increasing")]
    fn duplicate_keys_are_rejected() {
        let entries = std::vec![entry("a", b""), entry("a", b"")].leak();
        let _ = Table::new(entries);
    }

    #[test]
    fn comparisons() {
        assert!(str_lt("a", "b") && str_lt("a", "ab") && !str_lt("ab", "a"));
        assert!(!str_lt("a", "a"));
        assert_eq!(cmp_with_dir(b"a", b"a"), Ordering::Less);
        assert_eq!(cmp_with_dir(b"a-", b"a"), Ordering::Less);
        assert_eq!(cmp_with_dir(b"a/", b"a"), Ordering::Equal);
        assert_eq!(cmp_with_dir(b"a/x", b"a"), Ordering::Equal);
        assert_eq!(cmp_with_dir(b"a0", b"a"), Ordering::Greater);
        assert_eq!(cmp_with_dir(b"b", b"a"), Ordering::Greater);
    }

    #[test]
    fn debug_does_not_dump_bytes() {
        let s = std::format!("{:?}", TABLE.entry("index.html").unwrap());
        assert!(s.contains("len: 6") && !s.contains("60"), "{s}");
        assert_eq!(std::format!("{TABLE:?}"), "Table { len: 7, .. }");
    }
}
