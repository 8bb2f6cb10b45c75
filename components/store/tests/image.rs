//! Read-only images: built on the host, mounted over a block device of either sector
//! size, looked up through the sparse index; damage and foreign data are refused.

mod common;

use common::run;
use morgana_signatures::{KvError, KvErrorKind};
use morgana_store::image::{BuildOptions, IMAGE_VERSION, build};
use morgana_store::{Image, ImageError, MemBlock};

fn entries() -> Vec<(Vec<u8>, Vec<u8>, u64)> {
    (0..1500u32)
        .map(|i| {
            let key = format!("dir{}/file{:05}", i % 7, i * 3).into_bytes();
            let len = match i % 50 {
                0 => 20_000,
                1 => 0,
                _ => (i % 300) as usize,
            };
            let value = (0..len).map(|j| (j as u32 ^ i) as u8).collect();
            (key, value, u64::from(i))
        })
        .collect()
}

#[test]
fn every_key_is_found_on_both_sector_sizes_and_absent_keys_are_not() {
    let all = entries();
    let bytes = build(
        all.iter().rev().cloned(),
        BuildOptions { index_every: 2048 },
    )
    .unwrap();
    assert_eq!(bytes.len() % 4096, 0);
    for sector in [512, 4096] {
        let mut img = run(Image::open(MemBlock::from_bytes(
            sector,
            bytes.clone(),
            true,
        )))
        .unwrap();
        assert_eq!(img.len(), all.len() as u64);
        assert!(img.index_keys() > 10 && img.index_keys() < all.len() / 4);
        for (k, v, m) in &all {
            let got = run(img.get(k)).unwrap().unwrap();
            assert_eq!((got.data, got.meta), (&v[..], *m));
            assert_eq!(run(img.meta(k)).unwrap(), Some(*m));
        }
        for absent in [
            "",
            "a",
            "dir0/file",
            "dir3/file00001x",
            "zzz",
            "dir6/file99999",
        ] {
            assert!(
                run(img.get(absent.as_bytes())).unwrap().is_none(),
                "{absent}"
            );
        }
        // A prefix scan agrees with a filter over everything, and resumes after a key.
        let mut want: Vec<_> = all
            .iter()
            .filter(|(k, _, _)| k.starts_with(b"dir3/"))
            .map(|(k, _, m)| (k.clone(), *m))
            .collect();
        want.sort();
        let mut got = Vec::new();
        run(img.scan(b"dir3/", None, |k, m| {
            got.push((k.to_vec(), m));
            true
        }))
        .unwrap();
        assert_eq!(got, want);
        let mut rest = Vec::new();
        run(img.scan(b"dir3/", Some(&want[10].0), |k, _| {
            rest.push(k.to_vec());
            rest.len() < 5
        }))
        .unwrap();
        let expect: Vec<_> = want[11..16].iter().map(|x| x.0.clone()).collect();
        assert_eq!(rest, expect);
    }
}

#[test]
fn damaged_foreign_and_newer_images_are_refused() {
    let bytes = build(entries(), BuildOptions::default()).unwrap();
    let open = |b: Vec<u8>| run(Image::open(MemBlock::from_bytes(512, b, true)));

    let mut v2 = bytes.clone();
    v2[8..12].copy_from_slice(&(IMAGE_VERSION + 1).to_le_bytes());
    let e = open(v2).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the image is in format version 2; this build reads version 1"
    );
    let e = open(vec![7; bytes.len()]).unwrap_err();
    assert!(matches!(e, ImageError::NotAnImage));
    assert_eq!(e.kind(), KvErrorKind::Corrupt);
    let mut bad = bytes.clone();
    bad[20] ^= 1;
    assert!(
        open(bad)
            .unwrap_err()
            .to_string()
            .contains("header checksum")
    );
    // Cut short: the index lies beyond the device.
    let e = open(bytes[..8192].to_vec()).unwrap_err();
    assert!(e.to_string().contains("do not fit the device"), "{e}");

    // A damaged value is an error on lookup, never wrong bytes.
    let mut bad = bytes.clone();
    let needle: Vec<u8> = (0..20_000u32).map(|j| (j ^ 50) as u8).collect();
    let at = bad
        .windows(1024)
        .position(|w| w == &needle[..1024])
        .unwrap();
    bad[at + 10_000] ^= 0x10;
    let mut img = open(bad).unwrap();
    let Err(e) = run(img.get(b"dir1/file00150")) else {
        panic!("a damaged value was returned");
    };
    assert!(e.to_string().contains("entry checksum mismatch"), "{e}");
    assert!(run(img.get(b"dir2/file00153")).unwrap().is_some());

    assert!(matches!(
        build([("a", "1", 0), ("a", "2", 0)], BuildOptions::default()),
        Err(ImageError::DuplicateKey)
    ));
    assert!(matches!(
        build([("", "1", 0)], BuildOptions::default()),
        Err(ImageError::BadKey)
    ));
    let empty = build(Vec::<(&str, &str, u64)>::new(), BuildOptions::default()).unwrap();
    let mut img = open(empty).unwrap();
    assert!(img.is_empty() && run(img.get(b"x")).unwrap().is_none());
}
