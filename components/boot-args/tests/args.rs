//! Words as a kernel command line and argv carry them, hostile ones included.

use morgana_boot_args::{
    Arg, BootError, Source, Why, args, int, ipv4, ipv4_cidr, ipv4_cidr_or, kernel_words,
};
use std::net::Ipv4Addr;

fn kernel(line: &str) -> Vec<Result<Arg<'_>, BootError<'_>>> {
    args(kernel_words(line), Source::KernelCommandLine).collect()
}

fn argv<'a>(words: &[&'a str]) -> Vec<Result<Arg<'a>, BootError<'a>>> {
    args(words.iter().copied(), Source::Argv).collect()
}

#[test]
fn kernel_command_line_keeps_our_words_and_skips_the_platforms() {
    let got = kernel(
        "  virtio_mmio.device=4K@0xd0000000:5 --ipv4=10.0.2.16/24\t--port=80 morgana.log=debug --port=8081 ",
    );
    assert_eq!(
        got,
        [
            Ok(Arg::Set {
                key: "ipv4",
                value: "10.0.2.16/24"
            }),
            Ok(Arg::Set {
                key: "port",
                value: "80"
            }),
            Ok(Arg::Set {
                key: "port",
                value: "8081"
            }),
        ]
    );
    assert_eq!(kernel(""), []);
    assert_eq!(kernel("--help"), [Ok(Arg::Help)]);
    // `-h` is a platform word on a kernel line, ours in argv.
    assert_eq!(kernel("-h"), []);
    assert_eq!(argv(&["-h"]), [Ok(Arg::Help)]);
}

#[test]
fn malformed_words_are_errors_that_say_what_to_write() {
    assert_eq!(argv(&["--port"]), [Err(BootError::NoValue { key: "port" })]);
    assert_eq!(argv(&["--"]), [Err(BootError::NotAKeyValue { word: "--" })]);
    assert_eq!(
        argv(&["--=1"]),
        [Err(BootError::NotAKeyValue { word: "--=1" })]
    );
    assert_eq!(
        argv(&["serve"]),
        [Err(BootError::NotAKeyValue { word: "serve" })]
    );
    // An empty value is a value: its key's parser refuses it.
    assert_eq!(
        argv(&["--port="]),
        [Ok(Arg::Set {
            key: "port",
            value: ""
        })]
    );
    // Only the first `=` separates.
    assert_eq!(
        argv(&["--greeting=a=b"]),
        [Ok(Arg::Set {
            key: "greeting",
            value: "a=b"
        })]
    );
    assert_eq!(
        BootError::NoValue { key: "port" }.to_string(),
        "boot argument `--port`: no value (write --port=VALUE)"
    );
    assert_eq!(
        BootError::NotAKeyValue { word: "serve" }.to_string(),
        "boot argument `serve`: not a --key=value word (--help lists the keys)"
    );
    let unknown = BootError::UnknownKey {
        key: "prot",
        known: &["ipv4", "ipv4-gateway", "port"],
    };
    assert_eq!(
        unknown.to_string(),
        "boot argument `--prot`: no such boot-time key (the keys are --ipv4, --ipv4-gateway, --port)"
    );
    assert!(unknown.wants_help());
    assert_eq!(
        BootError::UnknownKey {
            key: "x",
            known: &[]
        }
        .to_string(),
        "boot argument `--x`: no such boot-time key (this appliance has none)"
    );
}

#[test]
fn whole_numbers_are_decimal_and_in_range() {
    assert_eq!(int::<u16>("port", "8080", 0, 65535), Ok(8080));
    assert_eq!(int::<u16>("port", "0", 0, 65535), Ok(0));
    assert_eq!(int::<u16>("port", "65535", 0, 65535), Ok(65535));
    let range = Why::OutOfRange { min: 0, max: 65535 };
    for (value, why) in [
        ("65536", range),
        ("99999999999999999999999", range),
        ("", Why::NotANumber),
        ("-1", Why::NotANumber),
        ("+1", Why::NotANumber),
        ("0x50", Why::NotANumber),
        ("8_080", Why::NotANumber),
        (" 80", Why::NotANumber),
        ("٨٠", Why::NotANumber),
    ] {
        assert_eq!(
            int::<u16>("port", value, 0, 65535),
            Err(BootError::BadValue {
                key: "port",
                value,
                why
            }),
            "{value:?}"
        );
    }
    let e = int::<u16>("port", "65536", 0, 65535).unwrap_err();
    assert_eq!(
        e.to_string(),
        "boot argument `--port=65536`: out of range (0 to 65535)"
    );
    assert!(!e.wants_help());
    assert_eq!(
        int::<u64>("idle", "0", 1, 86_400_000)
            .unwrap_err()
            .to_string(),
        "boot argument `--idle=0`: out of range (1 to 86400000)"
    );
    // A range wider than the type: refused, not truncated.
    assert!(int::<u8>("n", "256", 0, 1000).is_err());
}

#[test]
fn addresses_and_prefixes() {
    assert_eq!(ipv4("g", "10.0.2.2"), Ok(Ipv4Addr::new(10, 0, 2, 2)));
    for bad in [
        "10.0.2",
        "10.0.2.256",
        "10.0.2.2.1",
        "010.0.2.2",
        "a.b.c.d",
        "",
        "10.0.2.2 ",
    ] {
        assert_eq!(
            ipv4("g", bad),
            Err(BootError::BadValue {
                key: "g",
                value: bad,
                why: Why::NotAnIpv4Address
            }),
            "{bad:?}"
        );
    }
    assert_eq!(
        ipv4_cidr("ipv4", "10.0.2.16/24"),
        Ok((Ipv4Addr::new(10, 0, 2, 16), 24))
    );
    assert_eq!(
        ipv4_cidr("ipv4", "0.0.0.0/0"),
        Ok((Ipv4Addr::UNSPECIFIED, 0))
    );
    for (value, why) in [
        ("10.0.2.16", Why::NoPrefixLength),
        ("10.0.2.16/33", Why::BadPrefixLength),
        ("10.0.2.16/", Why::BadPrefixLength),
        ("10.0.2.16/-1", Why::BadPrefixLength),
        ("10.0.2.16/24/8", Why::BadPrefixLength),
        ("10.0.2/24", Why::NotAnIpv4Address),
        ("/24", Why::NotAnIpv4Address),
    ] {
        assert_eq!(
            ipv4_cidr("ipv4", value),
            Err(BootError::BadValue {
                key: "ipv4",
                value,
                why
            }),
            "{value:?}"
        );
    }
    assert_eq!(
        ipv4_cidr("ipv4", "10.0.2.16").unwrap_err().to_string(),
        "boot argument `--ipv4=10.0.2.16`: no prefix length: write the address with it, e.g. 10.0.2.15/24"
    );
}

#[test]
fn an_address_or_a_word() {
    const WORDS: &[&str] = &["dhcp"];
    assert_eq!(ipv4_cidr_or("ipv4", "dhcp", WORDS), Ok(Err(0)));
    assert_eq!(ipv4_cidr_or("ipv4", "DHCP", WORDS), Ok(Err(0)));
    assert_eq!(
        ipv4_cidr_or("ipv4", "10.0.2.16/24", WORDS),
        Ok(Ok((Ipv4Addr::new(10, 0, 2, 16), 24)))
    );
    // An address without its prefix says what is missing, not "neither .. nor".
    assert_eq!(
        ipv4_cidr_or("ipv4", "10.0.2.16", WORDS).unwrap_err(),
        BootError::BadValue {
            key: "ipv4",
            value: "10.0.2.16",
            why: Why::NoPrefixLength
        }
    );
    let e = ipv4_cidr_or("ipv4", "dhpc", WORDS).unwrap_err();
    assert_eq!(
        e.to_string(),
        "boot argument `--ipv4=dhpc`: neither an IPv4 address with its prefix length (e.g. 10.0.2.15/24) nor `dhcp`"
    );
    let two: &'static [&'static str] = &["dhcp", "none"];
    assert_eq!(
        ipv4_cidr_or("ipv4", "x", two).unwrap_err().to_string(),
        "boot argument `--ipv4=x`: neither an IPv4 address with its prefix length (e.g. 10.0.2.15/24), `dhcp` nor `none`"
    );
}

/// What generated code does with these pieces: defaults, the last word wins, an
/// unknown key stops, and nothing allocates.
#[test]
fn a_generated_parser_in_miniature() {
    const KEYS: &[&str] = &["ipv4", "port"];
    #[derive(Debug, PartialEq)]
    struct Boot {
        ipv4: Option<(Ipv4Addr, u8)>,
        port: u16,
    }
    fn parse(line: &str) -> Result<Option<Boot>, BootError<'_>> {
        let mut b = Boot {
            ipv4: None,
            port: 8080,
        };
        for arg in args(kernel_words(line), Source::KernelCommandLine) {
            match arg? {
                Arg::Help => return Ok(None),
                Arg::Set { key: "ipv4", value } => {
                    b.ipv4 = ipv4_cidr_or("ipv4", value, &["dhcp"])?.ok();
                }
                Arg::Set { key: "port", value } => b.port = int("port", value, 0, 65535)?,
                Arg::Set { key, .. } => return Err(BootError::UnknownKey { key, known: KEYS }),
            }
        }
        Ok(Some(b))
    }
    assert_eq!(
        parse(""),
        Ok(Some(Boot {
            ipv4: None,
            port: 8080
        }))
    );
    assert_eq!(
        parse("--ipv4=10.0.2.16/24 --port=80 --ipv4=dhcp --port=81"),
        Ok(Some(Boot {
            ipv4: None,
            port: 81
        }))
    );
    assert_eq!(parse("--port=1 --help --nope=1"), Ok(None));
    assert_eq!(
        parse("--nope=1"),
        Err(BootError::UnknownKey {
            key: "nope",
            known: KEYS
        })
    );
    // A long hostile line: each word is looked at once, nothing is kept.
    let long = "--port=1 ".repeat(100_000);
    assert_eq!(
        parse(&long),
        Ok(Some(Boot {
            ipv4: None,
            port: 1
        }))
    );
}
