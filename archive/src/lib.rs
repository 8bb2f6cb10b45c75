//! Structured data compiled into an appliance, read in place.
//!
//! A component whose data is known when the appliance is built (a redirect table, a
//! DNS zone) has it compiled by a build-time compiler — a host library implementing
//! `morgana_archive_build::Compiler` (crate `archive/build`), run by morgana-codegen for
//! the catalog entry's `build` step —
//! into an [rkyv](https://docs.rs/rkyv) archive in `OUT_DIR`. The generated code
//! includes the archive with [`include_aligned!`] and calls [`access`] once, while the
//! appliance starts: the archive is validated (every offset, length and enum tag
//! checked against the buffer), and from then on the component reads it zero-copy,
//! with no allocator, in `no_std`. A corrupt archive is refused with an [`Error`]
//! (the appliance stops with `morgana: <device>: ...`) and never read.
//!
//! The generated code for a device `zones` whose component has a build step:
//!
//! ```ignore
//! pub static ZONES_ARCHIVE: &morgana_archive::Aligned<[u8]> =
//!     morgana_archive::include_aligned!(concat!(env!("OUT_DIR"), "/zones.rkyv"));
//! // in connect_and_start:
//! let zones = Zones::access(ZONES_ARCHIVE).map_err(|e| StartError::new("zones", &e))?;
//! ```
//!
//! where the component's `access` is [`access`] for its archived root type.
#![no_std]
#![deny(unsafe_code)]

use core::fmt;

pub use rkyv;
#[cfg(feature = "read")]
use rkyv::Portable;
#[cfg(feature = "read")]
use rkyv::api::low::LowValidator;
#[cfg(feature = "read")]
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor::{Source, Trace};

/// The alignment of an included archive: at least that of any archived root.
pub const ALIGN: usize = 16;

/// Bytes (an archive) aligned to [`ALIGN`].
#[repr(C, align(16))]
pub struct Aligned<B: ?Sized>(pub B);

/// `include_aligned!(path)`: the file at `path` (as for `include_bytes!`), as a
/// `&'static Aligned<[u8]>` usable in a `static`'s initialiser.
#[macro_export]
macro_rules! include_aligned {
    ($path:expr) => {
        &$crate::Aligned(*::core::include_bytes!($path))
    };
}

/// Accesses the archive `bytes` as an archived `T`, after validating all of it
/// (bounds, alignment, every pointer, length and tag).
///
/// Validation reads the whole archive once; call it once, at start, and keep the
/// reference. On error nothing of the archive has been handed out. `bytes` is usually
/// `&ARCHIVE.0` of an [`include_aligned!`] static.
#[cfg(feature = "read")]
pub fn access<T>(bytes: &'static [u8]) -> Result<&'static T, Error>
where
    T: Portable + for<'a> CheckBytes<LowValidator<'a, Trail>>,
{
    rkyv::api::low::access::<T, Trail>(bytes).map_err(|trail| Error {
        len: bytes.len(),
        trail,
    })
}

/// Why an archive was refused.
#[derive(Debug)]
pub struct Error {
    len: usize,
    trail: Trail,
}

impl Error {
    /// The archive's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the archive was empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What the validator found, innermost first.
    pub fn detail(&self) -> &str {
        self.trail.as_str()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the compiled-in data ({} bytes) is corrupt and was not read: {}",
            self.len,
            self.trail.as_str()
        )?;
        if self.trail.truncated {
            f.write_str(" ...")?;
        }
        f.write_str(" (rebuild the appliance)")
    }
}

impl core::error::Error for Error {}

/// The validator's message and its trace ("while checking ..."), kept in a fixed
/// buffer: validation allocates nothing. Small enough (with [`Error`], under 128 bytes)
/// to be returned by value.
pub struct Trail {
    buf: [u8; TRAIL],
    len: u8,
    truncated: bool,
}

/// How much of the validator's message is kept.
const TRAIL: usize = 104;
const _: () = assert!(TRAIL < 256 && core::mem::size_of::<Error>() <= 128);

impl Trail {
    fn empty() -> Trail {
        Trail {
            buf: [0; TRAIL],
            len: 0,
            truncated: false,
        }
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Write for Trail {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let at = usize::from(self.len);
        let mut take = s.len().min(TRAIL - at);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[at..at + take].copy_from_slice(&s.as_bytes()[..take]);
        // At most TRAIL (< 256) in all.
        self.len = u8::try_from(at + take).unwrap_or(u8::MAX);
        if take < s.len() {
            self.truncated = true;
        }
        Ok(())
    }
}

impl fmt::Debug for Trail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Trail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for Trail {}

impl Trace for Trail {
    fn trace<R>(mut self, trace: R) -> Self
    where
        R: fmt::Debug + fmt::Display + Send + Sync + 'static,
    {
        let _ = fmt::write(&mut self, format_args!("; {trace}"));
        self
    }
}

impl Source for Trail {
    fn new<T: core::error::Error + Send + Sync + 'static>(source: T) -> Self {
        let mut t = Trail::empty();
        let _ = fmt::write(&mut t, format_args!("{source}"));
        t
    }
}

#[cfg(all(test, feature = "read"))]
mod tests {
    extern crate std;
    use std::string::ToString;
    use std::vec::Vec;

    use super::*;
    use rkyv::{Archive, Serialize};

    #[derive(Archive, Serialize)]
    struct Table {
        names: Vec<std::string::String>,
        ports: Vec<u16>,
    }

    /// An archive in a leaked buffer aligned like `include_aligned!`'s, `skip` bytes in.
    fn aligned(bytes: &[u8], skip: usize) -> &'static [u8] {
        let mut b = std::boxed::Box::new(Aligned([0u8; 4096]));
        b.0[skip..skip + bytes.len()].copy_from_slice(bytes);
        let leaked: &'static Aligned<[u8; 4096]> = std::boxed::Box::leak(b);
        &leaked.0[skip..skip + bytes.len()]
    }

    fn archive() -> Vec<u8> {
        let t = Table {
            names: ["www".to_string(), "mail".to_string()].into(),
            ports: [80, 25].into(),
        };
        rkyv::to_bytes::<rkyv::rancor::Error>(&t)
            .expect("serialize")
            .to_vec()
    }

    #[test]
    fn a_valid_archive_is_read_in_place() {
        let bytes = aligned(&archive(), 0);
        let t = access::<ArchivedTable>(bytes).expect("valid");
        assert_eq!(t.names[1].as_str(), "mail");
        assert_eq!(t.ports[0].to_native(), 80);
    }

    #[test]
    fn a_corrupt_archive_is_refused_with_a_clear_error() {
        let good = archive();
        // A length that points outside the buffer.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = access::<ArchivedTable>(aligned(&bad, 0))
            .err()
            .expect("corrupt");
        let text = e.to_string();
        assert!(
            text.starts_with("the compiled-in data (") && text.ends_with("(rebuild the appliance)"),
            "{text}"
        );
        assert!(!e.detail().is_empty(), "{text}");
        // Truncated, and empty.
        assert!(access::<ArchivedTable>(aligned(&good[..good.len() / 2], 0)).is_err());
        let e = access::<ArchivedTable>(aligned(&[], 0))
            .err()
            .expect("empty");
        assert!(e.is_empty());
        // Every single-byte corruption is either refused or read as a valid table: never
        // undefined behaviour, never a panic.
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0xA5;
            if let Ok(t) = access::<ArchivedTable>(aligned(&b, 0)) {
                let _ = t.names.iter().map(|n| n.len()).sum::<usize>();
            }
        }
    }

    #[test]
    fn a_misaligned_archive_is_refused() {
        assert!(access::<ArchivedTable>(aligned(&archive(), 0)).is_ok());
        let e = access::<ArchivedTable>(aligned(&archive(), 1))
            .err()
            .expect("misaligned");
        assert!(e.to_string().contains("corrupt"), "{e}");
    }
}
