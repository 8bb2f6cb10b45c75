//! Seeding: a store with no key gets every key of an image (values and meta, across
//! several scan batches and syncs); a store with keys is left as it is.

mod common;

use common::run;
use morgana_store::image::{BuildOptions, build};
use morgana_store::{Config, FormatOptions, Image, MemBlock, Store, seed};

fn image(n: u32) -> Image<MemBlock> {
    let entries = (0..n).map(|i| {
        let value = vec![i as u8; (i as usize % 5) * 40_000];
        (format!("k{i:05}").into_bytes(), value, u64::from(i))
    });
    let bytes = build(entries, BuildOptions::default()).unwrap();
    run(Image::open(MemBlock::from_bytes(512, bytes, true))).unwrap()
}

fn blank_store() -> Store<MemBlock> {
    let dev = MemBlock::new(512, 256 << 20);
    run(Store::open_or_format(
        dev,
        FormatOptions::new(7),
        Config::default(),
    ))
    .unwrap()
}

#[test]
fn an_empty_store_gets_every_key_and_a_used_one_is_left_alone() {
    let mut store = run(seed(blank_store(), image(600))).unwrap();
    assert_eq!(store.len(), 600);
    for i in [0u32, 1, 255, 256, 257, 511, 599] {
        let v = run(store.get(format!("k{i:05}").as_bytes()))
            .unwrap()
            .unwrap();
        assert_eq!(v.data, &vec![i as u8; (i as usize % 5) * 40_000][..]);
        assert_eq!(v.meta, u64::from(i));
    }
    run(store.delete(b"k00000")).unwrap();
    run(store.put(b"mine", b"x", 0)).unwrap();
    let store = run(seed(store, image(600))).unwrap();
    assert_eq!(
        store.len(),
        600,
        "599 seeded keys and `mine`; nothing copied again"
    );
    assert!(store.meta(b"k00000").is_none());
    // The copy is durable once seed returns: the device mounts with every seeded key
    // (the delete and put after it were never synced).
    let dev = store.into_device();
    let mut store = run(Store::open(dev, Config::default())).unwrap();
    assert_eq!(store.len(), 600);
    assert!(run(store.get(b"mine")).unwrap().is_none());
}
