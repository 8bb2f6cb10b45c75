//! Boot-time configuration: the words `--key=value` that set an appliance's boot-time keys
//! at start, read from the kernel command line (PVH start info, Xen `extra=`, libvirt
//! `<cmdline>`, Firecracker `boot_args`) or from a Unix process's argv.
//!
//! The appliance's generated code walks [`args`] and parses each value with the typed
//! parser of its key ([`int`], [`ipv4`], [`ipv4_cidr`], [`ipv4_cidr_or`]); the
//! compiled-in value stays where no word sets the key, and a later word wins over an
//! earlier one (urunc writes its own `--ipv4` before the image's command line). Every
//! failure is a [`BootError`] that names the word, the key, the value and why, for the
//! start error that stops the boot with the failure status.
//!
//! On a kernel command line, words that are not `--` words belong to the platform
//! (`virtio_mmio.device=..`, `morgana.log=..`) and are skipped; in argv every word must
//! be a `--key=value` (or `--help`).

#![no_std]

use core::fmt;
use core::net::Ipv4Addr;

/// Where the words come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A kernel command line: words that are not `--` words are the platform's.
    KernelCommandLine,
    /// A process's arguments (without the program name): every word is ours.
    Argv,
}

/// One word of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg<'a> {
    /// `--help` (or `-h` in argv): print the boot-time keys and stop.
    Help,
    /// `--key=value`.
    Set {
        /// The key, without `--`.
        key: &'a str,
        /// The value, possibly empty.
        value: &'a str,
    },
}

/// Why a value is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Not a decimal whole number.
    NotANumber,
    /// A whole number outside `min..=max`.
    OutOfRange {
        /// The smallest value allowed.
        min: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// Not a dotted-quad IPv4 address.
    NotAnIpv4Address,
    /// An address without `/<prefix length>`.
    NoPrefixLength,
    /// A prefix length that is not a number from 0 to 32.
    BadPrefixLength,
    /// Neither an address with its prefix length nor one of these words.
    NotAnIpv4CidrOr(&'static [&'static str]),
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::NotANumber => f.write_str("not a whole number (decimal digits only)"),
            Why::OutOfRange { min, max } => write!(f, "out of range ({min} to {max})"),
            Why::NotAnIpv4Address => f.write_str("not an IPv4 address such as 10.0.2.15"),
            Why::NoPrefixLength => {
                f.write_str("no prefix length: write the address with it, e.g. 10.0.2.15/24")
            }
            Why::BadPrefixLength => f.write_str("the prefix length is not a number from 0 to 32"),
            Why::NotAnIpv4CidrOr(words) => {
                f.write_str("neither an IPv4 address with its prefix length (e.g. 10.0.2.15/24)")?;
                for (i, w) in words.iter().enumerate() {
                    f.write_str(if i + 1 == words.len() { " nor " } else { ", " })?;
                    write!(f, "`{w}`")?;
                }
                Ok(())
            }
        }
    }
}

/// A word that cannot configure the appliance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError<'a> {
    /// In argv, a word that is not `--key=value`.
    NotAKeyValue {
        /// The word.
        word: &'a str,
    },
    /// `--key` without `=value`.
    NoValue {
        /// The key.
        key: &'a str,
    },
    /// A key the appliance does not have at boot.
    UnknownKey {
        /// The key.
        key: &'a str,
        /// The boot-time keys it has.
        known: &'static [&'static str],
    },
    /// A value its key's type refuses.
    BadValue {
        /// The key.
        key: &'a str,
        /// The value as written.
        value: &'a str,
        /// Why.
        why: Why,
    },
}

impl BootError<'_> {
    /// Whether `--help` lists what would have been right (every error but a bad value).
    pub fn wants_help(&self) -> bool {
        !matches!(self, BootError::BadValue { .. })
    }
}

impl fmt::Display for BootError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::NotAKeyValue { word } => write!(
                f,
                "boot argument `{word}`: not a --key=value word (--help lists the keys)"
            ),
            BootError::NoValue { key } => {
                write!(f, "boot argument `--{key}`: no value (write --{key}=VALUE)")
            }
            BootError::UnknownKey { key, known } => {
                write!(f, "boot argument `--{key}`: no such boot-time key")?;
                if known.is_empty() {
                    f.write_str(" (this appliance has none)")
                } else {
                    f.write_str(" (the keys are")?;
                    for (i, k) in known.iter().enumerate() {
                        f.write_str(if i == 0 { " " } else { ", " })?;
                        write!(f, "--{k}")?;
                    }
                    f.write_str(")")
                }
            }
            BootError::BadValue { key, value, why } => {
                write!(f, "boot argument `--{key}={value}`: {why}")
            }
        }
    }
}

impl core::error::Error for BootError<'_> {}

/// Our words among `words`, in order: each a [`Arg`] or the [`BootError`] of a word
/// that is neither ours nor the platform's.
pub fn args<'a, I>(words: I, source: Source) -> impl Iterator<Item = Result<Arg<'a>, BootError<'a>>>
where
    I: IntoIterator<Item = &'a str>,
{
    words.into_iter().filter_map(move |word| {
        if word == "--help" || (source == Source::Argv && word == "-h") {
            return Some(Ok(Arg::Help));
        }
        let Some(rest) = word.strip_prefix("--") else {
            return match source {
                Source::KernelCommandLine => None,
                Source::Argv => Some(Err(BootError::NotAKeyValue { word })),
            };
        };
        Some(match rest.split_once('=') {
            Some(("", _)) => Err(BootError::NotAKeyValue { word }),
            Some((key, value)) => Ok(Arg::Set { key, value }),
            None if rest.is_empty() => Err(BootError::NotAKeyValue { word }),
            None => Err(BootError::NoValue { key: rest }),
        })
    })
}

/// The words of a kernel command line (separated by ASCII white space).
pub fn kernel_words(cmdline: &str) -> impl Iterator<Item = &str> {
    cmdline.split_ascii_whitespace()
}

fn bad<'a>(key: &'a str, value: &'a str, why: Why) -> BootError<'a> {
    BootError::BadValue { key, value, why }
}

/// A whole number in `min..=max`, in decimal (no sign, no `0x`, no `_`).
pub fn int<'a, T: TryFrom<u64>>(
    key: &'a str,
    value: &'a str,
    min: u64,
    max: u64,
) -> Result<T, BootError<'a>> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(key, value, Why::NotANumber));
    }
    let range = Why::OutOfRange { min, max };
    let mut n: u64 = 0;
    for b in value.bytes() {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(bad(key, value, range))?;
    }
    if n < min || n > max {
        return Err(bad(key, value, range));
    }
    T::try_from(n).map_err(|_| bad(key, value, range))
}

/// A dotted-quad IPv4 address (four decimal numbers 0 to 255, no leading zeros).
pub fn ipv4<'a>(key: &'a str, value: &'a str) -> Result<Ipv4Addr, BootError<'a>> {
    value
        .parse()
        .map_err(|_| bad(key, value, Why::NotAnIpv4Address))
}

/// An IPv4 address with its prefix length, `a.b.c.d/len`.
pub fn ipv4_cidr<'a>(key: &'a str, value: &'a str) -> Result<(Ipv4Addr, u8), BootError<'a>> {
    let Some((address, len)) = value.split_once('/') else {
        ipv4(key, value)?;
        return Err(bad(key, value, Why::NoPrefixLength));
    };
    let address = address
        .parse()
        .map_err(|_| bad(key, value, Why::NotAnIpv4Address))?;
    let len = int::<u8>(key, len, 0, 32).map_err(|_| bad(key, value, Why::BadPrefixLength))?;
    Ok((address, len))
}

/// The value of an `Ipv4Cidr(or: [..])` key read at boot (`Network`'s `ipv4`): an
/// address with its prefix length, or the index of one of the key's words (`dhcp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv4CidrOr {
    /// `10.0.2.15/24`.
    Address {
        /// The address.
        address: Ipv4Addr,
        /// Its prefix length, 0 to 32.
        prefix_len: u8,
    },
    /// The word at this index of the key's words.
    Word(usize),
}

impl From<Result<(Ipv4Addr, u8), usize>> for Ipv4CidrOr {
    fn from(r: Result<(Ipv4Addr, u8), usize>) -> Ipv4CidrOr {
        match r {
            Ok((address, prefix_len)) => Ipv4CidrOr::Address {
                address,
                prefix_len,
            },
            Err(i) => Ipv4CidrOr::Word(i),
        }
    }
}

/// One of `words` (compared without regard to ASCII case: `Ok(Err(index))`), or an IPv4
/// address with its prefix length (`Ok(Ok(..))`): the type of `Network`'s `ipv4`
/// (`dhcp`, or `10.0.2.15/24`).
pub fn ipv4_cidr_or<'a>(
    key: &'a str,
    value: &'a str,
    words: &'static [&'static str],
) -> Result<Result<(Ipv4Addr, u8), usize>, BootError<'a>> {
    if let Some(i) = words.iter().position(|w| w.eq_ignore_ascii_case(value)) {
        return Ok(Err(i));
    }
    if !value.contains('/') && value.parse::<Ipv4Addr>().is_err() {
        return Err(bad(key, value, Why::NotAnIpv4CidrOr(words)));
    }
    ipv4_cidr(key, value).map(Ok)
}
