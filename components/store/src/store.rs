//! The durable store: a log of records in segments, an in-memory ordered index, FIFO
//! compaction, a value cache.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Bound;

use morgana_signatures::{Block, BlockError, BlockErrorKind, Kv, KvRead, Value};

use crate::cache::Cache;
use crate::error::Error;
use crate::format::{
    self, Kind, RECORD_HEADER_LEN, RecordHeader, SEGMENT_HEADER_LEN, Superblock, SuperblockError,
    next_record_at,
};

/// The fewest segments a store may have: the head, two kept free for compaction, and
/// room for data.
pub const MIN_SEGMENTS: u32 = 5;
/// Free segments compaction keeps in hand: one for the head to move to, one for the
/// records a compaction copies when they cross a segment boundary.
const MIN_FREE: usize = 2;
/// Segments held back from live data: the head and the two free ones.
const RESERVED_SEGMENTS: u32 = 3;
/// Bytes that must be zero for `open_or_format` to take a device as blank.
const BLANK_PROBE: u64 = 128 * 1024;
/// How much is read at once when walking a segment (mount, compaction).
const READ_CHUNK: u32 = 256 * 1024;
/// Default longest key.
pub const DEFAULT_MAX_KEY_LEN: u32 = 4096;
/// Default (and largest supported by default segments) value length: 1 MiB.
pub const DEFAULT_MAX_VALUE_LEN: u32 = 1 << 20;

/// How a store runs (not part of the on-disk format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Entries of the value cache (direct-mapped, keyed by record position). 0 turns
    /// it off.
    pub cache_entries: usize,
    /// Values longer than this are not cached. The cache holds at most
    /// `cache_entries × cache_max_value` bytes of values.
    pub cache_max_value: usize,
    /// The unwritten tail of the log is written out (without a flush) once it holds this
    /// many bytes; [`Store::sync`] writes and flushes the rest.
    pub write_buffer: usize,
    /// Compaction keeps the space used at most this percentage of the live data, plus
    /// two segments (200: at most twice the live data).
    pub max_space_percent: u32,
    /// Refuse every change ([`Error::ReadOnly`]) even if the device takes writes.
    pub read_only: bool,
    /// Mount a store with damaged records anyway, dropping each damaged record and the
    /// rest of its segment (logged, and counted in [`Stats::salvaged`]). Without it,
    /// such a store refuses to mount with [`Error::Corrupt`].
    pub salvage: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            cache_entries: 8192,
            cache_max_value: 1024,
            write_buffer: 256 * 1024,
            max_space_percent: 200,
            read_only: false,
            salvage: false,
        }
    }
}

/// How [`Store::format`] lays out a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatOptions {
    /// A number unique to this store (take it from the platform's entropy). Every
    /// checksum is seeded with it, so no record of an earlier store on the same device
    /// can ever be taken for one of this store.
    pub store_id: u64,
    /// Bytes per segment; `None`: 4 MiB on devices of 256 MiB and more, else 2 MiB.
    pub segment_size: Option<u32>,
    /// Longest key ([`DEFAULT_MAX_KEY_LEN`]).
    pub max_key_len: u32,
    /// Longest value ([`DEFAULT_MAX_VALUE_LEN`]). A record must fit in a segment.
    pub max_value_len: u32,
}

impl FormatOptions {
    /// The defaults, with `store_id`.
    pub const fn new(store_id: u64) -> FormatOptions {
        FormatOptions {
            store_id,
            segment_size: None,
            max_key_len: DEFAULT_MAX_KEY_LEN,
            max_value_len: DEFAULT_MAX_VALUE_LEN,
        }
    }
}

/// Counters and sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Keys stored.
    pub keys: u64,
    /// Bytes of the records that hold the current values.
    pub live_bytes: u64,
    /// Bytes of the segments in use (the space the log occupies).
    pub used_bytes: u64,
    /// The most live data the store takes before it answers [`Error::NoSpace`].
    pub live_limit: u64,
    /// Bytes per segment.
    pub segment_size: u32,
    /// Segments in all.
    pub segments: u32,
    /// Segments free.
    pub free_segments: u32,
    /// Segments compacted since mount.
    pub compactions: u64,
    /// Bytes of live records copied by compaction since mount.
    pub compacted_bytes: u64,
    /// Flushes made by [`Store::sync`] and compaction.
    pub flushes: u64,
    /// Values served from the cache or the unwritten tail.
    pub cache_hits: u64,
    /// Values read from the device.
    pub device_reads: u64,
    /// Segments replayed at mount.
    pub replayed_segments: u32,
    /// Records replayed at mount.
    pub replayed_records: u64,
    /// Damaged places skipped at mount with [`Config::salvage`].
    pub salvaged: u32,
}

/// Where a key's current record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loc {
    slot: u32,
    off: u32,
    len: u32,
    meta: u64,
}

/// One segment's state.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Sequence number of the log part it holds; 0 when free.
    seq: u64,
    /// Bytes of live records in it.
    live: u64,
    /// Where its records end.
    end: u32,
}

/// The segment being appended to.
struct Head {
    slot: u32,
    seq: u64,
    /// The log from `buf_start` (sector-aligned) on, not yet written to the device.
    buf: Vec<u8>,
    buf_start: u32,
}

impl Head {
    fn end(&self) -> u32 {
        self.buf_start + self.buf.len() as u32
    }
}

/// A window of one segment's bytes, read in sector-aligned chunks.
struct Window {
    slot: u32,
    start: u32,
    buf: Vec<u8>,
}

/// The durable key-value store over a [`Block`] device. See the crate documentation.
pub struct Store<B: Block> {
    dev: B,
    sb: Superblock,
    config: Config,
    index: BTreeMap<Box<[u8]>, Loc>,
    slots: Vec<Slot>,
    /// Segments in use, oldest first (the head, when open, is last).
    order: VecDeque<u32>,
    free: Vec<u32>,
    head: Option<Head>,
    next_seq: u64,
    live: u64,
    /// Changes were made since the last flush.
    dirty: bool,
    /// A device write failed: the log's tail is unknown, so no more changes.
    failed: bool,
    read_only: bool,
    cache: Cache,
    rbuf: Vec<u8>,
    stats: Stats,
}

impl<B: Block> core::fmt::Debug for Store<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Store")
            .field("superblock", &self.sb)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<B: Block> Store<B> {
    /// Formats `dev` as an empty store and mounts it. Whatever the device held is lost:
    /// call it on a device known to be blank or to be discarded (see
    /// [`Store::open_or_format`], which formats only a blank device).
    pub async fn format(
        dev: B,
        options: FormatOptions,
        config: Config,
    ) -> Result<Store<B>, Error<B::Error>> {
        if dev.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let sector = dev.sector_size();
        let capacity = dev.capacity();
        let data_start = format::data_start(sector);
        let segment_size = options.segment_size.unwrap_or(if capacity >= 256 << 20 {
            4 << 20
        } else {
            2 << 20
        });
        let segment_count = capacity.saturating_sub(data_start) / u64::from(segment_size.max(1));
        let sb = Superblock {
            sector_size: sector as u32,
            segment_size,
            segment_count: u32::try_from(segment_count).unwrap_or(u32::MAX),
            data_start,
            store_id: options.store_id,
            max_key_len: options.max_key_len,
            max_value_len: options.max_value_len,
        };
        if let Err(e) = sb.check() {
            return Err(Error::Geometry {
                why: match e {
                    SuperblockError::Inconsistent("too few segments") => {
                        "the device is too small for the segment size (at least 5 segments)"
                    }
                    SuperblockError::Inconsistent(why) => why,
                    _ => "invalid options",
                },
                capacity,
            });
        }
        // Every segment header zeroed (so no segment of an earlier store is taken for
        // ours, whatever its id), flushed, and only then the superblock.
        let zeros = vec![0u8; sector];
        for slot in 0..sb.segment_count {
            let at = seg_byte(&sb, slot, 0) / sector as u64;
            dev.write(at, &zeros).await.map_err(Error::Device)?;
        }
        dev.flush().await.map_err(Error::Device)?;
        let mut first = vec![0u8; sector];
        first[..format::SUPERBLOCK_LEN].copy_from_slice(&sb.encode());
        dev.write(0, &first).await.map_err(Error::Device)?;
        dev.flush().await.map_err(Error::Device)?;
        log::info!(
            "store: formatted {} segments of {} KiB ({} MiB)",
            sb.segment_count,
            sb.segment_size / 1024,
            sb.end() >> 20
        );
        Store::open(dev, config).await
    }

    /// Mounts the store on `dev`, formatting it first if it is blank — never a device
    /// that holds anything else. Blank means the first 128 KiB are zero: that covers
    /// the superblock area and where partition tables and the common file systems keep
    /// their own signatures (ext4 at 1 KiB, ISO 9660 at 32 KiB, btrfs at 64 KiB), so an
    /// image holding one is refused ([`Error::NotAStore`]) rather than formatted over.
    pub async fn open_or_format(
        dev: B,
        options: FormatOptions,
        config: Config,
    ) -> Result<Store<B>, Error<B::Error>> {
        let sector = dev.sector_size() as u64;
        let probe = (BLANK_PROBE / sector).min(dev.sectors());
        let mut head = vec![0u8; (probe * sector) as usize];
        if probe > 0 {
            dev.read(0, &mut head).await.map_err(Error::Device)?;
        }
        if head.iter().all(|&b| b == 0) {
            return Store::format(dev, options, config).await;
        }
        match Store::open(dev, config).await {
            // Sector 0 is zero but something else is there.
            Err(Error::Blank) => Err(Error::NotAStore),
            other => other,
        }
    }

    /// Mounts the store on `dev`: reads the superblock and every segment header, then
    /// replays the segments in use, oldest first, each up to its first record that is
    /// not whole (a write the crash tore or never made). Refuses a blank device, another
    /// format version, a damaged superblock and a device smaller than the store.
    pub async fn open(dev: B, config: Config) -> Result<Store<B>, Error<B::Error>> {
        let sector = dev.sector_size();
        let mut first = vec![0u8; sector.max(format::SUPERBLOCK_LEN)];
        if dev.sectors() == 0 {
            return Err(Error::Blank);
        }
        dev.read(0, &mut first[..sector])
            .await
            .map_err(Error::Device)?;
        let sb = Superblock::decode(&first).map_err(|e| match e {
            SuperblockError::Blank => Error::Blank,
            SuperblockError::NotAStore => Error::NotAStore,
            SuperblockError::Version(found) => Error::UnsupportedVersion { found },
            SuperblockError::Checksum => Error::CorruptSuperblock {
                why: "checksum mismatch",
            },
            SuperblockError::Inconsistent(why) => Error::CorruptSuperblock { why },
        })?;
        if sb.sector_size as usize != sector {
            return Err(Error::SectorSize {
                store: sb.sector_size,
                device: sector as u32,
            });
        }
        if sb.end() > dev.capacity() {
            return Err(Error::DeviceTooSmall {
                store: sb.end(),
                device: dev.capacity(),
            });
        }
        let read_only = config.read_only || dev.is_read_only();
        let mut store = Store {
            dev,
            sb,
            config,
            index: BTreeMap::new(),
            slots: vec![Slot::default(); sb.segment_count as usize],
            order: VecDeque::new(),
            free: Vec::new(),
            head: None,
            next_seq: 1,
            live: 0,
            dirty: false,
            failed: false,
            read_only,
            cache: Cache::new(config.cache_entries, config.cache_max_value),
            rbuf: Vec::new(),
            stats: Stats::default(),
        };
        let mut used: Vec<(u64, u32, u32)> = Vec::new();
        let mut header = vec![0u8; sector];
        for slot in 0..sb.segment_count {
            let at = seg_byte(&sb, slot, 0) / sector as u64;
            store
                .dev
                .read(at, &mut header)
                .await
                .map_err(Error::Device)?;
            match format::decode_segment_header(&header, sb.store_id) {
                Some((seq, prev_end)) => used.push((seq, slot, prev_end)),
                None => store.free.push(slot),
            }
        }
        heapsort(&mut used);
        for w in used.windows(2) {
            if w[0].0 + 1 != w[1].0 {
                let why = if w[0].0 == w[1].0 {
                    "two segments carry the same sequence number"
                } else {
                    "a segment of the log is missing (its header is damaged)"
                };
                store.damaged(w[1].1, 0, why)?;
            }
        }
        // Lowest slots first when allocating.
        store.free.reverse();
        for (i, &(seq, slot, _)) in used.iter().enumerate() {
            // The successor's header says where this segment's log ends.
            let expected_end = used
                .get(i + 1)
                .filter(|next| next.0 == seq + 1 && next.2 != 0)
                .map(|next| next.2);
            store.replay(slot, seq, expected_end).await?;
            store.order.push_back(slot);
        }
        store.next_seq = used.last().map_or(1, |&(seq, _, _)| seq + 1);
        store.stats.replayed_segments = used.len() as u32;
        log::info!(
            "store: mounted: {} keys, {} KiB live in {} of {} segments{}",
            store.index.len(),
            store.live / 1024,
            store.order.len(),
            sb.segment_count,
            if read_only { " (read-only)" } else { "" }
        );
        Ok(store)
    }

    /// A damaged place in the log: refuses to mount, or with [`Config::salvage`] logs it
    /// and lets the caller go on without it.
    fn damaged(
        &mut self,
        segment: u32,
        offset: u32,
        why: &'static str,
    ) -> Result<(), Error<B::Error>> {
        if self.config.salvage {
            log::error!(
                "store: salvaging: segment {segment} offset {offset}: {why}; the rest of the segment is dropped"
            );
            self.stats.salvaged += 1;
            Ok(())
        } else {
            Err(Error::Corrupt {
                segment,
                offset,
                why,
            })
        }
    }

    /// Replays segment `slot` (sequence `seq`) into the index, up to its first record
    /// that does not check out. That is the end of the log in it if nothing proves
    /// otherwise: a torn or never-written tail. It is damage when the successor's header
    /// says the log goes on (`expected_end`), or when two commit markers (the pad
    /// records that end every synced tail) follow it in the segment: the second one was
    /// written only after the first one's flush completed, and that flush covered the
    /// record.
    async fn replay(
        &mut self,
        slot: u32,
        seq: u64,
        expected_end: Option<u32>,
    ) -> Result<(), Error<B::Error>> {
        self.slots[slot as usize] = Slot {
            seq,
            live: 0,
            end: SEGMENT_HEADER_LEN as u32,
        };
        let seg_size = self.sb.segment_size;
        let sector = self.sb.sector_size;
        let mut win = Window {
            slot,
            start: 0,
            buf: Vec::new(),
        };
        let mut pos = SEGMENT_HEADER_LEN as u32;
        loop {
            pos = next_record_at(pos, sector);
            if pos as usize + RECORD_HEADER_LEN > seg_size as usize {
                break;
            }
            let Some(rec) = self.valid_record(&mut win, seq, pos).await? else {
                let damaged = if expected_end.is_some_and(|e| pos < e) {
                    Some("a record fails its checks but the log goes on in the next segment")
                } else if expected_end.is_none()
                    && self.markers_after(&mut win, seq, pos).await? >= 2
                {
                    Some("a record fails its checks but later commits in the segment were flushed")
                } else {
                    None
                };
                if let Some(why) = damaged {
                    self.damaged(slot, pos, why)?;
                }
                break;
            };
            let (h, at) = rec;
            let key =
                &win.buf[at + RECORD_HEADER_LEN..at + RECORD_HEADER_LEN + usize::from(h.key_len)];
            let len = h.len() as u32;
            match h.kind {
                Kind::Put => {
                    let loc = Loc {
                        slot,
                        off: pos,
                        len,
                        meta: h.meta,
                    };
                    // One search of the tree per record (most keys are new at mount).
                    if let Some(old) = self.index.insert(key.into(), loc) {
                        self.unlive(old);
                    }
                    self.slots[slot as usize].live += u64::from(len);
                    self.live += u64::from(len);
                }
                Kind::Delete => {
                    if let Some(old) = self.index.remove(key) {
                        self.unlive(old);
                    }
                }
                Kind::Clear => self.forget_all(),
                Kind::Pad => {}
            }
            pos += len;
            self.slots[slot as usize].end = pos;
            self.stats.replayed_records += 1;
        }
        Ok(())
    }

    /// The record at `pos` of the window's segment (sequence `seq`) and where it starts
    /// in the window, if it is whole and valid there.
    async fn valid_record(
        &self,
        win: &mut Window,
        seq: u64,
        pos: u32,
    ) -> Result<Option<(RecordHeader, usize)>, Error<B::Error>> {
        let seg_size = self.sb.segment_size;
        let at = self.fetch(win, pos, RECORD_HEADER_LEN as u32).await?;
        let Some(h) = RecordHeader::decode(&win.buf[at..]) else {
            return Ok(None);
        };
        if !self.lengths_ok(&h) || u64::from(pos) + h.len() as u64 > u64::from(seg_size) {
            return Ok(None);
        }
        let body_len = if h.kind == Kind::Pad {
            RECORD_HEADER_LEN
        } else {
            h.len()
        };
        let at = self.fetch(win, pos, body_len as u32).await?;
        let rec = &win.buf[at..at + body_len];
        let crc = format::record_crc(
            self.sb.store_id,
            seq,
            pos,
            &rec[4..RECORD_HEADER_LEN],
            &rec[RECORD_HEADER_LEN..],
        );
        Ok((crc == h.crc).then_some((h, at)))
    }

    /// How many valid commit markers (pad records ending on a sector boundary) lie in
    /// the segment after byte `from` (counting stops at two).
    async fn markers_after(
        &self,
        win: &mut Window,
        seq: u64,
        from: u32,
    ) -> Result<u32, Error<B::Error>> {
        let sector = self.sb.sector_size;
        let seg_size = self.sb.segment_size;
        let mut found = 0;
        let mut pos = from + 1;
        while pos as usize + RECORD_HEADER_LEN <= seg_size as usize && found < 2 {
            // A window's worth of candidate positions at a time, tested in place.
            let want = READ_CHUNK.min(seg_size - pos);
            let at = self.fetch(win, pos, want).await?;
            let last = at + want as usize - RECORD_HEADER_LEN;
            let mut i = at;
            let mut hit = None;
            while i <= last {
                let b = &win.buf[i..i + RECORD_HEADER_LEN];
                // Cheap tests first: kind Pad, zero key length and meta, ending on a
                // sector boundary.
                if b[4] == Kind::Pad as u8 && b[5..8] == [0, 0, 0] && b[12..20] == [0; 8] {
                    let p = pos + (i - at) as u32;
                    let end =
                        u64::from(p) + RECORD_HEADER_LEN as u64 + u64::from(format::le32(b, 8));
                    if end.is_multiple_of(u64::from(sector)) && end <= u64::from(seg_size) {
                        let crc = format::record_crc(
                            self.sb.store_id,
                            seq,
                            p,
                            &b[4..RECORD_HEADER_LEN],
                            &[],
                        );
                        if crc == format::le32(b, 0) {
                            hit = Some((p, end as u32));
                            break;
                        }
                    }
                }
                i += 1;
            }
            match hit {
                Some((_, end)) => {
                    found += 1;
                    pos = end;
                }
                None => pos += (last - at + 1) as u32,
            }
        }
        Ok(found)
    }

    /// Whether a header's lengths are within the store's limits.
    fn lengths_ok(&self, h: &RecordHeader) -> bool {
        match h.kind {
            Kind::Put | Kind::Delete => {
                u32::from(h.key_len) <= self.sb.max_key_len && h.value_len <= self.sb.max_value_len
            }
            Kind::Clear => true,
            Kind::Pad => h.value_len < self.sb.sector_size,
        }
    }

    /// Makes `len` bytes from `off` of the window's segment available; returns where
    /// they start in `win.buf`.
    async fn fetch(&self, win: &mut Window, off: u32, len: u32) -> Result<usize, Error<B::Error>> {
        let end = off + len;
        let have = win.start + win.buf.len() as u32;
        if off >= win.start && end <= have {
            return Ok((off - win.start) as usize);
        }
        let sector = self.sb.sector_size;
        let start = off - off % sector;
        let want = (end - start).max(READ_CHUNK);
        let stop = (start + want)
            .next_multiple_of(sector)
            .min(self.sb.segment_size);
        win.start = start;
        win.buf.resize((stop - start) as usize, 0);
        let at = seg_byte(&self.sb, win.slot, start) / u64::from(sector);
        self.dev
            .read(at, &mut win.buf)
            .await
            .map_err(Error::Device)?;
        Ok((off - start) as usize)
    }

    /// The record at `loc` no longer holds its key's value.
    fn unlive(&mut self, old: Loc) {
        self.slots[old.slot as usize].live -= u64::from(old.len);
        self.live -= u64::from(old.len);
    }

    /// Every key is gone (a clear record).
    fn forget_all(&mut self) {
        self.index.clear();
        for s in &mut self.slots {
            s.live = 0;
        }
        self.live = 0;
    }

    /// Counters and sizes.
    pub fn stats(&self) -> Stats {
        Stats {
            keys: self.index.len() as u64,
            live_bytes: self.live,
            used_bytes: self.order.len() as u64 * u64::from(self.sb.segment_size),
            live_limit: self.live_limit(),
            segment_size: self.sb.segment_size,
            segments: self.sb.segment_count,
            free_segments: self.free.len() as u32,
            ..self.stats
        }
    }

    /// The superblock of the mounted store.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// The device.
    pub fn device(&self) -> &B {
        &self.dev
    }

    /// Whether changes are refused.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Unmounts, returning the device. Unsynced changes are not written: call
    /// [`Store::sync`] first to keep them.
    pub fn into_device(self) -> B {
        self.dev
    }

    /// The most live bytes the store takes: 90 % of the segments not held back.
    fn live_limit(&self) -> u64 {
        let usable = u64::from(self.sb.segment_count.saturating_sub(RESERVED_SEGMENTS))
            * u64::from(self.sb.segment_size - SEGMENT_HEADER_LEN as u32);
        usable / 10 * 9
    }

    fn check_writable(&self) -> Result<(), Error<B::Error>> {
        if self.read_only {
            Err(Error::ReadOnly)
        } else if self.failed {
            Err(Error::Failed)
        } else {
            Ok(())
        }
    }

    fn check_key(&self, key: &[u8]) -> Result<(), Error<B::Error>> {
        if key.is_empty() {
            return Err(Error::KeyEmpty);
        }
        if key.len() > self.sb.max_key_len as usize {
            return Err(Error::KeyTooLong {
                len: key.len(),
                max: self.sb.max_key_len as usize,
            });
        }
        Ok(())
    }

    /// A device write failed: from now on the store refuses changes.
    fn fail(&mut self, e: B::Error) -> Error<B::Error> {
        if e.kind() != BlockErrorKind::ReadOnly {
            log::error!("store: device write failed, no more changes: {e}");
            self.failed = true;
        }
        Error::Device(e)
    }

    /// The value under `key`, lent until the next call.
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Value<'_>>, Error<B::Error>> {
        let Some(&loc) = self.index.get(key) else {
            return Ok(None);
        };
        let value_at = RECORD_HEADER_LEN + key.len();
        let value_len = loc.len as usize - value_at;
        // In the unwritten tail?
        if let Some(h) = &self.head
            && h.slot == loc.slot
            && loc.off >= h.buf_start
        {
            self.stats.cache_hits += 1;
            let h = self.head.as_ref().expect("checked");
            let at = (loc.off - h.buf_start) as usize + value_at;
            return Ok(Some(Value {
                data: &h.buf[at..at + value_len],
                meta: loc.meta,
            }));
        }
        let seq = self.slots[loc.slot as usize].seq;
        if self.cache.find(seq, loc.off).is_some() {
            self.stats.cache_hits += 1;
            let data = self.cache.find(seq, loc.off).expect("found");
            return Ok(Some(Value {
                data,
                meta: loc.meta,
            }));
        }
        self.stats.device_reads += 1;
        let sector = u64::from(self.sb.sector_size);
        let start = seg_byte(&self.sb, loc.slot, loc.off);
        let first = start / sector;
        let end = (start + u64::from(loc.len)).next_multiple_of(sector);
        self.rbuf.resize((end - first * sector) as usize, 0);
        self.dev
            .read(first, &mut self.rbuf)
            .await
            .map_err(Error::Device)?;
        let at = (start - first * sector) as usize;
        let rec = &self.rbuf[at..at + loc.len as usize];
        let corrupt = |why| Error::Corrupt {
            segment: loc.slot,
            offset: loc.off,
            why,
        };
        let h = RecordHeader::decode(rec).ok_or(corrupt("not a record header"))?;
        if h.kind != Kind::Put || h.len() != loc.len as usize || h.meta != loc.meta {
            return Err(corrupt("the record does not match the index"));
        }
        if &rec[RECORD_HEADER_LEN..value_at] != key {
            return Err(corrupt("the record holds another key"));
        }
        let crc = format::record_crc(
            self.sb.store_id,
            seq,
            loc.off,
            &rec[4..RECORD_HEADER_LEN],
            &rec[RECORD_HEADER_LEN..],
        );
        if crc != h.crc {
            return Err(corrupt("checksum mismatch"));
        }
        let range = at + value_at..at + loc.len as usize;
        self.cache.insert(seq, loc.off, &self.rbuf[range.clone()]);
        Ok(Some(Value {
            data: &self.rbuf[range],
            meta: loc.meta,
        }))
    }

    /// The meta word of `key`, if it exists (from memory).
    pub fn meta(&self, key: &[u8]) -> Option<u64> {
        self.index.get(key).map(|l| l.meta)
    }

    /// Calls `f(key, meta)` for each key starting with `prefix` in byte order (after
    /// `after`, if given) until it returns `false`. From memory.
    pub fn scan<F: FnMut(&[u8], u64) -> bool>(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        mut f: F,
    ) {
        let lower = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        for (k, loc) in self.index.range::<[u8], _>((lower, Bound::Unbounded)) {
            if !k.starts_with(prefix) || !f(k, loc.meta) {
                break;
            }
        }
    }

    /// Number of keys.
    pub fn len(&self) -> u64 {
        self.index.len() as u64
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The longest key.
    pub fn max_key_len(&self) -> usize {
        self.sb.max_key_len as usize
    }

    /// The longest value.
    pub fn max_value_len(&self) -> usize {
        self.sb.max_value_len as usize
    }

    /// Stores `value` with `meta` under `key`. Durable after the next [`Store::sync`].
    pub async fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        meta: u64,
    ) -> Result<(), Error<B::Error>> {
        self.check_writable()?;
        self.check_key(key)?;
        if value.len() > self.sb.max_value_len as usize {
            return Err(Error::ValueTooLarge {
                len: value.len(),
                max: self.sb.max_value_len as usize,
            });
        }
        let len = (RECORD_HEADER_LEN + key.len() + value.len()) as u32;
        let old_len = self.index.get(key).map_or(0, |l| l.len);
        let after = self.live - u64::from(old_len) + u64::from(len);
        if len > old_len && after > self.live_limit() {
            return Err(Error::NoSpace {
                live: self.live,
                limit: self.live_limit(),
            });
        }
        let pos = self.make_room(len).await?;
        let (slot, seq) = self.append(pos, Kind::Put, key, value, meta);
        let loc = Loc {
            slot,
            off: pos,
            len,
            meta,
        };
        let old = match self.index.get_mut(key) {
            Some(l) => Some(core::mem::replace(l, loc)),
            None => {
                self.index.insert(key.into(), loc);
                None
            }
        };
        if let Some(old) = old {
            self.unlive(old);
        }
        self.slots[slot as usize].live += u64::from(len);
        self.live += u64::from(len);
        self.cache.insert(seq, pos, value);
        self.write_out_if_full().await
    }

    /// Deletes `key`; returns whether it existed. Durable after the next [`Store::sync`].
    pub async fn delete(&mut self, key: &[u8]) -> Result<bool, Error<B::Error>> {
        self.check_writable()?;
        self.check_key(key)?;
        if !self.index.contains_key(key) {
            return Ok(false);
        }
        let len = (RECORD_HEADER_LEN + key.len()) as u32;
        let pos = self.make_room(len).await?;
        self.append(pos, Kind::Delete, key, &[], 0);
        if let Some(old) = self.index.remove(key) {
            self.unlive(old);
        }
        self.write_out_if_full().await?;
        Ok(true)
    }

    /// Deletes every key (one record). Durable after the next [`Store::sync`].
    pub async fn clear(&mut self) -> Result<(), Error<B::Error>> {
        self.check_writable()?;
        if self.index.is_empty() {
            return Ok(());
        }
        let pos = self.make_room(RECORD_HEADER_LEN as u32).await?;
        self.append(pos, Kind::Clear, &[], &[], 0);
        self.forget_all();
        self.write_out_if_full().await
    }

    /// Makes every change so far durable: writes the log's tail (padded to a sector
    /// boundary; the next record starts in a fresh sector, so a sector holding flushed
    /// records is never written again) and flushes the device. Does nothing when nothing
    /// changed since the last flush.
    pub async fn sync(&mut self) -> Result<(), Error<B::Error>> {
        if self.failed {
            return Err(Error::Failed);
        }
        if !self.dirty {
            return Ok(());
        }
        self.write_tail().await?;
        if let Err(e) = self.dev.flush().await {
            return Err(self.fail(e));
        }
        self.stats.flushes += 1;
        self.dirty = false;
        Ok(())
    }

    /// Appends a record at `pos` of the head (which has room); returns the head's slot
    /// and sequence.
    fn append(&mut self, pos: u32, kind: Kind, key: &[u8], value: &[u8], meta: u64) -> (u32, u64) {
        let store_id = self.sb.store_id;
        let h = self.head.as_mut().expect("make_room opened a head");
        let rel = (pos - h.buf_start) as usize;
        // The few bytes skipped at the end of a sector are zero.
        h.buf.resize(rel, 0);
        format::encode_record(&mut h.buf, (store_id, h.seq, pos), kind, key, value, meta);
        let (slot, seq, end) = (h.slot, h.seq, h.end());
        self.slots[slot as usize].end = end;
        self.dirty = true;
        (slot, seq)
    }

    /// Compacts if the policy asks for it, then makes sure the head has room for a
    /// record of `len` bytes; returns where it goes.
    async fn make_room(&mut self, len: u32) -> Result<u32, Error<B::Error>> {
        self.maybe_compact().await?;
        self.head_room(len).await
    }

    /// Where a record of `len` bytes goes in the head, moving the head to a fresh
    /// segment when it does not fit (without compacting).
    async fn head_room(&mut self, len: u32) -> Result<u32, Error<B::Error>> {
        let sector = self.sb.sector_size;
        loop {
            if let Some(h) = &self.head {
                let pos = next_record_at(h.end(), sector);
                if u64::from(pos) + u64::from(len) <= u64::from(self.sb.segment_size) {
                    return Ok(pos);
                }
            }
            self.rotate().await?;
        }
    }

    /// Seals the head (writes its tail out and flushes, so that the next segment's
    /// header never claims a log end that a crash could still take back) and opens a
    /// fresh segment.
    async fn rotate(&mut self) -> Result<(), Error<B::Error>> {
        // Also on the first rotation after mounting: the log read at mount is made
        // durable before a header points at its end.
        if self.head.is_some() || self.dirty || !self.order.is_empty() {
            self.write_tail().await?;
            if let Err(e) = self.dev.flush().await {
                return Err(self.fail(e));
            }
            self.stats.flushes += 1;
            self.dirty = false;
            self.head = None;
        }
        let prev_end = self
            .order
            .back()
            .map_or(0, |&last| self.slots[last as usize].end);
        let Some(slot) = self.free.pop() else {
            return Err(Error::NoSpace {
                live: self.live,
                limit: self.live_limit(),
            });
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut buf = Vec::with_capacity(self.config.write_buffer.min(1 << 20));
        buf.extend_from_slice(&format::encode_segment_header(
            seq,
            self.sb.store_id,
            prev_end,
        ));
        self.slots[slot as usize] = Slot {
            seq,
            live: 0,
            end: SEGMENT_HEADER_LEN as u32,
        };
        self.order.push_back(slot);
        self.head = Some(Head {
            slot,
            seq,
            buf,
            buf_start: 0,
        });
        self.dirty = true;
        Ok(())
    }

    /// Writes the whole sectors of the head's tail once it holds `write_buffer` bytes.
    async fn write_out_if_full(&mut self) -> Result<(), Error<B::Error>> {
        let sector = self.sb.sector_size as usize;
        let Some(h) = &self.head else {
            return Ok(());
        };
        if h.buf.len() < self.config.write_buffer {
            return Ok(());
        }
        let n = h.buf.len() / sector * sector;
        if n == 0 {
            return Ok(());
        }
        let at = seg_byte(&self.sb, h.slot, h.buf_start) / sector as u64;
        if let Err(e) = self.dev.write(at, &h.buf[..n]).await {
            return Err(self.fail(e));
        }
        let h = self.head.as_mut().expect("still there");
        h.buf.drain(..n);
        h.buf_start += n as u32;
        Ok(())
    }

    /// Pads the head's tail to a sector boundary and writes it (no flush).
    async fn write_tail(&mut self) -> Result<(), Error<B::Error>> {
        let sector = self.sb.sector_size;
        let seg_size = self.sb.segment_size;
        let store_id = self.sb.store_id;
        let Some(h) = self.head.as_mut() else {
            return Ok(());
        };
        if h.buf.is_empty() {
            return Ok(());
        }
        // The tail always ends with a pad record up to a sector boundary: the commit
        // marker that `replay` counts to tell damage from a torn tail.
        // It starts where a record may start (not in a sector's last bytes: those stay
        // zero) and runs to the end of that sector, or of the next one when the tail
        // ends on a boundary. At the very end of a segment there may be no room for one:
        // zeros then.
        let end = h.end();
        let at = next_record_at(end, sector);
        let marker = if at.is_multiple_of(sector) {
            sector
        } else {
            sector - at % sector
        };
        if at + marker <= seg_size {
            h.buf.resize((at - h.buf_start) as usize, 0);
            format::encode_pad(&mut h.buf, (store_id, h.seq, at), marker as usize);
        } else {
            let zeros = (sector - end % sector) % sector;
            h.buf.resize(h.buf.len() + zeros as usize, 0);
        }
        let (slot, start, new_end) = (h.slot, h.buf_start, h.end());
        self.slots[slot as usize].end = new_end;
        let at = seg_byte(&self.sb, slot, start) / u64::from(sector);
        let h = self.head.as_ref().expect("still there");
        if let Err(e) = self.dev.write(at, &h.buf).await {
            return Err(self.fail(e));
        }
        let h = self.head.as_mut().expect("still there");
        h.buf.clear();
        h.buf_start = new_end;
        Ok(())
    }

    /// Whether compaction should run: too few free segments, or the log takes more
    /// than `max_space_percent` of the live data plus two segments.
    fn needs_compaction(&self) -> bool {
        let seg = u64::from(self.sb.segment_size);
        let used = self.order.len() as u64 * seg;
        let allowed = self.live / 100 * u64::from(self.config.max_space_percent) + 2 * seg;
        self.free.len() < MIN_FREE || used > allowed
    }

    /// Compacts the oldest segments while the policy asks for it (at most one full turn
    /// of the log).
    async fn maybe_compact(&mut self) -> Result<(), Error<B::Error>> {
        let mut rounds = self.order.len();
        while rounds > 0 && self.needs_compaction() {
            rounds -= 1;
            let Some(&oldest) = self.order.front() else {
                break;
            };
            if self.head.as_ref().is_some_and(|h| h.slot == oldest) {
                break;
            }
            self.compact(oldest).await?;
        }
        Ok(())
    }

    /// Copies the live records of the oldest segment `slot` to the head, makes them
    /// durable, then frees the segment (zeroes its header, flushed). Its tombstones and
    /// clear records are dropped: there is nothing older left for them to delete.
    async fn compact(&mut self, slot: u32) -> Result<(), Error<B::Error>> {
        debug_assert_eq!(self.order.front(), Some(&slot));
        let seq = self.slots[slot as usize].seq;
        let end = self.slots[slot as usize].end;
        let sector = self.sb.sector_size;
        let mut win = Window {
            slot,
            start: 0,
            buf: Vec::new(),
        };
        let mut pos = SEGMENT_HEADER_LEN as u32;
        let mut copied = 0u64;
        loop {
            pos = next_record_at(pos, sector);
            if pos >= end {
                break;
            }
            let at = self.fetch(&mut win, pos, RECORD_HEADER_LEN as u32).await?;
            let corrupt = |why| Error::Corrupt {
                segment: slot,
                offset: pos,
                why,
            };
            let h = RecordHeader::decode(&win.buf[at..]).ok_or(corrupt("not a record header"))?;
            let len = h.len() as u32;
            if h.kind != Kind::Put {
                pos += len;
                continue;
            }
            let key_end = RECORD_HEADER_LEN + usize::from(h.key_len);
            let at = self.fetch(&mut win, pos, len).await?;
            let live = {
                let key = &win.buf[at + RECORD_HEADER_LEN..at + key_end];
                self.index
                    .get(key)
                    .is_some_and(|l| l.slot == slot && l.off == pos)
            };
            if live {
                let rec = &win.buf[at..at + len as usize];
                let crc = format::record_crc(
                    self.sb.store_id,
                    seq,
                    pos,
                    &rec[4..RECORD_HEADER_LEN],
                    &rec[RECORD_HEADER_LEN..],
                );
                if crc != h.crc {
                    return Err(corrupt("checksum mismatch while compacting"));
                }
                let to = self.head_room(len).await?;
                let (key, value) = rec[RECORD_HEADER_LEN..].split_at(usize::from(h.key_len));
                let (head_slot, _) = self.append(to, Kind::Put, key, value, h.meta);
                let loc = self.index.get_mut(key).expect("live");
                *loc = Loc {
                    slot: head_slot,
                    off: to,
                    len,
                    meta: h.meta,
                };
                self.slots[slot as usize].live -= u64::from(len);
                self.slots[head_slot as usize].live += u64::from(len);
                copied += u64::from(len);
                self.write_out_if_full().await?;
            }
            pos += len;
        }
        // The copies are durable before the original goes.
        self.sync().await?;
        let zeros = vec![0u8; sector as usize];
        let at = seg_byte(&self.sb, slot, 0) / u64::from(sector);
        if let Err(e) = self.dev.write(at, &zeros).await {
            return Err(self.fail(e));
        }
        // And the segment is gone for good before any later compaction drops a
        // tombstone that still shadows one of its records.
        if let Err(e) = self.dev.flush().await {
            return Err(self.fail(e));
        }
        self.stats.flushes += 1;
        let _ = self
            .dev
            .discard(at + 1, u64::from((self.sb.segment_size - sector) / sector))
            .await;
        self.order.pop_front();
        self.slots[slot as usize] = Slot::default();
        self.free.push(slot);
        self.stats.compactions += 1;
        self.stats.compacted_bytes += copied;
        log::debug!(
            "store: compacted segment {slot} (seq {seq}): {copied} bytes kept, {} free",
            self.free.len()
        );
        Ok(())
    }
}

/// Sorts `v` in place, in O(n log n) and without allocating: a heapsort, the kernel's only
/// sort of more than a handful of elements (the segments found at mount). Its code is a
/// few hundred bytes; `sort_unstable`'s is ~3 KB of kernel per element type
/// (docs/storage.md, "The kv kernel's size"). The elements are totally ordered, so the
/// result is the same as any other sort's.
fn heapsort<T: Ord + Copy>(v: &mut [T]) {
    // Moves the element at `root` down the max-heap `v[..end]`.
    fn sift_down<T: Ord + Copy>(v: &mut [T], mut root: usize, end: usize) {
        loop {
            let mut child = 2 * root + 1;
            if child >= end {
                return;
            }
            if child + 1 < end && v[child] < v[child + 1] {
                child += 1;
            }
            if v[root] >= v[child] {
                return;
            }
            v.swap(root, child);
            root = child;
        }
    }
    let n = v.len();
    for root in (0..n / 2).rev() {
        sift_down(v, root, n);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift_down(v, 0, end);
    }
}

/// Byte offset on the device of byte `off` of segment `slot`.
fn seg_byte(sb: &Superblock, slot: u32, off: u32) -> u64 {
    sb.data_start + u64::from(slot) * u64::from(sb.segment_size) + u64::from(off)
}

impl<B: Block> KvRead for Store<B> {
    type Error = Error<B::Error>;

    async fn get(&mut self, key: &[u8]) -> Result<Option<Value<'_>>, Self::Error> {
        Store::get(self, key).await
    }

    async fn meta(&mut self, key: &[u8]) -> Result<Option<u64>, Self::Error> {
        Ok(Store::meta(self, key))
    }

    async fn scan<F: FnMut(&[u8], u64) -> bool>(
        &mut self,
        prefix: &[u8],
        after: Option<&[u8]>,
        f: F,
    ) -> Result<(), Self::Error> {
        Store::scan(self, prefix, after, f);
        Ok(())
    }

    fn len(&self) -> u64 {
        Store::len(self)
    }

    fn max_key_len(&self) -> usize {
        Store::max_key_len(self)
    }

    fn max_value_len(&self) -> usize {
        Store::max_value_len(self)
    }
}

impl<B: Block> Kv for Store<B> {
    async fn put(&mut self, key: &[u8], value: &[u8], meta: u64) -> Result<(), Self::Error> {
        Store::put(self, key, value, meta).await
    }

    async fn delete(&mut self, key: &[u8]) -> Result<bool, Self::Error> {
        Store::delete(self, key).await
    }

    async fn clear(&mut self) -> Result<(), Self::Error> {
        Store::clear(self).await
    }

    async fn sync(&mut self) -> Result<(), Self::Error> {
        Store::sync(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::heapsort;
    use alloc::vec::Vec;

    /// The heapsort against the standard sort, on every length up to 40 and on inputs
    /// with duplicates, runs and reversed runs (a fixed xorshift sequence).
    #[test]
    fn heapsort_sorts_like_sort_unstable() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..=40usize {
            for round in 0..8u32 {
                let mut v: Vec<(u64, u32, u32)> = (0..len)
                    .map(|i| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        match round {
                            0 => (i as u64, i as u32, 0),
                            1 => ((len - i) as u64, 0, 0),
                            2 => (x % 4, (x >> 8) as u32 % 3, 0),
                            _ => (x % 64, (x >> 16) as u32, (x >> 40) as u32),
                        }
                    })
                    .collect();
                let mut expected = v.clone();
                expected.sort_unstable();
                heapsort(&mut v);
                assert_eq!(v, expected, "length {len}, round {round}");
            }
        }
    }
}
