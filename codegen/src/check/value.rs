//! What a value written in appliance.ron means for a key's type — by `ron`'s rules for
//! the Rust type the key stands for (a `String`, a `u16`, an enum, an `Option`) — and
//! the checks of the text formats inside strings (addresses, interface names, MAC
//! addresses).

use crate::catalog::KeyType;
use crate::diag::{Diagnostic, Span};
use crate::model::Scalar;
use crate::names::{self, did_you_mean};
use crate::syntax::number::{self, IntType, NumberError};
use crate::syntax::{Extensions, Kind, Tuple, Value};

/// A value for a key of type `ty` whose value may be absent (`optional`): `None`, or
/// `Some(x)`, or — with `#![enable(implicit_some)]` — `x` alone. Returns the value
/// inside, or `None` for `None`.
pub(crate) fn optional<'v>(
    v: &'v Value,
    ext: Extensions,
    key: &str,
) -> Result<Option<&'v Value>, Diagnostic> {
    if v.is_none() {
        return Ok(None);
    }
    if let Some(inner) = v.as_some() {
        return Ok(Some(inner));
    }
    if ext.implicit_some {
        return Ok(Some(v));
    }
    let written = match &v.kind {
        Kind::Str(s) => format!("{s:?}"),
        _ => "..".into(),
    };
    Err(
        Diagnostic::error(format!(
            "`{key}` is optional: its value is written `Some(..)` or `None`, found {}",
            v.describe()
        ))
        .primary(v.span, "expected `Some(..)` or `None`")
        .help(format!(
            "write `Some({written})`, or put `#![enable(implicit_some)]` at the top of the file to write optional values alone"
        )),
    )
}

/// Why a key's value has the wrong type.
pub(crate) fn wrong_type(ty: &KeyType, v: &Value, key: &str) -> Diagnostic {
    let mut d = Diagnostic::error(format!(
        "wrong type for `{key}`: expected {}, found {}",
        ty.describe(),
        v.describe()
    ))
    .primary(v.span, format!("expected {}", ty.describe()));
    match (ty, &v.kind) {
        (KeyType::Choice(c), Kind::Str(s)) if c.contains(s) => {
            d = d.help(format!("write `{s}` without quotes"));
        }
        (KeyType::Choice(c), Kind::Struct(st))
            if st.name.as_ref().is_some_and(|n| c.contains(&n.name)) =>
        {
            d = d.help("a variant is written without parentheses");
        }
        (KeyType::Int { .. }, Kind::Str(s)) if s.parse::<i128>().is_ok() => {
            d = d.help(format!("write `{s}` without quotes"));
        }
        (KeyType::Ipv4Cidr { or } | KeyType::Ipv6Cidr { or }, Kind::Str(s)) if !or.is_empty() => {
            d = match or.iter().find(|v| v.eq_ignore_ascii_case(s)) {
                Some(v) => d.help(format!("write `{v}` without quotes")),
                None => d.help(format!(
                    "an address is written `Static({s:?})`: next to {} it is a variant of its own",
                    or.iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
        }
        (
            KeyType::Str
            | KeyType::Path
            | KeyType::Dir
            | KeyType::File
            | KeyType::Ipv4
            | KeyType::Ipv6
            | KeyType::Ip
            | KeyType::Ipv4Cidr { .. }
            | KeyType::Ipv6Cidr { .. }
            | KeyType::IfName
            | KeyType::Mac,
            Kind::Ident(i),
        ) => {
            d = d.help(format!("strings are quoted: `\"{}\"`", i.name));
        }
        (
            _,
            Kind::Tuple(Tuple {
                name: Some(n),
                items,
            }),
        ) if !n.raw && n.name == "Some" && items.len() == 1 => {
            d = d.help("only optional keys take `Some(..)`; write the value alone");
        }
        (_, Kind::Bytes(_)) => {
            d = d.help("byte strings (`b\"..\"`) are not used in appliance.ron; write a string");
        }
        _ => {}
    }
    d
}

/// Checks a catalog default against its key type.
pub(crate) fn default_ok(ty: &KeyType, v: &Value) -> Result<(), String> {
    scalar(ty, v, "default").map(drop).map_err(|d| d.message)
}

/// An integer token read as a key's type, with `ron`'s rules, then the catalog's range.
fn integer(
    text: &str,
    rust: &str,
    min: i64,
    max: i64,
    v: &Value,
    key: &str,
) -> Result<Scalar, Diagnostic> {
    let ty = IntType::of_rust(rust).unwrap_or(IntType::I64);
    let n =
        number::integer(text, ty).map_err(|e| number_error(&e, text, rust, min, max, v, key))?;
    if n < i128::from(min) || n > i128::from(max) {
        return Err(Diagnostic::error(format!(
            "value out of range for `{key}`: {n} is not in {min}..={max}"
        ))
        .primary(v.span, format!("must be from {min} to {max} ({rust})")));
    }
    Ok(Scalar::Int(n))
}

fn number_error(
    e: &NumberError,
    text: &str,
    rust: &str,
    min: i64,
    max: i64,
    v: &Value,
    key: &str,
) -> Diagnostic {
    match e {
        NumberError::OutOfRange(_) => Diagnostic::error(format!(
            "value out of range for `{key}`: {text} is not in {min}..={max}"
        ))
        .primary(v.span, format!("must be from {min} to {max} ({rust})")),
        NumberError::WrongSuffix { written, .. } => Diagnostic::error(format!(
            "wrong type for `{key}`: the suffix says `{written}`, the key is `{rust}`"
        ))
        .primary(v.span, format!("expected an integer ({rust})"))
        .help({
            let suffix: &str = match IntType::of_rust(rust) {
                Some(t) => t.suffix(),
                None => rust,
            };
            if suffix == rust {
                format!("remove the suffix, or write `{suffix}`")
            } else {
                format!(
                    "remove the suffix, or write `{suffix}` (RON reads a `{rust}` as a `{suffix}`)"
                )
            }
        }),
        _ if number::looks_like_float(text) => Diagnostic::error(format!(
            "wrong type for `{key}`: expected an integer ({rust}), found a float"
        ))
        .primary(v.span, format!("expected an integer ({rust})")),
        _ => invalid_number(text, v.span),
    }
}

/// A number token that is no number.
pub(crate) fn invalid_number(text: &str, span: Span) -> Diagnostic {
    Diagnostic::error(format!("invalid number `{text}`"))
        .primary(span, "not a number")
        .help("integers are written 8080, 0x1F90, 0o17, 0b1010, 1_000 or 8080u16; floats 1.5, 2e3 or 0.5f32")
}

/// Reads a value of key type `ty` (not `optional`: see [`optional`]); `key` names it in
/// messages (`port`, `http.port`).
pub(crate) fn scalar(ty: &KeyType, v: &Value, key: &str) -> Result<Scalar, Diagnostic> {
    match (ty, &v.kind) {
        (KeyType::Str | KeyType::Dir | KeyType::File, Kind::Str(s)) => Ok(Scalar::Str(s.clone())),
        (KeyType::Files | KeyType::Strs, Kind::List(items)) => {
            let mut out = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(s) => out.push(s.to_string()),
                    None if *ty == KeyType::Strs => {
                        return Err(wrong_type(&KeyType::Str, item, key));
                    }
                    None => return Err(wrong_type(&KeyType::File, item, key)),
                }
            }
            Ok(Scalar::List(out))
        }
        (KeyType::Path, Kind::Str(s)) => {
            if names::is_rust_path(s) {
                Ok(Scalar::Str(s.clone()))
            } else {
                Err(Diagnostic::error(format!("`{key}` must name a Rust type, found {s:?}"))
                    .primary(v.span, "not a Rust path")
                    .help("write the type's name as in Rust, e.g. \"Website\" or \"app::Website\""))
            }
        }
        (KeyType::Bool, Kind::Bool(b)) => Ok(Scalar::Bool(*b)),
        (KeyType::Int { rust, min, max, .. }, Kind::Number(text)) => {
            integer(text, rust, *min, *max, v, key)
        }
        (KeyType::Int { rust, min, max, .. }, Kind::Byte(b)) if rust == "u8" => {
            integer(&b.to_string(), rust, *min, *max, v, key)
        }
        (KeyType::Ipv4, Kind::Str(s)) => match s.parse::<std::net::Ipv4Addr>() {
            Ok(a) => Ok(Scalar::Ipv4(a.octets())),
            Err(_) => Err(
                Diagnostic::error(format!("`{key}` is not an IPv4 address: {s:?}"))
                    .primary(v.span, "expected four numbers 0-255 separated by dots")
                    .help("e.g. \"127.0.0.1\", or \"0.0.0.0\" for every interface"),
            ),
        },
        (KeyType::Ipv6, Kind::Str(s)) => match s.parse::<std::net::Ipv6Addr>() {
            Ok(a) => Ok(Scalar::Ipv6(a.octets())),
            Err(_) => Err(
                Diagnostic::error(format!("`{key}` is not an IPv6 address: {s:?}"))
                    .primary(v.span, "expected an IPv6 address")
                    .help("e.g. \"fd00::2\", or \"::\" for every interface"),
            ),
        },
        (KeyType::Ip, Kind::Str(s)) => match s.parse::<std::net::IpAddr>() {
            Ok(a) => Ok(Scalar::Ip(a)),
            Err(_) => Err(Diagnostic::error(format!(
                "`{key}` is not an IPv4 or IPv6 address: {s:?}"
            ))
            .primary(v.span, "expected an IPv4 or an IPv6 address")
            .help(
                "e.g. \"127.0.0.1\" or \"::1\"; \"0.0.0.0\" is every IPv4 interface, \"::\" every interface (IPv6 and IPv4)",
            )),
        },
        (KeyType::Ipv4Cidr { or } | KeyType::Ipv6Cidr { or }, _) => cidr(ty, or, v, key),
        (KeyType::IfName, Kind::Str(s)) => if_name(s, v.span, key).map(|()| Scalar::Str(s.clone())),
        (KeyType::Mac, Kind::Str(s)) => mac(s, v.span, key).map(Scalar::Str),
        (KeyType::Choice(choices), Kind::Ident(i)) => {
            if choices.contains(&i.name) {
                Ok(Scalar::Choice(i.name.clone()))
            } else {
                Err(
                    Diagnostic::error(format!("unknown variant `{}` for `{key}`", i.name))
                        .primary(v.span, format!("expected one of {}", choices.join(", ")))
                        .help(format!(
                            "{}`{key}` is one of: {}",
                            did_you_mean(&i.name, choices.iter().map(String::as_str)),
                            choices.join(", ")
                        )),
                )
            }
        }
        (_, Kind::Number(text)) if number::any(text).is_err() => Err(invalid_number(text, v.span)),
        _ => Err(wrong_type(ty, v, key)),
    }
}

/// An address with its prefix length: with identifiers to choose from (`Dhcp`), an
/// enum in RON (`Dhcp` or `Static("10.0.2.15/24")`); without, a string.
fn cidr(ty: &KeyType, or: &[String], v: &Value, key: &str) -> Result<Scalar, Diagnostic> {
    let v6 = matches!(ty, KeyType::Ipv6Cidr { .. });
    let text = if or.is_empty() {
        match &v.kind {
            Kind::Str(s) => s,
            _ => return Err(wrong_type(ty, v, key)),
        }
    } else {
        match &v.kind {
            Kind::Ident(i) if or.contains(&i.name) => return Ok(Scalar::Choice(i.name.clone())),
            Kind::Ident(i) if i.name != "Static" => {
                let mut all: Vec<&str> = or.iter().map(String::as_str).collect();
                all.push("Static");
                return Err(
                    Diagnostic::error(format!("unknown variant `{}` for `{key}`", i.name))
                        .primary(v.span, format!("expected {}", ty.describe()))
                        .help(format!(
                            "{}write {} or an address with its prefix length, e.g. `Static(\"{}\")`",
                            did_you_mean(&i.name, all.iter().copied()),
                            or.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
                            if v6 { "fd00::2/64" } else { "10.0.2.15/24" }
                        )),
                );
            }
            Kind::Tuple(Tuple {
                name: Some(n),
                items,
            }) if n.name != "Static" => {
                return Err(
                    Diagnostic::error(format!("unknown variant `{}` for `{key}`", n.name))
                        .primary(n.span, format!("expected {}", ty.describe()))
                        .help(format!(
                            "{}an address is written `Static(\"..\")`",
                            did_you_mean(&n.name, ["Static"])
                        )),
                );
            }
            Kind::Tuple(Tuple {
                name: Some(n),
                items,
            }) if n.name == "Static" && items.len() == 1 => match &items[0].kind {
                Kind::Str(s) => {
                    return address_with_prefix(s, items[0].span, key, v6);
                }
                _ => return Err(wrong_type(&KeyType::Str, &items[0], key)),
            },
            _ => return Err(wrong_type(ty, v, key)),
        }
    };
    address_with_prefix(text, v.span, key, v6)
}

fn address_with_prefix(s: &str, span: Span, key: &str, v6: bool) -> Result<Scalar, Diagnostic> {
    if v6 {
        ipv6_cidr(s, span, key)
    } else {
        ipv4_cidr(s, span, key)
    }
}

/// A subnet: its mask and the network and broadcast addresses of `addr` in it.
pub(crate) fn subnet(addr: u32, prefix_len: u8) -> (u32, u32, u32) {
    let mask = if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len))
    };
    (mask, addr & mask, (addr & mask) | !mask)
}

pub(crate) fn dotted(a: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(a)
}

/// `"a.b.c.d/len"`: a host address of a subnet (what the direct stack accepts).
fn ipv4_cidr(s: &str, span: Span, key: &str) -> Result<Scalar, Diagnostic> {
    let example =
        "e.g. \"10.0.2.15/24\" for address 10.0.2.15 in subnet 10.0.2.0/24 (netmask 255.255.255.0)";
    let Some((addr, len)) = s.split_once('/') else {
        let d = Diagnostic::error(format!("`{key}` needs a prefix length: {s:?}"))
            .primary(span, "expected an IPv4 address, `/`, and a prefix length");
        return Err(match s.parse::<std::net::Ipv4Addr>() {
            Ok(_) => d.help(format!(
                "write e.g. \"{s}/24\" for a /24 subnet (netmask 255.255.255.0)"
            )),
            Err(_) => d.help(format!(
                "write an address with its prefix length, {example}"
            )),
        });
    };
    let Ok(address) = addr.parse::<std::net::Ipv4Addr>() else {
        return Err(Diagnostic::error(format!(
            "`{key}` is not an IPv4 address with a prefix length: {s:?}"
        ))
        .primary(
            span,
            "expected four numbers 0-255 separated by dots, then `/` and a prefix length",
        )
        .help(example.to_string()));
    };
    let prefix_len = match len.parse::<u8>() {
        Ok(l) if (1..=32).contains(&l) && !len.starts_with('+') => l,
        _ => {
            return Err(
                Diagnostic::error(format!("`{key}` has an invalid prefix length: {s:?}"))
                    .primary(span, "the prefix length is a number from 1 to 32")
                    .help(example.to_string()),
            );
        }
    };
    let a = u32::from(address);
    let ip = dotted(a);
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() {
        return Err(
            Diagnostic::error(format!("`{key}`: {ip} cannot be the address of a network interface"))
                .primary(span, "not a unicast host address")
                .note("0.0.0.0, 127.0.0.0/8 (loopback), 224.0.0.0/4 (multicast) and 255.255.255.255 are not host addresses")
                .help(example.to_string()),
        );
    }
    let (_, net, bcast) = subnet(a, prefix_len);
    if prefix_len <= 30 && (a == net || a == bcast) {
        let which = if a == net { "network" } else { "broadcast" };
        return Err(Diagnostic::error(format!(
            "`{key}`: {ip} is the {which} address of subnet {}/{prefix_len}",
            dotted(net)
        ))
        .primary(span, format!("the {which} address, not a host address"))
        .help(format!(
            "the host addresses of {}/{prefix_len} are {} to {}",
            dotted(net),
            dotted(net + 1),
            dotted(bcast - 1)
        )));
    }
    Ok(Scalar::Ipv4Cidr(address.octets(), prefix_len))
}

/// `"fd00::2/64"`: a unicast interface address with its prefix length.
fn ipv6_cidr(s: &str, span: Span, key: &str) -> Result<Scalar, Diagnostic> {
    let example = "e.g. \"fd00::2/64\" for address fd00::2 in subnet fd00::/64";
    let parsed = s.split_once('/').and_then(|(a, l)| {
        let a = a.parse::<std::net::Ipv6Addr>().ok()?;
        let l = l.parse::<u8>().ok().filter(|l| (1..=128).contains(l))?;
        Some((a, l))
    });
    let Some((address, len)) = parsed else {
        return Err(Diagnostic::error(format!(
            "`{key}` is not an IPv6 address with a prefix length: {s:?}"
        ))
        .primary(
            span,
            "expected an IPv6 address, `/`, and a prefix length from 1 to 128",
        )
        .help(example.to_string()));
    };
    if address.is_unspecified() || address.is_loopback() || address.is_multicast() {
        return Err(Diagnostic::error(format!(
            "`{key}`: {address} cannot be the address of a network interface"
        ))
        .primary(span, "not a unicast host address")
        .note(
            ":: (unspecified), ::1 (loopback) and ff00::/8 (multicast) are not interface addresses",
        )
        .help(example.to_string()));
    }
    if address.is_unicast_link_local() {
        return Err(Diagnostic::error(format!(
            "`{key}`: {address} is a link-local address (fe80::/10)"
        ))
        .primary(span, "link-local, not a static address")
        .note("the stack makes its link-local address itself, from the MAC address")
        .help(format!(
            "for the link-local address alone write `{}: LinkLocal`; a static address is global or unique-local, {example}",
            key.rsplit('.').next().unwrap_or(key)
        )));
    }
    if address.to_ipv4_mapped().is_some() {
        return Err(Diagnostic::error(format!(
            "`{key}`: {address} is an IPv4-mapped address (::ffff:a.b.c.d)"
        ))
        .primary(span, "IPv4-mapped, not an interface address")
        .help(format!("give the IPv4 address in `ipv4`; {example}")));
    }
    Ok(Scalar::Ipv6Cidr(address.octets(), len))
}

/// Longest network interface name (Linux: `IFNAMSIZ` - 1).
pub const MAX_IF_NAME: usize = 15;

/// A network interface name as Linux accepts it.
fn if_name(s: &str, span: Span, key: &str) -> Result<(), Diagnostic> {
    let why = if s.is_empty() {
        "is empty".to_string()
    } else if s.len() > MAX_IF_NAME {
        format!("is too long ({} bytes, at most {MAX_IF_NAME})", s.len())
    } else if s == "." || s == ".." {
        "cannot be `.` or `..`".to_string()
    } else if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        format!("contains {c:?}")
    } else {
        return Ok(());
    };
    Err(Diagnostic::error(format!("`{key}`: the interface name {s:?} {why}"))
        .primary(span, "not a network interface name")
        .note(format!(
            "interface names have 1 to {MAX_IF_NAME} bytes (Linux's limit); Morgana takes ASCII letters, digits, `_`, `-` and `.`, so that deployment files can hold them as they are"
        ))
        .help(if key.ends_with("bridge") {
            "e.g. \"xenbr0\""
        } else {
            "e.g. \"tap0\""
        }))
}

/// Checks a MAC address (`"00:16:3e:00:00:02"`) and returns it in lower case.
fn mac(s: &str, span: Span, key: &str) -> Result<String, Diagnostic> {
    let pairs: Vec<&str> = s.split(':').collect();
    let hex_pair = |p: &&str| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit());
    let why = if pairs.len() == 1 && s.split('-').count() == 6 {
        Some("separates its pairs with `-`, not `:`".to_string())
    } else if pairs.len() != 6 {
        Some(format!("has {} colon-separated parts, not 6", pairs.len()))
    } else {
        pairs
            .iter()
            .find(|p| !hex_pair(p))
            .map(|p| format!("has {p:?}, which is not two hex digits"))
    };
    if let Some(why) = why {
        return Err(
            Diagnostic::error(format!("`{key}` is not a MAC address: {s:?} {why}"))
                .primary(span, "expected six hex pairs separated by colons")
                .help("e.g. \"00:16:3e:00:00:02\" (00:16:3e is Xen's prefix)"),
        );
    }
    let first = u8::from_str_radix(pairs[0], 16).unwrap_or(0);
    let problem = if first & 1 == 1 {
        Some("is a multicast address (the lowest bit of the first byte is set)")
    } else if pairs.iter().all(|p| *p == "00") {
        Some("is all zeros")
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(
            Diagnostic::error(format!("`{key}`: the MAC address {s:?} {problem}"))
                .primary(span, "not a unicast interface address")
                .help("e.g. `Some(\"00:16:3e:00:00:02\")` (00:16:3e is Xen's prefix), or leave the key out for a random one"),
        );
    }
    Ok(s.to_ascii_lowercase())
}

/// An example value of a key type, as written in appliance.ron.
pub(crate) fn example(ty: &KeyType) -> String {
    match ty {
        KeyType::Str => "\"...\"".into(),
        KeyType::Path => "\"MyApp\"".into(),
        KeyType::Bool => "true".into(),
        KeyType::Int { min, .. } => (*min).max(1).to_string(),
        KeyType::Ipv4 => "\"127.0.0.1\"".into(),
        KeyType::Ipv6 => "\"fd00::1\"".into(),
        KeyType::Ip => "\"::\"".into(),
        KeyType::Ipv4Cidr { or } if or.is_empty() => "\"10.0.2.15/24\"".into(),
        KeyType::Ipv4Cidr { .. } => "Static(\"10.0.2.15/24\")".into(),
        KeyType::Ipv6Cidr { or } if or.is_empty() => "\"fd00::2/64\"".into(),
        KeyType::Ipv6Cidr { .. } => "Static(\"fd00::2/64\")".into(),
        KeyType::IfName => "\"tap0\"".into(),
        KeyType::Mac => "\"00:16:3e:00:00:02\"".into(),
        KeyType::Dir => "\"htdocs\"".into(),
        KeyType::File => "\"data.txt\"".into(),
        KeyType::Files => "[\"a.txt\", \"b.txt\"]".into(),
        KeyType::Strs => "[\"http/1.1\"]".into(),
        KeyType::Choice(c) => c.first().cloned().unwrap_or_default(),
        KeyType::Target => "Unix".into(),
        KeyType::Config | KeyType::Devices => "{ .. }".into(),
        KeyType::DeviceList | KeyType::BootKeys => "[..]".into(),
    }
}
