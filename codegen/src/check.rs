//! Validation: the syntax tree against the catalog, into the typed model.
//!
//! Every independent problem is reported; a problem in one key does not hide problems
//! in its neighbours.

use std::path::Path;

use crate::catalog::{Catalog, Component, KeySpec, KeyType};
use crate::diag::{Diagnostic, Span};
use crate::model::{AppConst, Appliance, Device, Origin, Reference, Scalar};
use crate::names::{self, did_you_mean};
use crate::value::{Kind, Struct, Value};

/// Names that cannot be device names besides the platform devices: they are used by
/// the generated code.
const RESERVED: &[&str] = &["platform", "config", "start_error"];

/// Longest device name. Generated lines grow with it; up to this length the emitter's
/// layout provably agrees with rustfmt (tests/format.rs), beyond it rustfmt's chain
/// heuristics take over.
pub const MAX_DEVICE_NAME: usize = 24;

/// What a caller passes in besides the tree.
pub struct Context<'a> {
    /// The catalog.
    pub catalog: &'a Catalog,
    /// Directory that relative paths in appliance.ron are resolved against.
    pub manifest_dir: &'a Path,
    /// The same directory as shown in messages.
    pub display_dir: &'a str,
    /// `MORGANA_TARGET`, if set.
    pub target_override: Option<&'a str>,
}

/// Checks `root` and builds the model; problems go to `errs`.
pub fn check(root: &Value, cx: &Context<'_>, errs: &mut Vec<Diagnostic>) -> Option<Appliance> {
    let st = match &root.kind {
        Kind::Struct(st) if st.name.as_ref().is_none_or(|n| n.name == "Appliance") => st,
        _ => {
            let found = match &root.kind {
                Kind::Struct(Struct { name: Some(n), .. }) => format!("`{}(..)`", n.name),
                _ => root.describe(),
            };
            errs.push(
                Diagnostic::error(format!("expected `Appliance(..)`, found {found}"))
                    .primary(head_span(root), "not an appliance description")
                    .help("appliance.ron holds one `Appliance(name: .., main: .., devices: {..}, start: [..])`"),
            );
            return None;
        }
    };
    let cat = cx.catalog;
    let found = fields(st, &cat.appliance, &[], "Appliance", errs);
    missing(
        st,
        &cat.appliance,
        &found,
        |_| true,
        None,
        "Appliance",
        errs,
    );
    let get = |k: &str| found.iter().find(|f| f.0 == k).map(|f| f.2);

    let mut ok = true;
    let mut scalar_or = |key: &str, errs: &mut Vec<Diagnostic>| -> Option<(Scalar, Origin)> {
        let spec = cat.appliance.iter().find(|k| k.name == key)?;
        match get(key) {
            Some(v) => match scalar(&spec.ty, v, key) {
                Ok(s) => Some((s, Origin::Source(v.span))),
                Err(d) => {
                    errs.push(d);
                    ok = false;
                    None
                }
            },
            None => spec
                .default
                .as_ref()
                .and_then(|d| scalar(&spec.ty, d, key).ok())
                .map(|s| (s, Origin::Default)),
        }
    };
    let name = scalar_or("name", errs);
    let main = scalar_or("main", errs);
    let heap = scalar_or("heap_mib", errs);
    let memory = scalar_or("memory_mib", errs);
    let log = scalar_or("log_level", errs);

    let target = target(get("target"), cx, errs);
    let target_name = target.as_ref().map(|t| t.0.as_str());
    let config = get("config")
        .map(|v| app_config(v, errs))
        .unwrap_or_default();
    let devices = get("devices")
        .map(|v| devices(v, cx, target_name, errs))
        .unwrap_or_default();
    let start = get("start")
        .map(|v| start(v, &devices, cat, errs))
        .unwrap_or_default();

    let (name, main, heap, log, target) = (name?, main?, heap?, log?, target?);
    let main_span = main.1.span().unwrap_or(st.head());
    let appliance = Appliance {
        name: text(name.0),
        target: target.0,
        target_origin: target.1,
        main: text(main.0),
        main_span,
        heap_mib: match heap.0 {
            Scalar::Int(i) => i as u64,
            _ => 16,
        },
        memory_mib: match memory {
            Some((Scalar::Int(i), _)) => i as u64,
            _ => 32,
        },
        log_level: text(log.0),
        config,
        devices,
        start,
    };
    collisions(&appliance, cat, errs);
    ok.then_some(appliance)
}

fn text(s: Scalar) -> String {
    match s {
        Scalar::Str(s) | Scalar::Choice(s) => s,
        other => other.ron(),
    }
}

fn head_span(v: &Value) -> Span {
    match &v.kind {
        Kind::Struct(st) => st.head(),
        Kind::Tuple(t) => t.name.as_ref().map_or(v.span, |n| n.span),
        _ => v.span,
    }
}

/// A field found in a struct: its key, where the key is written, its value.
type Found<'v> = (&'v str, Span, &'v Value);

/// Matches a struct's fields against `keys` (and requirement keys `reqs`): reports
/// duplicate and unknown keys; returns the known fields found.
fn fields<'v>(
    st: &'v Struct,
    keys: &[KeySpec],
    reqs: &[&str],
    what: &str,
    errs: &mut Vec<Diagnostic>,
) -> Vec<Found<'v>> {
    let mut found: Vec<Found<'v>> = Vec::new();
    let known: Vec<&str> = keys
        .iter()
        .map(|k| k.name.as_str())
        .chain(reqs.iter().copied())
        .collect();
    for (i, (k, v)) in st.fields.iter().enumerate() {
        if let Some((first, _)) = st.fields[..i].iter().find(|(f, _)| f.name == k.name) {
            errs.push(
                Diagnostic::error(format!("duplicate key `{}` in `{what}`", k.name))
                    .primary(k.span, "written again here")
                    .secondary(first.span, "first written here")
                    .help("remove one of them"),
            );
            continue;
        }
        if !known.contains(&k.name.as_str()) {
            errs.push(
                Diagnostic::error(format!("unknown key `{}` in `{what}`", k.name))
                    .primary(k.span, "unknown key")
                    .help(format!(
                        "{}`{what}` has the keys: {}",
                        did_you_mean(&k.name, known.iter().copied()),
                        known.join(", ")
                    )),
            );
            continue;
        }
        found.push((k.name.as_str(), k.span, v));
    }
    found
}

/// Reports the required keys of `keys` that are `active` and not `found`.
fn missing(
    st: &Struct,
    keys: &[KeySpec],
    found: &[Found<'_>],
    active: impl Fn(&KeySpec) -> bool,
    target: Option<&str>,
    what: &str,
    errs: &mut Vec<Diagnostic>,
) {
    for k in keys {
        if !k.optional
            && k.default_for(target).is_none()
            && active(k)
            && !found.iter().any(|f| f.0 == k.name)
        {
            errs.push(
                Diagnostic::error(format!("missing key `{}` in `{what}`", k.name))
                    .primary(st.head(), format!("`{}` is required", k.name))
                    .help(format!(
                        "add `{}: {}`; {}",
                        k.name,
                        example(&k.ty),
                        first_sentence(&k.doc)
                    )),
            );
        }
    }
}

/// The first sentence of a doc text, lower-cased at the start, without its period.
fn first_sentence(doc: &str) -> String {
    let s = doc.split(". ").next().unwrap_or(doc).trim_end_matches('.');
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn example(ty: &KeyType) -> String {
    match ty {
        KeyType::Str => "\"...\"".into(),
        KeyType::Path => "\"MyApp\"".into(),
        KeyType::Bool => "true".into(),
        KeyType::Int { min, .. } => min.max(&1).to_string(),
        KeyType::Ipv4 => "\"127.0.0.1\"".into(),
        KeyType::Ipv4Cidr { .. } => "\"10.0.2.15/24\"".into(),
        KeyType::IfName => "\"tap0\"".into(),
        KeyType::Mac => "\"00:16:3e:00:00:02\"".into(),
        KeyType::Dir => "\"htdocs\"".into(),
        KeyType::Choice(c) => c.first().cloned().unwrap_or_default(),
        KeyType::Target => "Unix".into(),
        KeyType::Config | KeyType::Devices => "{ .. }".into(),
        KeyType::DeviceList => "[..]".into(),
    }
}

fn wrong_type(ty: &KeyType, v: &Value, key: &str) -> Diagnostic {
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
        (KeyType::Int { .. }, Kind::Str(s)) if s.parse::<i128>().is_ok() => {
            d = d.help(format!("write `{s}` without quotes"));
        }
        (KeyType::Ipv4Cidr { or }, Kind::Str(s)) => {
            if let Some(v) = or.iter().find(|v| v.eq_ignore_ascii_case(s)) {
                d = d.help(format!("write `{v}` without quotes"));
            }
        }
        (
            KeyType::Str
            | KeyType::Path
            | KeyType::Dir
            | KeyType::Ipv4
            | KeyType::Ipv4Cidr { .. }
            | KeyType::IfName
            | KeyType::Mac,
            Kind::Unit(i),
        ) => {
            d = d.help(format!("strings are quoted: `\"{}\"`", i.name));
        }
        _ => {}
    }
    d
}

/// Checks a catalog default against its key type.
pub(crate) fn default_ok(ty: &KeyType, v: &Value) -> Result<(), String> {
    scalar(ty, v, "default").map(drop).map_err(|d| d.message)
}

/// Checks a scalar-typed value; `key` names it in messages (`port`, `http.port`).
fn scalar(ty: &KeyType, v: &Value, key: &str) -> Result<Scalar, Diagnostic> {
    match (ty, &v.kind) {
        (KeyType::Str | KeyType::Dir, Kind::Str(s)) => Ok(Scalar::Str(s.clone())),
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
        (KeyType::Int { rust, min, max }, Kind::Int(i)) => {
            if i < min || i > max {
                Err(Diagnostic::error(format!(
                    "value out of range for `{key}`: {i} is not in {min}..={max}"
                ))
                .primary(v.span, format!("must be from {min} to {max} ({rust})")))
            } else {
                Ok(Scalar::Int(*i))
            }
        }
        (KeyType::Ipv4, Kind::Str(s)) => match s.parse::<std::net::Ipv4Addr>() {
            Ok(a) => Ok(Scalar::Ipv4(a.octets())),
            Err(_) => Err(
                Diagnostic::error(format!("`{key}` is not an IPv4 address: {s:?}"))
                    .primary(v.span, "expected four numbers 0-255 separated by dots")
                    .help("e.g. \"127.0.0.1\", or \"0.0.0.0\" for every interface"),
            ),
        },
        (KeyType::Ipv4Cidr { or }, Kind::Str(s)) => {
            if let Some(id) = or.iter().find(|id| id.eq_ignore_ascii_case(s)) {
                return Err(Diagnostic::error(format!(
                    "`{key}` is not an IPv4 address with a prefix length: {s:?}"
                ))
                .primary(v.span, format!("a string, not the variant `{id}`"))
                .help(format!("write `{id}` without quotes")));
            }
            ipv4_cidr(s, v.span, key, or)
        }
        (KeyType::IfName, Kind::Str(s)) => if_name(s, v.span, key).map(|()| Scalar::Str(s.clone())),
        (KeyType::Mac, Kind::Str(s)) => mac(s, v.span, key).map(Scalar::Str),
        (KeyType::Ipv4Cidr { or: choices }, Kind::Unit(i)) if !choices.is_empty() => {
            if choices.contains(&i.name) {
                Ok(Scalar::Choice(i.name.clone()))
            } else {
                Err(
                    Diagnostic::error(format!("unknown variant `{}` for `{key}`", i.name))
                        .primary(v.span, format!("expected {}", ty.describe()))
                        .help(format!(
                            "{}write {} or an address with its prefix length, e.g. \"10.0.2.15/24\"",
                            did_you_mean(&i.name, choices.iter().map(String::as_str)),
                            choices
                                .iter()
                                .map(|c| format!("`{c}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                )
            }
        }
        (KeyType::Choice(choices), Kind::Unit(i)) => {
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
        _ => Err(wrong_type(ty, v, key)),
    }
}

/// A subnet: its mask and the network and broadcast addresses of `addr` in it.
fn subnet(addr: u32, prefix_len: u8) -> (u32, u32, u32) {
    let mask = if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len))
    };
    (mask, addr & mask, (addr & mask) | !mask)
}

fn dotted(a: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(a)
}

/// `"a.b.c.d/len"`: a host address of a subnet (what the direct stack accepts).
fn ipv4_cidr(s: &str, span: Span, key: &str, or: &[String]) -> Result<Scalar, Diagnostic> {
    let or_text = if or.is_empty() {
        String::new()
    } else {
        format!(
            ", or {}",
            or.iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let example =
        "e.g. \"10.0.2.15/24\" for address 10.0.2.15 in subnet 10.0.2.0/24 (netmask 255.255.255.0)";
    let Some((addr, len)) = s.split_once('/') else {
        let mut d = Diagnostic::error(format!("`{key}` needs a prefix length: {s:?}"))
            .primary(span, "expected an IPv4 address, `/`, and a prefix length");
        d = match addr_of(s) {
            Some(_) => d.help(format!(
                "write e.g. \"{s}/24\" for a /24 subnet (netmask 255.255.255.0){or_text}"
            )),
            None => d.help(format!(
                "write an address with its prefix length, {example}{or_text}"
            )),
        };
        return Err(d);
    };
    let Some(address) = addr_of(addr) else {
        return Err(Diagnostic::error(format!(
            "`{key}` is not an IPv4 address with a prefix length: {s:?}"
        ))
        .primary(
            span,
            "expected four numbers 0-255 separated by dots, then `/` and a prefix length",
        )
        .help(format!("{example}{or_text}")));
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

/// A strictly dotted-quad IPv4 address.
fn addr_of(s: &str) -> Option<std::net::Ipv4Addr> {
    s.parse().ok()
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
                .help("e.g. \"00:16:3e:00:00:02\" (00:16:3e is Xen's prefix), or leave the key out for a random one"),
        );
    }
    Ok(s.to_ascii_lowercase())
}

fn target(
    v: Option<&Value>,
    cx: &Context<'_>,
    errs: &mut Vec<Diagnostic>,
) -> Option<(String, Origin)> {
    let cat = cx.catalog;
    let variants: Vec<&str> = cat.targets.iter().map(|t| t.variant.as_str()).collect();
    let from_file = match v {
        Some(v) => match &v.kind {
            Kind::Unit(i) => match cat.targets.iter().find(|t| t.variant == i.name) {
                Some(t) => Some((t.name.clone(), Origin::Source(v.span))),
                None => {
                    errs.push(
                        Diagnostic::error(format!("unknown target `{}`", i.name))
                            .primary(v.span, "unknown target")
                            .help(format!(
                                "{}the targets are: {}",
                                did_you_mean(&i.name, variants.iter().copied()),
                                variants.join(", ")
                            )),
                    );
                    None
                }
            },
            _ => {
                let mut d = wrong_type(&KeyType::Target, v, "target")
                    .help(format!("write one of: {}", variants.join(", ")));
                if let Some(s) = v.as_str()
                    && let Some(t) = cat.targets.iter().find(|t| t.name.eq_ignore_ascii_case(s))
                {
                    d = d.help(format!("write `{}` without quotes", t.variant));
                }
                errs.push(d);
                None
            }
        },
        None => {
            let spec = cat.appliance.iter().find(|k| k.name == "target");
            match spec.and_then(|s| s.default.as_ref()).map(|d| &d.kind) {
                Some(Kind::Unit(i)) => cat
                    .targets
                    .iter()
                    .find(|t| t.variant == i.name)
                    .map(|t| (t.name.clone(), Origin::Default)),
                _ => cat
                    .targets
                    .first()
                    .map(|t| (t.name.clone(), Origin::Default)),
            }
        }
    };
    match cx.target_override {
        None => from_file,
        Some(raw) => match cat
            .targets
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(raw.trim()))
        {
            Some(t) => Some((t.name.clone(), Origin::Env)),
            None => {
                let names: Vec<&str> = cat.targets.iter().map(|t| t.name.as_str()).collect();
                errs.push(
                    Diagnostic::error(format!(
                        "invalid target `{raw}` in the environment variable MORGANA_TARGET"
                    ))
                    .note("MORGANA_TARGET overrides `target` in appliance.ron")
                    .help(format!(
                        "{}set it to one of: {}, or unset it",
                        did_you_mean(raw, names.iter().copied()),
                        names.join(", ")
                    )),
                );
                None
            }
        },
    }
}

fn map_key<'v>(k: &'v Value, what: &str, errs: &mut Vec<Diagnostic>) -> Option<&'v str> {
    match &k.kind {
        Kind::Str(s) => Some(s),
        Kind::Unit(i) => {
            errs.push(
                Diagnostic::error(format!("{what} names are strings"))
                    .primary(k.span, "expected a string")
                    .help(format!("write `\"{}\"`", i.name)),
            );
            None
        }
        _ => {
            errs.push(
                Diagnostic::error(format!("{what} names are strings, found {}", k.describe()))
                    .primary(k.span, "expected a string"),
            );
            None
        }
    }
}

fn app_config(v: &Value, errs: &mut Vec<Diagnostic>) -> Vec<AppConst> {
    let Kind::Map(entries) = &v.kind else {
        errs.push(wrong_type(&KeyType::Config, v, "config"));
        return Vec::new();
    };
    let mut out: Vec<AppConst> = Vec::new();
    let mut seen: Vec<(&str, Span)> = Vec::new();
    for (k, val) in entries {
        let Some(key) = map_key(k, "config", errs) else {
            continue;
        };
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == key) {
            errs.push(
                Diagnostic::error(format!("duplicate config key `{key}`"))
                    .primary(k.span, "written again here")
                    .secondary(*first, "first written here"),
            );
            continue;
        }
        seen.push((key, k.span));
        if !names::is_snake(key) || names::is_keyword(key) {
            errs.push(
                Diagnostic::error(format!("config key `{key}` is not a lower-case identifier"))
                    .primary(k.span, "becomes a Rust constant name")
                    .help("use lower_snake_case: letters, digits and single `_`, starting with a letter"),
            );
            continue;
        }
        let value = match &val.kind {
            Kind::Str(s) => Scalar::Str(s.clone()),
            Kind::Bool(b) => Scalar::Bool(*b),
            Kind::Float(f) => Scalar::Float(*f),
            Kind::Int(i) if *i >= i128::from(i64::MIN) => Scalar::Int(*i),
            Kind::Int(i) => {
                errs.push(
                    Diagnostic::error(format!("value out of range for `config.{key}`: {i}"))
                        .primary(val.span, "a negative value must fit in i64"),
                );
                continue;
            }
            _ => {
                errs.push(
                    Diagnostic::error(format!(
                        "wrong type for `config.{key}`: expected a string, integer, boolean or float, found {}",
                        val.describe()
                    ))
                    .primary(val.span, "expected a string, integer, boolean or float"),
                );
                continue;
            }
        };
        out.push(AppConst {
            key: key.to_string(),
            value,
            span: val.span,
        });
    }
    out
}

fn devices(
    v: &Value,
    cx: &Context<'_>,
    target: Option<&str>,
    errs: &mut Vec<Diagnostic>,
) -> Vec<Device> {
    let cat = cx.catalog;
    let Kind::Map(entries) = &v.kind else {
        errs.push(wrong_type(&KeyType::Devices, v, "devices"));
        return Vec::new();
    };
    let mut out: Vec<Device> = Vec::new();
    for (k, val) in entries {
        let Some(name) = map_key(k, "device", errs) else {
            continue;
        };
        if let Some(first) = out.iter().find(|d| d.name == name) {
            errs.push(
                Diagnostic::error(format!("device `{name}` is declared twice"))
                    .primary(k.span, "declared again here")
                    .secondary(first.name_span, "first declared here")
                    .help("device names are unique; rename or remove one of them"),
            );
            continue;
        }
        if let Some(p) = cat.platform_device(name) {
            errs.push(
                Diagnostic::error(format!("`{name}` is a reserved device name"))
                    .primary(k.span, "reserved for the platform device")
                    .note(format!(
                        "every target provides `{name}` ({}) implicitly; it is included when something uses it",
                        p.title
                    ))
                    .help(format!("to use the platform's {name}, refer to \"{name}\" without declaring it; otherwise choose another name")),
            );
            continue;
        }
        if RESERVED.contains(&name) || names::is_keyword(name) {
            errs.push(
                Diagnostic::error(format!("`{name}` is a reserved device name"))
                    .primary(k.span, "used by the generated code")
                    .help("choose another name"),
            );
            continue;
        }
        if !names::is_snake(name) {
            errs.push(
                Diagnostic::error(format!(
                    "device name `{name}` is not a lower-case identifier"
                ))
                .primary(k.span, "becomes a Rust variable and type name")
                .help(
                    "use lower_snake_case: letters, digits and single `_`, starting with a letter",
                ),
            );
            continue;
        }
        if name.len() > MAX_DEVICE_NAME {
            errs.push(
                Diagnostic::error(format!(
                    "device name `{name}` is too long ({} characters, at most {MAX_DEVICE_NAME})",
                    name.len()
                ))
                .primary(k.span, "too long")
                .note("a device name becomes a variable, a type and constant names in the generated code, which is kept readable and rustfmt-stable")
                .help("choose a shorter name"),
            );
            continue;
        }
        out.push(device(name, k.span, val, cx, target, errs));
    }
    out
}

fn device(
    name: &str,
    name_span: Span,
    v: &Value,
    cx: &Context<'_>,
    target: Option<&str>,
    errs: &mut Vec<Diagnostic>,
) -> Device {
    let cat = cx.catalog;
    let mut dev = Device {
        name: name.to_string(),
        name_span,
        component: String::new(),
        component_span: head_span(v),
        settings: Vec::new(),
        refs: Vec::new(),
        ignored: Vec::new(),
    };
    let empty;
    let (ident, st) = match &v.kind {
        Kind::Struct(st) if st.name.is_some() => (st.name.as_ref(), st),
        Kind::Unit(i) => {
            empty = Struct {
                name: Some(i.clone()),
                fields: Vec::new(),
                open: i.span,
            };
            (Some(i), &empty)
        }
        Kind::Tuple(t) if t.name.is_some() => {
            errs.push(
                Diagnostic::error(format!("the keys of device `{name}` have no names"))
                    .primary(v.span, "expected `key: value` pairs")
                    .help("write e.g. `Crunch(dir: \"htdocs\")`"),
            );
            return dev;
        }
        _ => {
            errs.push(
                Diagnostic::error(format!(
                    "expected a component for device `{name}`, found {}",
                    v.describe()
                ))
                .primary(v.span, "expected a component")
                .help(format!(
                    "write a component with its keys, e.g. `Crunch(dir: \"htdocs\")`; components: {}",
                    component_names(cat)
                )),
            );
            return dev;
        }
    };
    let Some(ident) = ident else { return dev };
    let Some(comp) = cat.component(&ident.name) else {
        let mut d = Diagnostic::error(format!("unknown component `{}`", ident.name))
            .primary(ident.span, "unknown component");
        if let Some(p) = cat.platform_devices.iter().find(|p| {
            p.title.eq_ignore_ascii_case(&ident.name) || p.name.eq_ignore_ascii_case(&ident.name)
        }) {
            d = d.help(format!(
                "`{}` is a platform device: it needs no declaration; refer to it as \"{}\"",
                p.title, p.name
            ));
        }
        d = d.help(format!(
            "{}components: {}",
            did_you_mean(&ident.name, cat.components.iter().map(|c| c.name.as_str())),
            component_names(cat)
        ));
        errs.push(d);
        return dev;
    };
    dev.component = comp.name.clone();
    let reqs: Vec<&str> = comp.requires.iter().map(|r| r.key.as_str()).collect();
    let found = fields(st, &comp.keys, &reqs, &comp.name, errs);
    settings(&mut dev, comp, st, &found, cx, target, errs);
    dev
}

fn component_names(cat: &Catalog) -> String {
    let mut names: Vec<&str> = cat.components.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.join(", ")
}

/// Whether every condition holds for `value_of` (the value of a key, if known); an
/// unknown value (a key in error) counts as holding, so that one mistake is reported
/// once.
fn holds(when: &[(String, String)], value_of: impl Fn(&str) -> Option<Scalar>) -> bool {
    when.iter().all(|(k, v)| match value_of(k) {
        Some(Scalar::Choice(c)) => &c == v,
        Some(_) => false,
        None => true,
    })
}

/// Whether `when` holds for a checked device (its settings).
pub fn device_holds(dev: &Device, when: &[(String, String)]) -> bool {
    holds(when, |k| dev.setting(k).map(|s| s.value.clone()))
}

/// A key or requirement written although its `when` does not hold.
fn inapplicable(
    dev: &Device,
    key: &str,
    key_span: Span,
    when: &[(String, String)],
    values: &[(&KeySpec, Option<(Scalar, Origin)>)],
    target: Option<&str>,
) -> Diagnostic {
    let conds: Vec<String> = when.iter().map(|(k, v)| format!("`{k}: {v}`")).collect();
    let mut d = Diagnostic::error(format!(
        "`{}.{key}` applies only with {}",
        dev.name,
        names::and_list(&conds)
    ));
    let unmet = when.iter().find_map(|(k, v)| {
        let (_, value) = values.iter().find(|(spec, _)| spec.name == *k)?;
        let (actual, origin) = value.as_ref()?;
        (actual != &Scalar::Choice(v.clone())).then_some((k, v, actual.ron(), *origin))
    });
    match unmet {
        Some((k, v, actual, origin)) => {
            d = d.primary(key_span, format!("not used with `{k}: {actual}`"));
            match origin {
                Origin::Source(span) => {
                    d = d.secondary(span, format!("`{k}` is {actual} here"));
                }
                Origin::TargetDefault | Origin::Default => {
                    let on = target
                        .map(|t| format!(" on target {t}"))
                        .unwrap_or_default();
                    d = d.note(format!("`{k}` is {actual}: its default{on}"));
                }
                Origin::Env => {}
            }
            d.help(format!(
                "remove `{key}`, or write `{k}: {v}` in `{}`",
                dev.name
            ))
        }
        None => d.primary(key_span, "not used here"),
    }
}

#[allow(clippy::too_many_arguments)]
fn settings(
    dev: &mut Device,
    comp: &Component,
    st: &Struct,
    found: &[Found<'_>],
    cx: &Context<'_>,
    target: Option<&str>,
    errs: &mut Vec<Diagnostic>,
) {
    // Every key's value: written, or the default on the target; `None` when absent or
    // in error (`failed`).
    let mut values: Vec<(&KeySpec, Option<(Scalar, Origin)>)> = Vec::new();
    let mut failed: Vec<&str> = Vec::new();
    for spec in &comp.keys {
        let what = format!("{}.{}", dev.name, spec.name);
        let value = match found.iter().find(|f| f.0 == spec.name) {
            Some((_, _, v)) => match scalar(&spec.ty, v, &what) {
                Ok(s) => Some((s, Origin::Source(v.span))),
                Err(d) => {
                    errs.push(d);
                    failed.push(&spec.name);
                    None
                }
            },
            None => spec.default_for(target).and_then(|(d, specific)| {
                let origin = if specific {
                    Origin::TargetDefault
                } else {
                    Origin::Default
                };
                scalar(&spec.ty, d, &what).ok().map(|s| (s, origin))
            }),
        };
        values.push((spec, value));
    }
    let value_of = |k: &str| {
        values
            .iter()
            .find(|(spec, _)| spec.name == k)
            .and_then(|(_, v)| v.as_ref().map(|(s, _)| s.clone()))
    };
    let on_target = |spec: &KeySpec| target.is_none_or(|t| spec.applies_to(t));
    missing(
        st,
        &comp.keys,
        found,
        |spec| holds(&spec.when, value_of) && on_target(spec),
        target,
        &comp.name,
        errs,
    );

    for (key, key_span, v) in found {
        let Some(r) = comp.requires.iter().find(|r| r.key == *key) else {
            continue;
        };
        if !holds(&r.when, value_of) {
            errs.push(inapplicable(dev, key, *key_span, &r.when, &values, target));
            continue;
        }
        match &v.kind {
            Kind::Str(s) => dev.refs.push(Reference {
                key: r.key.clone(),
                device: s.clone(),
                span: v.span,
            }),
            _ => {
                let mut d = Diagnostic::error(format!(
                    "wrong type for `{}.{key}`: expected a device name (a string), found {}",
                    dev.name,
                    v.describe()
                ))
                .primary(
                    v.span,
                    format!("expected the name of a device providing `{}`", r.signature),
                );
                if let Kind::Unit(i) = &v.kind {
                    d = d.help(format!("write `\"{}\"`", i.name));
                }
                errs.push(d);
            }
        }
    }

    for (spec, value) in &values {
        let written = found.iter().find(|f| f.0 == spec.name);
        if !holds(&spec.when, value_of) {
            if let Some((key, key_span, _)) = written {
                errs.push(inapplicable(
                    dev, key, *key_span, &spec.when, &values, target,
                ));
            }
            continue;
        }
        if !on_target(spec) {
            if let Some((key, key_span, _)) = written {
                dev.ignored.push((key.to_string(), *key_span));
            }
            continue;
        }
        let (value, origin) = match value {
            Some(v) => v.clone(),
            None if spec.optional && !failed.contains(&spec.name.as_str()) => {
                (Scalar::Absent, Origin::Default)
            }
            None => continue, // missing or in error: reported
        };
        let what = format!("{}.{}", dev.name, spec.name);
        if let (KeyType::Dir, Scalar::Str(dir), Origin::Source(span)) = (&spec.ty, &value, origin) {
            check_dir(dir, span, &what, cx, errs);
        }
        dev.settings.push(crate::model::Setting {
            key: spec.name.clone(),
            value,
            origin,
        });
    }

    // An address that must be inside another key's subnet (a gateway).
    for spec in &comp.keys {
        let (Some(within), Some(s)) = (&spec.within, dev.setting(&spec.name)) else {
            continue;
        };
        let (Scalar::Ipv4(g), Origin::Source(span)) = (&s.value, s.origin) else {
            continue;
        };
        let Some(net) = dev.setting(within) else {
            continue;
        };
        let what = format!("{}.{}", dev.name, spec.name);
        let g = u32::from_be_bytes(*g);
        match &net.value {
            Scalar::Ipv4Cidr(a, len) => {
                let a = u32::from_be_bytes(*a);
                let (mask, netw, bcast) = subnet(a, *len);
                let cidr = format!("{}/{len}", dotted(netw));
                let mut d = if g & mask != netw {
                    Diagnostic::error(format!(
                        "`{what}` {} is outside the subnet {cidr} of `{}.{within}`",
                        dotted(g),
                        dev.name
                    ))
                    .primary(span, format!("not in {cidr}"))
                } else if g == a {
                    Diagnostic::error(format!(
                        "`{what}` {} is the interface's own address",
                        dotted(g)
                    ))
                    .primary(span, "the same address as the interface")
                } else if *len <= 30 && (g == netw || g == bcast) {
                    Diagnostic::error(format!(
                        "`{what}` {} is the {} address of {cidr}",
                        dotted(g),
                        if g == netw { "network" } else { "broadcast" }
                    ))
                    .primary(span, "not a host address")
                } else {
                    continue;
                };
                if let Origin::Source(ns) = net.origin {
                    d = d.secondary(ns, format!("the subnet is {cidr}"));
                }
                let hosts = if *len <= 30 {
                    format!("{} to {}", dotted(netw + 1), dotted(bcast - 1))
                } else {
                    cidr.clone()
                };
                errs.push(d.help(format!(
                    "the gateway is reached directly, so it is a host of {cidr} other than the interface: {hosts}"
                )));
            }
            other => {
                let mut d =
                    Diagnostic::error(format!("`{what}` needs a static `{within}` address",))
                        .primary(span, format!("used with `{within}: {}`", other.ron()));
                if let Origin::Source(ns) = net.origin {
                    d = d.secondary(ns, format!("`{within}` is {} here", other.ron()));
                }
                errs.push(d.help(format!(
                    "a DHCP lease brings its own gateway: remove `{}`, or give a static address, e.g. `{within}: \"10.0.2.15/24\"`",
                    spec.name
                )));
            }
        }
    }
}

fn check_dir(dir: &str, span: Span, what: &str, cx: &Context<'_>, errs: &mut Vec<Diagnostic>) {
    let p = Path::new(dir);
    if dir.is_empty() || p.is_absolute() {
        errs.push(
            Diagnostic::error(format!("`{what}` must be a relative path, found {dir:?}"))
                .primary(
                    span,
                    "expected a path relative to the appliance's directory",
                )
                .help("e.g. \"htdocs\" for a folder next to appliance.ron"),
        );
        return;
    }
    if !cx.manifest_dir.join(p).is_dir() {
        let shown = if cx.display_dir.is_empty() {
            dir.to_string()
        } else {
            format!("{}/{dir}", cx.display_dir.trim_end_matches('/'))
        };
        let what_is = if cx.manifest_dir.join(p).exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        errs.push(
            Diagnostic::error(format!("directory `{shown}` {what_is}"))
                .primary(span, format!("`{what}` {what_is}"))
                .note("the path is relative to the directory that holds appliance.ron")
                .help(format!(
                    "create `{shown}` or point `{what}` at an existing directory"
                )),
        );
    }
}

fn start(
    v: &Value,
    devices: &[Device],
    cat: &Catalog,
    errs: &mut Vec<Diagnostic>,
) -> Vec<(String, Span)> {
    let Kind::List(items) = &v.kind else {
        errs.push(wrong_type(&KeyType::DeviceList, v, "start"));
        return Vec::new();
    };
    let all: Vec<&str> = cat
        .platform_devices
        .iter()
        .map(|p| p.name.as_str())
        .chain(devices.iter().map(|d| d.name.as_str()))
        .collect();
    let mut out = Vec::new();
    for item in items {
        let Some(name) = item.as_str() else {
            let mut d = Diagnostic::error(format!(
                "wrong type in `start`: expected a device name (a string), found {}",
                item.describe()
            ))
            .primary(item.span, "expected a string");
            if let Kind::Unit(i) = &item.kind {
                d = d.help(format!("write `\"{}\"`", i.name));
            }
            errs.push(d);
            continue;
        };
        if !all.contains(&name) {
            errs.push(
                Diagnostic::error(format!("`start` names unknown device `{name}`"))
                    .primary(item.span, "no device has this name")
                    .help(format!(
                        "{}devices: {}",
                        did_you_mean(name, all.iter().copied()),
                        all.join(", ")
                    )),
            );
            continue;
        }
        out.push((name.to_string(), item.span));
    }
    out
}

/// Generated names that would clash: config constants, and type aliases vs `main`.
fn collisions(a: &Appliance, cat: &Catalog, errs: &mut Vec<Diagnostic>) {
    let mut consts: Vec<(String, Span, String)> = a
        .config
        .iter()
        .map(|c| {
            (
                names::screaming(&c.key),
                c.span,
                format!("`config.{}`", c.key),
            )
        })
        .collect();
    for d in &a.devices {
        let Some(comp) = cat.component(&d.component) else {
            continue;
        };
        for k in comp.keys.iter().filter(|k| k.as_const) {
            consts.push((
                format!(
                    "{}_{}",
                    names::screaming(&d.name),
                    names::screaming(&k.name)
                ),
                d.name_span,
                format!("`{}.{}`", d.name, k.name),
            ));
        }
    }
    for (i, (name, span, what)) in consts.iter().enumerate() {
        if let Some((_, first_span, first)) = consts[..i].iter().find(|(n, _, _)| n == name) {
            errs.push(
                Diagnostic::error(format!("{what} and {first} both become `config::{name}`"))
                    .primary(*span, format!("{what} becomes `config::{name}`"))
                    .secondary(*first_span, format!("{first} becomes `config::{name}`"))
                    .help("rename the config key or the device"),
            );
        }
    }
    // `prepare` steps become variables `<device>_<step>` beside the devices' own.
    for d in &a.devices {
        let Some(comp) = cat.component(&d.component) else {
            continue;
        };
        let mut steps: Vec<&str> = Vec::new();
        for imp in &comp.impls {
            if let crate::catalog::Code::Connect { prepare, .. } = &imp.code {
                steps.extend(prepare.iter().map(|(s, _)| s.as_str()));
            }
        }
        steps.sort_unstable();
        steps.dedup();
        for step in steps {
            let var = format!("{}_{step}", d.name);
            if let Some(other) = a.devices.iter().find(|o| o.name == var) {
                errs.push(
                    Diagnostic::error(format!(
                        "device `{var}` clashes with a variable of device `{}`",
                        d.name
                    ))
                    .primary(other.name_span, format!("becomes the variable `{var}`"))
                    .secondary(
                        d.name_span,
                        format!("a {} names its `{step}` `{var}`", d.component),
                    )
                    .help("rename one of the devices"),
                );
            }
        }
    }
    let main_root = a.main.split("::").next().unwrap_or_default();
    let mut aliases: Vec<(String, &Device)> = Vec::new();
    for d in &a.devices {
        let alias = names::camel(&d.name);
        if alias == main_root {
            errs.push(
                Diagnostic::error(format!(
                    "device `{}` would define `type {alias}`, which clashes with `main: \"{}\"`",
                    d.name, a.main
                ))
                .primary(d.name_span, format!("becomes `type {alias}`"))
                .secondary(a.main_span, "the application's type")
                .help("rename the device"),
            );
        }
        if let Some((_, first)) = aliases.iter().find(|(n, _)| *n == alias) {
            errs.push(
                Diagnostic::error(format!(
                    "devices `{}` and `{}` would both define `type {alias}`",
                    first.name, d.name
                ))
                .primary(d.name_span, format!("becomes `type {alias}`"))
                .secondary(first.name_span, format!("also becomes `type {alias}`"))
                .help("rename one of them"),
            );
        }
        aliases.push((alias, d));
    }
}
