//! Mounts a store's disk image read-only and prints its geometry and figures: keys,
//! live bytes, bytes the log occupies (space amplification), segments, mount time.
//!
//! ```sh
//! cargo run --release -p morgana-store --example inspect -- <disk image>
//! ```
//!
//! Prints `name=value` lines (bench/kv.sh reads them). Never writes to the image.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::process::ExitCode;
use std::time::Instant;

use morgana_signatures::{Block, BlockError, BlockErrorKind};
use morgana_store::{Config, Store};

#[derive(Debug)]
struct IoError(std::io::Error);

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl BlockError for IoError {
    fn kind(&self) -> BlockErrorKind {
        BlockErrorKind::Io
    }
}

/// The image, read-only, 512-byte sectors.
struct Image {
    file: File,
    sectors: u64,
}

impl Block for Image {
    type Error = IoError;
    fn sector_size(&self) -> usize {
        512
    }
    fn sectors(&self) -> u64 {
        self.sectors
    }
    fn is_read_only(&self) -> bool {
        true
    }
    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.file.read_exact_at(buf, sector * 512).map_err(IoError)
    }
    async fn write(&self, _: u64, _: &[u8]) -> Result<(), IoError> {
        Err(IoError(std::io::Error::other("read-only")))
    }
    async fn flush(&self) -> Result<(), IoError> {
        Err(IoError(std::io::Error::other("read-only")))
    }
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: inspect <disk image>");
        return ExitCode::FAILURE;
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("inspect: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sectors = file.metadata().map(|m| m.len() / 512).unwrap_or(0);
    struct Never;
    impl morgana_rt::Idle for Never {
        fn wait(&mut self) {
            unreachable!("file reads complete at once")
        }
    }
    let started = Instant::now();
    let config = Config {
        read_only: true,
        cache_entries: 0,
        ..Config::default()
    };
    let store = match morgana_rt::block_on(Store::open(Image { file, sectors }, config), &mut Never)
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("inspect: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mount = started.elapsed();
    let sb = store.superblock();
    let s = store.stats();
    println!("sector_size={}", sb.sector_size);
    println!("segment_size={}", sb.segment_size);
    println!("segments={}", sb.segment_count);
    println!("free_segments={}", s.free_segments);
    println!("keys={}", s.keys);
    println!("live_bytes={}", s.live_bytes);
    println!("used_bytes={}", s.used_bytes);
    println!(
        "space_amplification={:.2}",
        s.used_bytes as f64 / s.live_bytes.max(1) as f64
    );
    println!("replayed_records={}", s.replayed_records);
    println!("mount_seconds={:.3}", mount.as_secs_f64());
    ExitCode::SUCCESS
}
