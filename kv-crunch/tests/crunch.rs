//! `crunch!` on a real directory (`tests/fixtures/site`), checked against the files.
//!
//! Adding or removing a fixture is not seen by Cargo (this package has no build script
//! to print `rerun-if-changed`): touch this file afterwards.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use kv_crunch::{Entry, Table, crunch};
use morgana_signatures::KvRo;

static SITE: Table = crunch!("tests/fixtures/site");

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/site")
}

/// Every file under `dir`, keyed like `crunch!` keys them.
fn files_on_disk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let key = format!("{prefix}{name}");
        if entry.file_type().unwrap().is_dir() {
            files_on_disk(&entry.path(), &format!("{key}/"), out);
        } else {
            out.insert(key, std::fs::read(entry.path()).unwrap());
        }
    }
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn entry(key: &str) -> &'static Entry {
    SITE.entry(key).unwrap_or_else(|| panic!("{key} missing"))
}

#[test]
fn holds_exactly_the_files_with_their_bytes() {
    let mut disk = BTreeMap::new();
    files_on_disk(&fixture_dir(), "", &mut disk);
    let table: BTreeMap<String, Vec<u8>> = SITE
        .iter()
        .map(|e| (e.key.to_owned(), e.data.to_vec()))
        .collect();
    assert_eq!(
        table.keys().collect::<Vec<_>>(),
        disk.keys().collect::<Vec<_>>()
    );
    assert_eq!(table, disk);
    assert!(
        SITE.get(".well-known/security.txt").is_some(),
        "dotfiles are kept"
    );
}

#[test]
fn keys_are_strictly_sorted() {
    let keys: Vec<&str> = SITE.iter().map(|e| e.key).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| !k.starts_with('/') && !k.contains('\\'))
    );
}

#[test]
fn media_types() {
    let cases = [
        ("index.html", "text/html; charset=utf-8"),
        ("css/site.css", "text/css; charset=utf-8"),
        ("img/logo.png", "image/png"),
        ("docs/manual.txt", "text/plain; charset=utf-8"),
        ("noise.bin", "application/octet-stream"),
        ("README", "application/octet-stream"),
    ];
    for (key, media_type) in cases {
        assert_eq!(entry(key).media_type, media_type, "{key}");
    }
}

#[test]
fn etags_are_strong_quoted_hashes_of_the_contents() {
    let mut seen: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for e in &SITE {
        let tag = e.etag;
        assert_eq!(tag.len(), 34, "{tag}");
        assert!(tag.starts_with('"') && tag.ends_with('"') && !tag.starts_with("W/"));
        assert!(
            tag[1..33]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{tag}"
        );
        // Different contents never share a tag.
        if let Some(other) = seen.insert(tag, e.data) {
            assert_eq!(other, e.data, "{tag}");
        }
    }
    assert_eq!(entry("dup/one.txt").etag, entry("dup/two.txt").etag);
    assert_ne!(entry("dup/one.txt").etag, entry("README").etag);
}

#[test]
fn gzip_exists_only_when_smaller_and_round_trips() {
    for e in &SITE {
        if let Some(gz) = e.gzip {
            assert!(gz.len() < e.data.len(), "{}", e.key);
            assert_eq!(gunzip(gz), e.data, "{}", e.key);
            assert_eq!(&gz[4..8], &[0, 0, 0, 0], "{}: mtime must be 0", e.key);
            assert_eq!(gz[9], 255, "{}: OS byte", e.key);
        }
    }
    let manual = entry("docs/manual.txt");
    let gz = manual.gzip.expect("compressible text gets gzip");
    assert!(gz.len() * 10 < manual.data.len(), "{} bytes", gz.len());
    assert_eq!(entry("noise.bin").gzip, None, "random bytes do not shrink");
    assert_eq!(entry("img/logo.png").gzip, None, "PNG is not recompressed");
    assert_eq!(entry("dup/one.txt").gzip, None, "too small to be worth it");
}

#[test]
fn kv_ro_view() {
    fn check<K: KvRo>(kv: K) {
        let o = kv.get("css/site.css").unwrap().unwrap();
        assert_eq!(o.media_type, "text/css; charset=utf-8");
        assert!(kv.get("css").unwrap().is_none());
        assert!(kv.get("/index.html").unwrap().is_none());
        assert!(kv.is_dir("css").unwrap());
        assert!(kv.is_dir(".well-known").unwrap());
        assert!(kv.is_dir("docs/").unwrap());
        assert!(!kv.is_dir("index.html").unwrap());
        assert!(!kv.is_dir("cs").unwrap());
        assert_eq!(kv.len(), 9);
    }
    check(&SITE as &Table); // `&Table: KvRo`, as components receive it
    check(SITE);
    assert_eq!(
        SITE.get("index.html").unwrap(),
        entry("index.html").object()
    );
}

#[test]
fn usable_as_const_and_local_with_trailing_comma() {
    const AGAIN: Table = crunch!("tests/fixtures/site",);
    let local = crunch!("tests/fixtures/site/css");
    assert_eq!(AGAIN.len(), SITE.len());
    assert_eq!(
        AGAIN.iter().map(|e| e.etag).collect::<Vec<_>>(),
        SITE.iter().map(|e| e.etag).collect::<Vec<_>>()
    );
    assert_eq!(
        local.iter().map(|e| e.key).collect::<Vec<_>>(),
        ["site.css"]
    );
    assert_eq!(
        local.get("site.css").unwrap().data,
        entry("css/site.css").data
    );
}
