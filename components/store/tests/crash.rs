//! Crash consistency on a simulated disk that keeps unflushed writes in a volatile cache
//! and loses, keeps, splits or tears each of them at a crash; power is cut at a random
//! device operation (in the middle of a sync, a segment rotation, a compaction...).
//!
//! For many seeds, several crash cycles each: a random workload (puts of small and
//! large values, overwrites, deletes, clears, syncs) runs until the power goes; the
//! store is mounted again from what the disk kept and every key is checked:
//! - what the last completed `sync` acknowledged is there, unless a later change to
//!   the key may have survived instead;
//! - nothing else: every value found was written to that key, whole, with its meta.

mod common;

use std::collections::BTreeMap;

use common::{Rng, SimBlock, run};
use morgana_store::{Config, Error, FormatOptions, Store};

type Val = Option<(Vec<u8>, u64)>;

/// A value that says who wrote it: key, seed, operation number, and its length.
fn make_value(rng: &mut Rng, key: usize, seed: u64, op: u64, max: usize) -> Vec<u8> {
    let len = match rng.below(10) {
        0 => 0,
        1..=6 => rng.below(64) as usize,
        7 | 8 => rng.below(2048) as usize,
        _ => rng.below(max as u64 + 1) as usize,
    };
    let tag = format!("k{key}s{seed}o{op}:");
    let mut v = tag.into_bytes();
    while v.len() < len {
        v.push(b'a' + (v.len() % 26) as u8);
    }
    v.truncate(len);
    v
}

fn key(i: usize) -> Vec<u8> {
    format!("key/{i:03}").into_bytes()
}

struct Model {
    /// The state as of the last completed sync.
    durable: BTreeMap<Vec<u8>, (Vec<u8>, u64)>,
    /// The state now.
    current: BTreeMap<Vec<u8>, (Vec<u8>, u64)>,
    /// Per key, every state it had since the last sync.
    since_sync: BTreeMap<Vec<u8>, Vec<Val>>,
    cleared_since_sync: bool,
}

impl Model {
    fn synced(&mut self) {
        self.durable = self.current.clone();
        self.since_sync.clear();
        self.cleared_since_sync = false;
    }

    fn set(&mut self, k: &[u8], v: Val) {
        self.since_sync
            .entry(k.to_vec())
            .or_default()
            .push(v.clone());
        match v {
            Some(v) => {
                self.current.insert(k.to_vec(), v);
            }
            None => {
                self.current.remove(k);
            }
        }
    }

    fn clear(&mut self) {
        let keys: Vec<_> = self.current.keys().cloned().collect();
        for k in keys {
            self.set(&k, None);
        }
        self.cleared_since_sync = true;
    }

    /// Whether `got` is a state `k` may have after a crash.
    fn allowed(&self, k: &[u8], got: &Val) -> bool {
        let durable: Val = self.durable.get(k).cloned();
        if *got == durable {
            return true;
        }
        if self.cleared_since_sync && got.is_none() {
            return true;
        }
        self.since_sync
            .get(k)
            .is_some_and(|states| states.contains(got))
    }
}

fn config(rng: &mut Rng) -> Config {
    Config {
        cache_entries: [0, 16, 256][rng.below(3) as usize],
        cache_max_value: 512,
        write_buffer: [512, 4096, 65536][rng.below(3) as usize],
        max_space_percent: [150, 200, 300][rng.below(3) as usize],
        read_only: false,
        salvage: false,
    }
}

fn read_all(store: &mut Store<SimBlock>, keys: usize) -> BTreeMap<Vec<u8>, (Vec<u8>, u64)> {
    let mut out = BTreeMap::new();
    for i in 0..keys {
        let k = key(i);
        let got = run(store.get(&k)).unwrap_or_else(|e| panic!("get {i} after recovery: {e}"));
        if let Some(v) = got {
            out.insert(k, (v.data.to_vec(), v.meta));
        }
    }
    out
}

/// One seed: format, then `cycles` times: work until the power goes, recover, check.
fn run_seed(seed: u64, cycles: u32) -> (u64, u64) {
    let mut rng = Rng::new(seed);
    let sector = if rng.chance(50) { 512 } else { 4096 };
    let segment = [32 * 1024, 64 * 1024, 128 * 1024][rng.below(3) as usize];
    let segments = 8 + rng.below(12) as usize;
    let max_value = segment / 4;
    let keys = [8, 40, 200][rng.below(3) as usize];
    let bytes = 4096 + segment * segments + sector * rng.below(3) as usize;
    let mut disk = SimBlock::new(sector, bytes);
    let options = FormatOptions {
        store_id: seed ^ 0xABCD,
        segment_size: Some(segment as u32),
        max_key_len: 64,
        max_value_len: max_value as u32,
    };
    let mut store = run(Store::format(disk.clone(), options, config(&mut rng)))
        .unwrap_or_else(|e| panic!("seed {seed}: format: {e}"));
    let mut model = Model {
        durable: BTreeMap::new(),
        current: BTreeMap::new(),
        since_sync: BTreeMap::new(),
        cleared_since_sync: false,
    };
    let mut op = 0u64;
    let (mut syncs, mut recovered) = (0u64, 0u64);
    for cycle in 0..cycles {
        disk.die_in(1 + rng.below(400 + 200 * u64::from(cycle)));
        loop {
            op += 1;
            let r = match rng.below(100) {
                0..=54 => {
                    let i = rng.below(keys as u64) as usize;
                    let v = make_value(&mut rng, i, seed, op, max_value);
                    let meta = rng.below(3) * op;
                    match run(store.put(&key(i), &v, meta)) {
                        Ok(()) => {
                            model.set(&key(i), Some((v, meta)));
                            Ok(())
                        }
                        Err(Error::NoSpace { .. }) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
                55..=74 => {
                    let i = rng.below(keys as u64) as usize;
                    match run(store.delete(&key(i))) {
                        Ok(existed) => {
                            assert_eq!(
                                existed,
                                model.current.contains_key(&key(i)),
                                "seed {seed}: delete's answer"
                            );
                            model.set(&key(i), None);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                75 => match run(store.clear()) {
                    Ok(()) => {
                        model.clear();
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                _ => match run(store.sync()) {
                    Ok(()) => {
                        model.synced();
                        syncs += 1;
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
            };
            match r {
                Ok(()) => {}
                Err(_) if disk.is_dead() => break,
                Err(e) => panic!("seed {seed} op {op}: {e}"),
            }
        }
        // Power cut: what the disk kept is all there is.
        drop(store);
        disk = disk.crash(&mut rng);
        store = run(Store::open(disk.clone(), config(&mut rng)))
            .unwrap_or_else(|e| panic!("seed {seed} cycle {cycle}: mount after crash: {e}"));
        let state = read_all(&mut store, keys);
        for i in 0..keys {
            let k = key(i);
            let got: Val = state.get(&k).cloned();
            assert!(
                model.allowed(&k, &got),
                "seed {seed} cycle {cycle}: key {i} recovered as {:?}; acknowledged {:?}; written since {:?}",
                got.as_ref()
                    .map(|v| String::from_utf8_lossy(&v.0[..v.0.len().min(24)]).into_owned()),
                model
                    .durable
                    .get(&k)
                    .map(|v| String::from_utf8_lossy(&v.0[..v.0.len().min(24)]).into_owned()),
                model.since_sync.get(&k).map(|s| s.len())
            );
        }
        assert_eq!(store.len(), state.len() as u64, "seed {seed}: key count");
        let mut scanned = 0;
        store.scan(b"key/", None, |_, _| {
            scanned += 1;
            true
        });
        assert_eq!(scanned, state.len(), "seed {seed}: scan");
        // What was recovered is on the disk now: it is the new durable state.
        model.current = state;
        model.synced();
        recovered += 1;
    }
    (syncs, recovered)
}

#[test]
fn every_synced_change_survives_random_crashes_and_nothing_is_invented() {
    let seeds: u64 = std::env::var("STORE_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let mut syncs = 0;
    let mut crashes = 0;
    let first: u64 = std::env::var("STORE_CRASH_FIRST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for seed in first..first + seeds {
        let (s, c) = run_seed(seed, 4);
        syncs += s;
        crashes += c;
    }
    eprintln!("{seeds} seeds: {crashes} crashes recovered, {syncs} syncs acknowledged");
    assert!(crashes >= seeds * 4);
    let _ = first;
    assert!(syncs > seeds * 10, "the workload syncs too rarely: {syncs}");
}
