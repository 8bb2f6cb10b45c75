//! The kernel image: an ELF64 x86-64 executable, read once at start.
//!
//! What the tender takes from it: the `PT_LOAD` segments (address, bytes, and their
//! R/W/X flags, which become the page permissions: a segment both writable and
//! executable is refused), the entry point and stack size (from the `Morgana` note,
//! [`morgana_tender_abi::TenderNote`]; an image without it is refused), the
//! section names (to name the region a fault hit) and the symbols (to name the function).
//! The image is mapped at its link addresses (virtual == physical).

use morgana_tender_abi::{ABI_VERSION, MIN_ABI_VERSION, NOTE_NAME, NOTE_TYPE_TENDER, TenderNote};
use object::elf::{self, FileHeader64};
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader, Sym};
use object::{Endian, Endianness};
use std::fmt;
use std::path::Path;
use zerocopy::FromBytes;

/// Page size.
pub const PAGE: u64 = 4096;

/// Why a kernel image cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a readable ELF64 file.
    #[error("not an ELF64 kernel image: {0}")]
    Elf(#[from] object::read::Error),
    /// An ELF file of the wrong kind.
    #[error("not an x86-64 executable (a static, non-PIE ELF for the host triple is needed): {0}")]
    WrongKind(&'static str),
    /// A segment is writable and executable.
    #[error(
        "segment {index} at {vaddr:#x} is writable and executable; the tender keeps W^X: give \
         code and data separate PT_LOAD segments in the linker script"
    )]
    WriteExecute {
        /// Program header index.
        index: usize,
        /// Its address.
        vaddr: u64,
    },
    /// Two segments with different rights share a page.
    #[error(
        "segments at {a:#x} and {b:#x} share the page at {page:#x} with different rights; \
         align each PT_LOAD segment to 4 KiB in the linker script"
    )]
    SharedPage {
        /// One segment's address.
        a: u64,
        /// The other's.
        b: u64,
        /// The page.
        page: u64,
    },
    /// A segment's sizes or addresses do not add up.
    #[error("segment {index} is malformed: {why}")]
    BadSegment {
        /// Program header index.
        index: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// No loadable segment.
    #[error("the image has no PT_LOAD segment")]
    Empty,
    /// The entry point is not in an executable segment.
    #[error("the entry point {0:#x} is not inside an executable segment")]
    EntryOutside(u64),
    /// The note asks for another ABI version.
    #[error(
        "the kernel was built for tender ABI version {found}; this tender speaks versions {MIN_ABI_VERSION} to {ABI_VERSION}"
    )]
    AbiVersion {
        /// The note's version.
        found: u32,
    },
    /// The note is malformed.
    #[error("the Morgana tender note is malformed ({0} bytes; 24 expected)")]
    BadNote(usize),
    /// The image has no Morgana tender note: it was not built to run at CPL 3.
    #[error(
        "the image has no Morgana tender note (ELF note \"Morgana\", type 0x74656e64, in section \
         .note.morgana.tender), so it has no entry for the tender: a Morgana kernel built with \
         morgana_pvh::entry! has it (rebuild it with this version; the kernel targets for one \
         hypervisor, qemu and xen-only, leave it out: build for target xen), any other kernel \
         emits it with morgana_tender_abi::tender_note!"
    )]
    NoNote,
}

/// R/W/X rights of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rights {
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub execute: bool,
}

impl Rights {
    /// Read only.
    pub const R: Rights = Rights {
        read: true,
        write: false,
        execute: false,
    };
    /// Read and write.
    pub const RW: Rights = Rights {
        read: true,
        write: true,
        execute: false,
    };
    /// Read and execute.
    pub const RX: Rights = Rights {
        read: true,
        write: false,
        execute: true,
    };
    /// Nothing.
    pub const NONE: Rights = Rights {
        read: false,
        write: false,
        execute: false,
    };
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = [
            (self.read, "read"),
            (self.write, "write"),
            (self.execute, "execute"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if parts.is_empty() {
            f.write_str("no access")
        } else {
            f.write_str(&parts.join("+"))
        }
    }
}

/// One loadable segment.
#[derive(Clone, Debug)]
pub struct Segment {
    /// First byte's address (not necessarily page aligned).
    pub vaddr: u64,
    /// Bytes in memory (`filesz` of them from the file, the rest zero).
    pub memsz: u64,
    /// The bytes from the file.
    pub bytes: Vec<u8>,
    /// Its rights.
    pub rights: Rights,
    /// The names of the allocated sections inside it (`.text`, `.rodata`, ...).
    pub sections: Vec<String>,
}

impl Segment {
    /// The page-aligned range the segment occupies.
    pub fn pages(&self) -> (u64, u64) {
        (
            self.vaddr & !(PAGE - 1),
            (self.vaddr + self.memsz).div_ceil(PAGE) * PAGE,
        )
    }
}

/// A symbol, for naming addresses in reports.
#[derive(Clone, Debug)]
struct Symbol {
    addr: u64,
    size: u64,
    name: String,
}

/// The kernel's symbols, sorted by address.
#[derive(Clone, Debug, Default)]
pub struct Symbols(Vec<Symbol>);

impl Symbols {
    /// `function + 0xoffset` for `addr`, if a symbol covers it.
    pub fn describe(&self, addr: u64) -> Option<String> {
        let i = self.0.partition_point(|s| s.addr <= addr).checked_sub(1)?;
        let s = &self.0[i];
        let offset = addr - s.addr;
        (offset < s.size.max(1)).then(|| format!("{} + {offset:#x}", s.name))
    }

    /// How many symbols were read.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the image had no symbols (stripped).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A kernel image, parsed and checked.
#[derive(Clone, Debug)]
pub struct Image {
    /// The loadable segments, sorted by address.
    pub segments: Vec<Segment>,
    /// Where the tender enters it.
    pub entry: u64,
    /// The stack the kernel asked for (0: the tender's default).
    pub stack_bytes: u64,
    /// The ABI version the kernel was built against (the note's), which the tender
    /// speaks with it.
    pub abi_version: u32,
    /// Symbols for reports.
    pub symbols: Symbols,
}

impl Image {
    /// Reads and checks the kernel image at `path`.
    pub fn open(path: &Path) -> Result<Image, ImageError> {
        let data = std::fs::read(path).map_err(|source| ImageError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Image::parse(&data)
    }

    /// Parses and checks an ELF image.
    pub fn parse(data: &[u8]) -> Result<Image, ImageError> {
        let header = FileHeader64::<Endianness>::parse(data)?;
        let endian = header.endian()?;
        if header.e_machine(endian) != elf::EM_X86_64 {
            return Err(ImageError::WrongKind("not x86-64"));
        }
        if !endian.is_little_endian() {
            return Err(ImageError::WrongKind("big-endian"));
        }
        match header.e_type(endian) {
            elf::ET_EXEC => {}
            elf::ET_DYN => {
                return Err(ImageError::WrongKind(
                    "position-independent (link with -no-pie)",
                ));
            }
            _ => return Err(ImageError::WrongKind("not an executable")),
        }

        let mut note = None;
        let mut segments = Vec::new();
        for (index, ph) in header.program_headers(endian, data)?.iter().enumerate() {
            match ph.p_type(endian) {
                elf::PT_LOAD => {
                    let vaddr = ph.p_vaddr(endian);
                    let memsz = ph.p_memsz(endian);
                    let filesz = ph.p_filesz(endian);
                    if memsz == 0 {
                        continue;
                    }
                    if filesz > memsz {
                        return Err(ImageError::BadSegment {
                            index,
                            why: "file size larger than memory size",
                        });
                    }
                    if vaddr.checked_add(memsz).is_none_or(|end| end > 1 << 47) {
                        return Err(ImageError::BadSegment {
                            index,
                            why: "ends beyond the lower half of the address space",
                        });
                    }
                    let flags = ph.p_flags(endian);
                    let rights = Rights {
                        read: flags.0 & elf::PF_R.0 != 0,
                        write: flags.0 & elf::PF_W.0 != 0,
                        execute: flags.0 & elf::PF_X.0 != 0,
                    };
                    if rights.write && rights.execute {
                        return Err(ImageError::WriteExecute { index, vaddr });
                    }
                    let bytes = ph
                        .data(endian, data)
                        .map_err(|_| ImageError::BadSegment {
                            index,
                            why: "file bytes outside the file",
                        })?
                        .to_vec();
                    segments.push(Segment {
                        vaddr,
                        memsz,
                        bytes,
                        rights,
                        sections: Vec::new(),
                    });
                }
                elf::PT_NOTE => {
                    if let Some(mut notes) = ph.notes(endian, data)? {
                        while let Some(n) = notes.next()? {
                            if n.name() == &NOTE_NAME[..NOTE_NAME.len() - 1]
                                && n.n_type(endian).0 == NOTE_TYPE_TENDER
                            {
                                let desc = n.desc();
                                let parsed = TenderNote::read_from_bytes(desc)
                                    .map_err(|_| ImageError::BadNote(desc.len()))?;
                                note = Some(parsed);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if segments.is_empty() {
            return Err(ImageError::Empty);
        }
        segments.sort_by_key(|s| s.vaddr);
        for pair in segments.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let (_, a_end) = a.pages();
            let (b_start, _) = b.pages();
            if a.vaddr + a.memsz > b.vaddr {
                return Err(ImageError::BadSegment {
                    index: 0,
                    why: "two PT_LOAD segments overlap",
                });
            }
            if a_end > b_start && a.rights != b.rights {
                return Err(ImageError::SharedPage {
                    a: a.vaddr,
                    b: b.vaddr,
                    page: b_start,
                });
            }
        }

        let (entry, stack_bytes, abi_version) = match note {
            Some(n) if !(MIN_ABI_VERSION..=ABI_VERSION).contains(&n.abi_version) => {
                return Err(ImageError::AbiVersion {
                    found: n.abi_version,
                });
            }
            Some(n) => (n.entry, n.stack_bytes, n.abi_version),
            None => return Err(ImageError::NoNote),
        };
        if !segments
            .iter()
            .any(|s| s.rights.execute && (s.vaddr..s.vaddr + s.memsz).contains(&entry))
        {
            return Err(ImageError::EntryOutside(entry));
        }

        // Section names and symbols are for reports only: a stripped image still runs.
        let mut symbols = Vec::new();
        if let Ok(sections) = header.sections(endian, data) {
            for section in sections.iter() {
                let addr = section.sh_addr(endian);
                let size = section.sh_size(endian);
                if section.sh_flags(endian).0 & elf::SHF_ALLOC.0 == 0 || size == 0 {
                    continue;
                }
                let Ok(name) = sections.section_name(endian, section) else {
                    continue;
                };
                let name = String::from_utf8_lossy(name).into_owned();
                if let Some(seg) = segments
                    .iter_mut()
                    .find(|s| (s.vaddr..s.vaddr + s.memsz).contains(&addr))
                    && !seg.sections.contains(&name)
                {
                    seg.sections.push(name);
                }
            }
            if let Ok(table) = sections.symbols(endian, data, elf::SHT_SYMTAB) {
                for sym in table.iter() {
                    let kind = sym.st_type();
                    if kind != elf::STT_FUNC && kind != elf::STT_OBJECT {
                        continue;
                    }
                    let Ok(name) = sym.name(endian, table.strings()) else {
                        continue;
                    };
                    let name = String::from_utf8_lossy(name);
                    symbols.push(Symbol {
                        addr: sym.st_value(endian),
                        size: sym.st_size(endian),
                        name: format!("{:#}", rustc_demangle::demangle(&name)),
                    });
                }
            }
        }
        symbols.sort_by_key(|s| s.addr);

        Ok(Image {
            segments,
            entry,
            stack_bytes,
            abi_version,
            symbols: Symbols(symbols),
        })
    }

    /// One past the last byte of the last segment, page aligned.
    pub fn end(&self) -> u64 {
        self.segments.iter().map(|s| s.pages().1).max().unwrap_or(0)
    }

    /// The first segment's first page.
    pub fn start(&self) -> u64 {
        self.segments.iter().map(|s| s.pages().0).min().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_an_image() {
        assert!(matches!(
            Image::parse(b"not an elf at all, clearly"),
            Err(ImageError::Elf(_))
        ));
    }

    #[test]
    fn the_tender_itself_is_refused_as_position_independent_or_foreign() {
        // The test binary is a host executable: PIE (ET_DYN) on Debian's default.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        match Image::parse(&me) {
            Err(ImageError::WrongKind(_) | ImageError::WriteExecute { .. }) => {}
            Err(ImageError::SharedPage { .. } | ImageError::EntryOutside(_)) => {}
            Err(ImageError::NoNote) => {}
            other => panic!("a host executable was accepted or misread: {other:?}"),
        }
    }

    #[test]
    fn symbols_describe_addresses_inside_them() {
        let s = Symbols(vec![
            Symbol {
                addr: 0x1000,
                size: 0x20,
                name: "a".into(),
            },
            Symbol {
                addr: 0x1040,
                size: 0x10,
                name: "b".into(),
            },
        ]);
        assert_eq!(s.describe(0x1000).as_deref(), Some("a + 0x0"));
        assert_eq!(s.describe(0x101f).as_deref(), Some("a + 0x1f"));
        assert_eq!(s.describe(0x1020), None);
        assert_eq!(s.describe(0x1048).as_deref(), Some("b + 0x8"));
        assert_eq!(s.describe(0xfff), None);
    }

    #[test]
    fn rights_print_as_words() {
        assert_eq!(Rights::RX.to_string(), "read+execute");
        assert_eq!(Rights::NONE.to_string(), "no access");
    }
}
