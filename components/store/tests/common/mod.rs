//! A simulated disk for the store's host tests: a volatile write cache that a crash
//! throws away in part, tears writes, and can lose power at any device operation.
#![allow(dead_code)]

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::rc::Rc;

use morgana_signatures::{Block, BlockError, BlockErrorKind, check_request};

/// A deterministic random source (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimError(pub BlockErrorKind);

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "simulated disk: {}", self.0)
    }
}

impl BlockError for SimError {
    fn kind(&self) -> BlockErrorKind {
        self.0
    }
}

pub struct SimState {
    pub sector: usize,
    /// What survives a crash for sure.
    pub durable: Vec<u8>,
    /// Completed writes not yet flushed, oldest first (byte offset, bytes).
    pub pending: Vec<(usize, Vec<u8>)>,
    /// What reads see: `durable` with `pending` applied.
    pub visible: Vec<u8>,
    pub read_only: bool,
    /// Device operations (reads, writes, flushes) so far.
    pub ops: u64,
    /// Power is lost when `ops` reaches this: the operation and every later one fail.
    pub die_at_op: Option<u64>,
    pub dead: bool,
    /// Writes fail with an I/O error (without power loss) from this write on.
    pub fail_writes_at: Option<u64>,
    pub writes: u64,
    pub flushes: u64,
    pub bytes_written: u64,
}

/// A simulated disk; clones share it (the test keeps one, the store owns another).
#[derive(Clone)]
pub struct SimBlock(pub Rc<RefCell<SimState>>);

impl SimBlock {
    pub fn new(sector: usize, bytes: usize) -> SimBlock {
        SimBlock::from_image(sector, vec![0; bytes])
    }

    pub fn from_image(sector: usize, image: Vec<u8>) -> SimBlock {
        SimBlock(Rc::new(RefCell::new(SimState {
            sector,
            visible: image.clone(),
            durable: image,
            pending: Vec::new(),
            read_only: false,
            ops: 0,
            die_at_op: None,
            dead: false,
            fail_writes_at: None,
            writes: 0,
            flushes: 0,
            bytes_written: 0,
        })))
    }

    pub fn state(&self) -> std::cell::RefMut<'_, SimState> {
        self.0.borrow_mut()
    }

    /// Power is lost `n` device operations from now.
    pub fn die_in(&self, n: u64) {
        let mut s = self.0.borrow_mut();
        s.die_at_op = Some(s.ops + n);
    }

    pub fn is_dead(&self) -> bool {
        self.0.borrow().dead
    }

    /// What the disk holds after a crash now: each unflushed write is lost, kept, kept
    /// in part (a random subset of its sectors), or kept with one sector torn (new bytes
    /// up to a random point, old ones after it).
    pub fn crash_image(&self, rng: &mut Rng) -> Vec<u8> {
        let s = self.0.borrow();
        let mut image = s.durable.clone();
        let sector = s.sector;
        for (at, data) in &s.pending {
            let sectors = data.len() / sector;
            match rng.below(4) {
                0 => {}
                1 => image[*at..at + data.len()].copy_from_slice(data),
                2 => {
                    for i in 0..sectors {
                        if rng.chance(50) {
                            let r = i * sector..(i + 1) * sector;
                            image[at + r.start..at + r.end].copy_from_slice(&data[r]);
                        }
                    }
                }
                _ => {
                    image[*at..at + data.len()].copy_from_slice(data);
                    let torn = rng.below(sectors as u64) as usize;
                    let cut = rng.below(sector as u64) as usize;
                    let from = at + torn * sector + cut;
                    let to = at + (torn + 1) * sector;
                    let old = s.durable[from..to].to_vec();
                    image[from..to].copy_from_slice(&old);
                }
            }
        }
        image
    }

    /// The disk after a crash now, powered up again.
    pub fn crash(&self, rng: &mut Rng) -> SimBlock {
        let sector = self.0.borrow().sector;
        SimBlock::from_image(sector, self.crash_image(rng))
    }

    fn op(&self) -> Result<(), SimError> {
        let mut s = self.0.borrow_mut();
        s.ops += 1;
        if s.dead || s.die_at_op.is_some_and(|d| s.ops >= d) {
            s.dead = true;
            return Err(SimError(BlockErrorKind::Io));
        }
        Ok(())
    }
}

impl Block for SimBlock {
    type Error = SimError;

    fn sector_size(&self) -> usize {
        self.0.borrow().sector
    }

    fn sectors(&self) -> u64 {
        let s = self.0.borrow();
        (s.visible.len() / s.sector) as u64
    }

    fn is_read_only(&self) -> bool {
        self.0.borrow().read_only
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), SimError> {
        if let Err(e) = check_request(self.sector_size(), self.sectors(), sector, buf.len()) {
            panic!("bad read request: sector {sector} len {}: {e}", buf.len());
        }
        self.op()?;
        let s = self.0.borrow();
        let at = sector as usize * s.sector;
        buf.copy_from_slice(&s.visible[at..at + buf.len()]);
        Ok(())
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), SimError> {
        if self.is_read_only() {
            return Err(SimError(BlockErrorKind::ReadOnly));
        }
        if let Err(e) = check_request(self.sector_size(), self.sectors(), sector, buf.len()) {
            panic!("bad write request: sector {sector} len {}: {e}", buf.len());
        }
        self.op()?;
        let mut s = self.0.borrow_mut();
        s.writes += 1;
        if s.fail_writes_at.is_some_and(|n| s.writes >= n) {
            return Err(SimError(BlockErrorKind::Io));
        }
        s.bytes_written += buf.len() as u64;
        let at = sector as usize * s.sector;
        s.visible[at..at + buf.len()].copy_from_slice(buf);
        s.pending.push((at, buf.to_vec()));
        Ok(())
    }

    async fn flush(&self) -> Result<(), SimError> {
        if self.is_read_only() {
            return Err(SimError(BlockErrorKind::ReadOnly));
        }
        self.op()?;
        let mut s = self.0.borrow_mut();
        s.flushes += 1;
        let pending = std::mem::take(&mut s.pending);
        for (at, data) in pending {
            s.durable[at..at + data.len()].copy_from_slice(&data);
        }
        Ok(())
    }
}

/// Runs a future that never waits (every device here completes at once).
pub fn run<F: Future>(f: F) -> F::Output {
    struct NeverIdle;
    impl morgana_rt::Idle for NeverIdle {
        fn wait(&mut self) {
            panic!("a simulated device never makes a future wait");
        }
    }
    morgana_rt::block_on(f, &mut NeverIdle)
}
