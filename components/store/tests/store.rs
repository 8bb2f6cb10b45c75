//! The store's behaviour beyond crashes: damaged records and superblocks, other format
//! versions, a full device, large values, space amplification, read-only devices,
//! failing devices, scans.

mod common;

use common::{SimBlock, run};
use morgana_signatures::{KvError, KvErrorKind};
use morgana_store::format::FORMAT_VERSION;
use morgana_store::{Config, Error, FormatOptions, MemBlock, Store};

fn small(segment: u32) -> FormatOptions {
    FormatOptions {
        store_id: 77,
        segment_size: Some(segment),
        max_key_len: 256,
        max_value_len: segment / 4,
    }
}

fn no_cache() -> Config {
    Config {
        cache_entries: 0,
        ..Config::default()
    }
}

fn value(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("value-{i}-").into_bytes();
    v.resize(len, b'0' + (i % 10) as u8);
    v
}

/// Flips a byte in the middle of the only place `needle` occurs on the disk (both what
/// reads see and what is durable).
fn damage(disk: &SimBlock, needle: &[u8]) {
    let mut s = disk.state();
    let at = s
        .visible
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("value on disk");
    let i = at + needle.len() / 2;
    s.visible[i] ^= 0x40;
    s.durable[i] ^= 0x40;
}

#[test]
fn a_damaged_record_is_refused_never_returned_and_mounting_says_where() {
    let disk = SimBlock::new(512, 4096 + 12 * 65536);
    let mut store = run(Store::format(disk.clone(), small(65536), no_cache())).unwrap();
    for i in 0..400 {
        run(store.put(format!("k{i:03}").as_bytes(), &value(i, 700), 0)).unwrap();
        if i % 10 == 9 {
            run(store.sync()).unwrap();
        }
    }
    run(store.sync()).unwrap();
    assert!(store.stats().used_bytes >= 4 * 65536, "{:?}", store.stats());

    let pristine = disk.state().durable.clone();
    // A record in the first (sealed) segment.
    damage(&disk, &value(3, 700));
    let e = run(store.get(b"k003")).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert_eq!(e.kind(), KvErrorKind::Corrupt);
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    // The others are fine.
    assert_eq!(
        run(store.get(b"k004")).unwrap().unwrap().data,
        value(4, 700)
    );
    drop(store);

    let e = run(Store::open(disk.clone(), no_cache())).unwrap_err();
    assert!(
        e.to_string()
            .contains("a record fails its checks but the log goes on in the next segment"),
        "{e}"
    );

    // A record in the newest segment, with later flushed commits after it.
    let disk2 = SimBlock::from_image(512, pristine);
    damage(&disk2, &value(370, 700));
    let e = run(Store::open(disk2.clone(), no_cache())).unwrap_err();
    assert!(
        e.to_string()
            .contains("later commits in the segment were flushed"),
        "{e}"
    );

    // Salvage mounts anyway and drops the damaged part, never returning bad bytes.
    let salvage = Config {
        salvage: true,
        ..no_cache()
    };
    let mut store = run(Store::open(disk, salvage)).unwrap();
    assert_eq!(store.stats().salvaged, 1);
    assert!(run(store.get(b"k003")).unwrap().is_none());
    for i in 0..400 {
        if let Some(v) = run(store.get(format!("k{i:03}").as_bytes())).unwrap() {
            assert_eq!(v.data, value(i, 700));
        }
    }
    assert_eq!(
        run(store.get(b"k399")).unwrap().unwrap().data,
        value(399, 700)
    );
}

#[test]
fn superblocks_that_are_damaged_foreign_or_from_another_version_are_refused() {
    let disk = MemBlock::new(512, 4096 + 8 * 65536);
    let store = run(Store::format(disk, small(65536), Config::default())).unwrap();
    let image = store.into_device().into_bytes();

    let open = |bytes: Vec<u8>, sector: usize| {
        run(Store::open(
            MemBlock::from_bytes(sector, bytes, false),
            Config::default(),
        ))
    };
    assert!(open(image.clone(), 512).is_ok());

    let mut bad = image.clone();
    bad[44] ^= 1;
    let e = open(bad, 512).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the store's superblock is corrupt (checksum mismatch): refusing to mount"
    );
    assert_eq!(e.kind(), KvErrorKind::Corrupt);

    let mut v2 = image.clone();
    v2[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let e = open(v2, 512).unwrap_err();
    assert!(matches!(e, Error::UnsupportedVersion { found: 2 }));
    assert_eq!(
        e.to_string(),
        "the store is in format version 2; this build reads version 1"
    );

    let e = open(vec![0; image.len()], 512).unwrap_err();
    assert_eq!(e.to_string(), "the device holds no store (it is blank)");

    let mut garbage = image.clone();
    garbage[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    let e = run(Store::open_or_format(
        MemBlock::from_bytes(512, garbage, false),
        small(65536),
        Config::default(),
    ))
    .unwrap_err();
    assert!(matches!(e, Error::NotAStore), "{e}");

    let e = open(image.clone(), 4096).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the store was formatted for 512-byte sectors, the device has 4096-byte sectors"
    );
    let e = open(image[..image.len() - 65536].to_vec(), 512).unwrap_err();
    assert!(matches!(e, Error::DeviceTooSmall { .. }), "{e}");

    // A file system whose first sector is zero (ext4 keeps its superblock at 1 KiB) is
    // not blank: refused, not formatted over.
    let mut ext4 = vec![0u8; 4096 + 8 * 65536];
    ext4[1080..1082].copy_from_slice(&0xEF53u16.to_le_bytes());
    let e = run(Store::open_or_format(
        MemBlock::from_bytes(512, ext4, false),
        small(65536),
        Config::default(),
    ))
    .unwrap_err();
    assert!(matches!(e, Error::NotAStore), "{e}");

    // open_or_format formats a blank device, and only that.
    let store = run(Store::open_or_format(
        MemBlock::new(512, 4096 + 8 * 65536),
        small(65536),
        Config::default(),
    ))
    .unwrap();
    assert!(store.is_empty());
    let e = run(Store::format(
        MemBlock::new(512, 4096 + 4 * 65536),
        small(65536),
        Config::default(),
    ))
    .unwrap_err();
    assert!(e.to_string().contains("too small"), "{e}");
}

#[test]
fn a_full_store_says_so_keeps_everything_and_recovers_after_deletes() {
    let disk = SimBlock::new(512, 4096 + 10 * 32768);
    let mut store = run(Store::format(disk.clone(), small(32768), Config::default())).unwrap();
    let mut written = 0;
    let e = loop {
        match run(store.put(
            format!("k{written:04}").as_bytes(),
            &value(written, 1000),
            7,
        )) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 1000, "never full");
    };
    assert!(matches!(e, Error::NoSpace { .. }), "{e}");
    assert_eq!(e.kind(), KvErrorKind::NoSpace);
    assert!(
        e.to_string().starts_with("no space left on the store"),
        "{e}"
    );
    let stats = store.stats();
    assert!(stats.live_bytes <= stats.live_limit, "{stats:?}");
    assert!(written > 100, "{written} values of 1 KiB in 320 KiB");
    run(store.sync()).unwrap();
    for i in 0..written {
        let v = run(store.get(format!("k{i:04}").as_bytes()))
            .unwrap()
            .unwrap();
        assert_eq!((v.data, v.meta), (&value(i, 1000)[..], 7));
    }
    // Overwriting with a value no longer than the old one still works when full.
    run(store.put(b"k0000", &value(9999, 1000), 8)).unwrap();
    for i in (0..written).step_by(2) {
        assert!(run(store.delete(format!("k{i:04}").as_bytes())).unwrap());
    }
    run(store.sync()).unwrap();
    for i in 0..written / 3 {
        run(store.put(format!("new{i:04}").as_bytes(), &value(i, 1000), 9)).unwrap();
    }
    run(store.sync()).unwrap();
    drop(store);
    let mut store = run(Store::open(disk, Config::default())).unwrap();
    for i in 0..written {
        let got = run(store.get(format!("k{i:04}").as_bytes())).unwrap();
        assert_eq!(got.is_some(), i % 2 == 1, "k{i:04}");
    }
    for i in 0..written / 3 {
        let v = run(store.get(format!("new{i:04}").as_bytes()))
            .unwrap()
            .unwrap();
        assert_eq!(v.data, value(i, 1000));
    }
}

#[test]
fn values_up_to_one_mebibyte_and_clear_limits() {
    let mut store = run(Store::format(
        MemBlock::new(4096, 64 << 20),
        FormatOptions::new(1),
        Config::default(),
    ))
    .unwrap();
    assert_eq!(store.max_value_len(), 1 << 20);
    let big: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    for i in 0..20u8 {
        run(store.put(&[b'b', i], &big, u64::from(i))).unwrap();
    }
    run(store.sync()).unwrap();
    for i in 0..20u8 {
        let v = run(store.get(&[b'b', i])).unwrap().unwrap();
        assert!(v.data == &big[..] && v.meta == u64::from(i));
    }
    let e = run(store.put(b"x", &vec![0; (1 << 20) + 1], 0)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "value of 1048577 bytes is larger than the store's limit of 1048576"
    );
    assert_eq!(e.kind(), KvErrorKind::TooLarge);
    let e = run(store.put(&vec![b'k'; 4097], b"v", 0)).unwrap_err();
    assert!(matches!(
        e,
        Error::KeyTooLong {
            len: 4097,
            max: 4096
        }
    ));
    assert!(matches!(
        run(store.put(b"", b"v", 0)).unwrap_err(),
        Error::KeyEmpty
    ));
    // Remount: every big value replays.
    let dev = store.into_device();
    let mut store = run(Store::open(dev, Config::default())).unwrap();
    assert_eq!(store.len(), 20);
    assert_eq!(run(store.get(&[b'b', 19])).unwrap().unwrap().data, &big[..]);
}

#[test]
fn overwrites_keep_the_space_used_bounded() {
    let disk = SimBlock::new(512, 4096 + 40 * 65536);
    let mut store = run(Store::format(disk.clone(), small(65536), Config::default())).unwrap();
    for round in 0..400 {
        for k in 0..50 {
            run(store.put(
                format!("key{k}").as_bytes(),
                &value(round, 200 + k * 10),
                round as u64,
            ))
            .unwrap();
        }
        if round % 3 == 0 {
            run(store.sync()).unwrap();
        }
    }
    run(store.sync()).unwrap();
    let s = store.stats();
    assert!(s.compactions > 10, "{s:?}");
    assert!(
        s.used_bytes <= 2 * s.live_bytes + 3 * 65536,
        "space used {} for {} live bytes",
        s.used_bytes,
        s.live_bytes
    );
    drop(store);
    let mut store = run(Store::open(disk, Config::default())).unwrap();
    for k in 0..50 {
        let v = run(store.get(format!("key{k}").as_bytes()))
            .unwrap()
            .unwrap();
        assert_eq!((v.data, v.meta), (&value(399, 200 + k * 10)[..], 399));
    }
}

#[test]
fn read_only_devices_and_stores_refuse_changes_and_still_read() {
    let mut store = run(Store::format(
        MemBlock::new(512, 4096 + 8 * 65536),
        small(65536),
        Config::default(),
    ))
    .unwrap();
    run(store.put(b"a", b"1", 0)).unwrap();
    run(store.sync()).unwrap();
    let bytes = store.into_device().into_bytes();
    let ro = MemBlock::from_bytes(512, bytes.clone(), true);
    let e = run(Store::format(ro, small(65536), Config::default())).unwrap_err();
    assert!(matches!(e, Error::ReadOnly));
    let mut store = run(Store::open(
        MemBlock::from_bytes(512, bytes.clone(), true),
        Config::default(),
    ))
    .unwrap();
    assert!(store.is_read_only());
    assert_eq!(run(store.get(b"a")).unwrap().unwrap().data, b"1");
    let e = run(store.put(b"b", b"2", 0)).unwrap_err();
    assert_eq!(e.to_string(), "the store is read-only");
    assert_eq!(e.kind(), KvErrorKind::ReadOnly);
    assert!(matches!(
        run(store.delete(b"a")).unwrap_err(),
        Error::ReadOnly
    ));
    let config = Config {
        read_only: true,
        ..Config::default()
    };
    let mut store = run(Store::open(MemBlock::from_bytes(512, bytes, false), config)).unwrap();
    assert!(matches!(run(store.clear()).unwrap_err(), Error::ReadOnly));
}

#[test]
fn a_failing_device_stops_changes_but_not_reads_and_synced_data_survives() {
    let disk = SimBlock::new(512, 4096 + 8 * 65536);
    let mut store = run(Store::format(disk.clone(), small(65536), no_cache())).unwrap();
    for i in 0..50 {
        run(store.put(format!("k{i}").as_bytes(), &value(i, 100), 0)).unwrap();
    }
    run(store.sync()).unwrap();
    let writes = disk.state().writes;
    disk.state().fail_writes_at = Some(writes + 1);
    run(store.put(b"late", b"x", 0)).unwrap();
    let e = run(store.sync()).unwrap_err();
    assert_eq!(e.kind(), KvErrorKind::Io);
    let e = run(store.put(b"later", b"y", 0)).unwrap_err();
    assert!(matches!(e, Error::Failed), "{e}");
    assert_eq!(run(store.get(b"k7")).unwrap().unwrap().data, value(7, 100));
    drop(store);
    disk.state().fail_writes_at = None;
    let mut store = run(Store::open(disk, no_cache())).unwrap();
    for i in 0..50 {
        assert!(
            run(store.get(format!("k{i}").as_bytes()))
                .unwrap()
                .is_some()
        );
    }
}

#[test]
fn scans_walk_a_prefix_in_order_from_a_starting_point() {
    let mut store = run(Store::format(
        MemBlock::new(512, 4096 + 8 * 65536),
        small(65536),
        Config::default(),
    ))
    .unwrap();
    for k in ["a", "b/1", "b/2", "b/3", "ba", "c"] {
        run(store.put(k.as_bytes(), k.as_bytes(), k.len() as u64)).unwrap();
    }
    let collect = |store: &Store<MemBlock>, prefix: &str, after: Option<&str>, limit: usize| {
        let mut out = Vec::new();
        store.scan(prefix.as_bytes(), after.map(str::as_bytes), |k, m| {
            out.push((String::from_utf8(k.to_vec()).unwrap(), m));
            out.len() < limit
        });
        out
    };
    let keys = |v: Vec<(String, u64)>| v.into_iter().map(|x| x.0).collect::<Vec<_>>();
    assert_eq!(keys(collect(&store, "b/", None, 10)), ["b/1", "b/2", "b/3"]);
    assert_eq!(
        keys(collect(&store, "b", Some("b/1"), 10)),
        ["b/2", "b/3", "ba"]
    );
    assert_eq!(keys(collect(&store, "", None, 2)), ["a", "b/1"]);
    assert_eq!(collect(&store, "c", None, 10), [("c".to_string(), 1)]);
    assert!(collect(&store, "d", None, 10).is_empty());
    run(store.clear()).unwrap();
    assert!(store.is_empty() && collect(&store, "", None, 10).is_empty());
}
