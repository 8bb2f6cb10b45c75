//! The index's memory, measured with a counting allocator: 200 000 16-byte keys (the
//! figure per key barely moves with the count: 77 MiB per million keys).
//! The bound asserted here is the one `docs/store-format.md` states.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use morgana_signatures::{Block, BlockError, BlockErrorKind};
use morgana_store::{Config, FormatOptions, Store};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[derive(Debug)]
struct Never;
impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}
impl BlockError for Never {
    fn kind(&self) -> BlockErrorKind {
        BlockErrorKind::Other
    }
}

/// A large device that keeps only its first sector (the superblock) and forgets the
/// rest of what is written (this test never reads values back).
struct Sink(std::cell::RefCell<Vec<u8>>);
impl Block for Sink {
    type Error = Never;
    fn sector_size(&self) -> usize {
        4096
    }
    fn sectors(&self) -> u64 {
        1 << 20 // 4 GiB
    }
    fn is_read_only(&self) -> bool {
        false
    }
    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), Never> {
        buf.fill(0);
        if sector == 0 {
            buf[..4096].copy_from_slice(&self.0.borrow());
        }
        Ok(())
    }
    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), Never> {
        if sector == 0 {
            self.0.borrow_mut().copy_from_slice(&buf[..4096]);
        }
        Ok(())
    }
    async fn flush(&self) -> Result<(), Never> {
        Ok(())
    }
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    struct NeverIdle;
    impl morgana_rt::Idle for NeverIdle {
        fn wait(&mut self) {
            unreachable!()
        }
    }
    morgana_rt::block_on(f, &mut NeverIdle)
}

#[test]
fn sixteen_byte_keys_take_under_84_bytes_each_in_the_index() {
    let config = Config {
        cache_entries: 0,
        ..Config::default()
    };
    let mut store = run(Store::format(
        Sink(vec![0; 4096].into()),
        FormatOptions::new(5),
        config,
    ))
    .unwrap();
    run(store.put(b"warm-up", b"x", 0)).unwrap();
    let before = LIVE.load(Ordering::Relaxed);
    const N: u64 = 200_000;
    for i in 0..N {
        // 16 bytes, inserted in a scattered order.
        let k = format!(
            "key:{:012}",
            i.wrapping_mul(0x9E37_79B9) % 1_000_000_000_000
        );
        run(store.put(k.as_bytes(), b"v", i)).unwrap();
    }
    let after = LIVE.load(Ordering::Relaxed);
    let per_key = (after - before) as f64 / N as f64;
    eprintln!(
        "index: {:.1} bytes per 16-byte key ({:.1} MiB per million keys)",
        per_key,
        per_key * 1e6 / (1 << 20) as f64
    );
    assert_eq!(store.len(), N + 1);
    assert!(per_key < 84.0, "{per_key} bytes per key");
}
