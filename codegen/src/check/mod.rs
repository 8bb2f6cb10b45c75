//! Validation: the syntax tree against the catalog, into the typed model.
//!
//! A value means what `ron` would make of it as the Rust type the catalog's key stands
//! for ([`value`]); the device keys, with their conditions, targets and subnets, are in
//! [`settings`]. Every independent problem is reported; a problem in one key does not
//! hide problems in its neighbours.

mod clashes;
pub mod settings;
mod targets;
pub(crate) mod v6_only;
pub mod value;

use std::path::Path;

use crate::catalog::{Catalog, KeySpec, KeyType};
use crate::diag::{Diagnostic, Span};
use crate::model::{AppConst, Appliance, BootChoice, Device, Origin, Scalar};
use crate::names::{self, did_you_mean};
use crate::syntax::number::{self, AnyNumber, FloatType, IntType};
use crate::syntax::{Document, Extensions, Kind, Struct, Value};

pub use self::settings::device_holds;
pub(crate) use self::value::default_ok;
use self::value::{scalar, wrong_type};

/// Names that cannot be device names besides the platform devices: they are used by
/// the generated code.
const RESERVED: &[&str] = &["platform", "config", "start_error", "boot"];

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
    /// Which target of a list (`target: [Unix, Xen]`) to build, by catalog name; `None`
    /// builds the first.
    pub target_of_list: Option<&'a str>,
    /// The document's `#![enable(..)]` extensions.
    pub extensions: Extensions,
}

/// Checks `doc` and builds the model; problems go to `errs`.
pub fn check(doc: &Document, cx: &Context<'_>, errs: &mut Vec<Diagnostic>) -> Option<Appliance> {
    let root = &doc.value;
    let st = appliance_struct(root, cx.extensions, errs)?;
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
                .and_then(|d| scalar(&spec.ty, &d.value, key).ok())
                .map(|s| (s, Origin::Default)),
        }
    };
    let name = scalar_or("name", errs);
    let main = scalar_or("main", errs);
    let heap = scalar_or("heap_mib", errs);
    let memory = scalar_or("memory_mib", errs);
    let log = scalar_or("log_level", errs);

    let mut listed = Vec::new();
    let target = target(get("target"), cx, &mut listed, errs);
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
    let boot = get("boot")
        .map(|v| boot(v, &devices, cat, errs))
        .unwrap_or_default();
    let cmdline = match get("cmdline") {
        Some(v) => match scalar(&KeyType::Str, v, "cmdline") {
            Ok(s) => (text(s), Some(v.span)),
            Err(d) => {
                errs.push(d);
                (String::new(), None)
            }
        },
        None => (String::new(), None),
    };

    let (name, main, heap, log, target) = (name?, main?, heap?, log?, target?);
    let main_span = main.1.span().unwrap_or(st.head());
    let appliance = Appliance {
        name: text(name.0),
        target: target.0,
        target_origin: target.1,
        targets: listed,
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
        boot,
        cmdline,
    };
    clashes::collisions(&appliance, cat, errs);
    ok.then_some(appliance)
}

/// The top-level `Appliance(..)` (or `(..)`, unless `explicit_struct_names`).
fn appliance_struct<'v>(
    root: &'v Value,
    ext: Extensions,
    errs: &mut Vec<Diagnostic>,
) -> Option<&'v Struct> {
    let help =
        "appliance.ron holds one `Appliance(name: .., main: .., devices: {..}, start: [..])`";
    match &root.kind {
        Kind::Struct(st) if st.name.as_ref().is_some_and(|n| n.name == "Appliance") => Some(st),
        Kind::Struct(st) if st.name.is_none() && !ext.explicit_struct_names => Some(st),
        Kind::Struct(st) if st.name.is_none() => {
            errs.push(
                Diagnostic::error("expected `Appliance(..)`, found a struct without its name")
                    .primary(st.open, "the name `Appliance` is missing")
                    .note("`#![enable(explicit_struct_names)]` asks for every struct's name")
                    .help("write `Appliance(` here"),
            );
            None
        }
        _ => {
            let found = match &root.kind {
                Kind::Struct(Struct { name: Some(n), .. }) => format!("`{}(..)`", n.name),
                _ => root.describe(),
            };
            errs.push(
                Diagnostic::error(format!("expected `Appliance(..)`, found {found}"))
                    .primary(head_span(root), "not an appliance description")
                    .help(help),
            );
            None
        }
    }
}

fn text(s: Scalar) -> String {
    match s {
        Scalar::Str(s) | Scalar::Choice(s) => s,
        other => other.ron(),
    }
}

pub(crate) fn head_span(v: &Value) -> Span {
    match &v.kind {
        Kind::Struct(st) => st.head(),
        Kind::Tuple(t) => t.name.as_ref().map_or(v.span, |n| n.span),
        _ => v.span,
    }
}

/// A field found in a struct: its key, where the key is written, its value.
pub(crate) type Found<'v> = (&'v str, Span, &'v Value);

/// Matches a struct's fields against `keys` (and requirement keys `reqs`): reports
/// duplicate and unknown keys; returns the known fields found.
pub(crate) fn fields<'v>(
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
pub(crate) fn missing(
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
                        value::example(&k.ty),
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

fn target(
    v: Option<&Value>,
    cx: &Context<'_>,
    listed: &mut Vec<(String, Span)>,
    errs: &mut Vec<Diagnostic>,
) -> Option<(String, Origin)> {
    let cat = cx.catalog;
    let variants: Vec<&str> = cat.targets.iter().map(|t| t.variant.as_str()).collect();
    let from_file = match v {
        Some(v) => match &v.kind {
            Kind::List(items) => {
                *listed = targets::list(v, items, cat, errs)?;
                targets::chosen(listed, cx.target_of_list)
            }
            Kind::Ident(i) => match cat.targets.iter().find(|t| t.variant == i.name) {
                Some(t) => {
                    listed.push((t.name.clone(), v.span));
                    Some((t.name.clone(), Origin::Source(v.span)))
                }
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
            match spec
                .and_then(|s| s.default.as_ref())
                .and_then(|d| d.value.as_ident())
            {
                Some(i) => cat
                    .targets
                    .iter()
                    .find(|t| t.variant == i.name)
                    .map(|t| (t.name.clone(), Origin::Default)),
                None => cat
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
        Kind::Ident(i) => {
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

/// An application constant's value and Rust type: what `ron` makes of a value of no
/// particular type (its `Value`), limited to what a `const` can be.
fn config_value(v: &Value, key: &str) -> Result<(Scalar, String), Diagnostic> {
    let int_type = |t: IntType| t.suffix().to_string();
    let float = |f: f64, t: FloatType| {
        let ty = match t {
            FloatType::F32 => "f32",
            FloatType::F64 => "f64",
        };
        (Scalar::Float(f), ty.to_string())
    };
    match &v.kind {
        Kind::Str(s) => Ok((Scalar::Str(s.clone()), "&str".into())),
        Kind::Char(c) => Ok((Scalar::Char(*c), "char".into())),
        Kind::Bool(b) => Ok((Scalar::Bool(*b), "bool".into())),
        Kind::Byte(b) => Ok((Scalar::Int(i128::from(*b)), "u8".into())),
        Kind::Number(text) => match number::any(text) {
            // Without a suffix an integer is a `u64` (`i64` if negative); the suffix
            // chooses another type.
            Ok(AnyNumber::Int(i, t)) if text.ends_with(t.suffix()) => {
                Ok((Scalar::Int(i), int_type(t)))
            }
            Ok(AnyNumber::Int(i, _)) if i < 0 => Ok((Scalar::Int(i), "i64".into())),
            Ok(AnyNumber::Int(i, _)) => Ok((Scalar::Int(i), "u64".into())),
            Ok(AnyNumber::Float(f, t)) if text.ends_with("f32") || text.ends_with("f64") => {
                Ok(float(f, t))
            }
            Ok(AnyNumber::Float(f, _)) => Ok(float(f, FloatType::F64)),
            Err(number::NumberError::OutOfRange(t)) => Err(Diagnostic::error(format!(
                "value out of range for `config.{key}`: {text} does not fit in `{}`",
                t.suffix()
            ))
            .primary(v.span, format!("not a `{}`", t.suffix()))
            .help("remove the suffix, or choose a wider type (`u64`, `i64`)")),
            Err(_) => Err(value::invalid_number(text, v.span)),
        },
        Kind::Ident(i) if !i.raw => match i.name.as_str() {
            "inf" | "inff32" => Ok(float(
                f64::INFINITY,
                if i.name.ends_with("f32") {
                    FloatType::F32
                } else {
                    FloatType::F64
                },
            )),
            "inff64" => Ok(float(f64::INFINITY, FloatType::F64)),
            "NaN" | "NaNf32" => Ok(float(
                f64::NAN,
                if i.name.ends_with("f32") {
                    FloatType::F32
                } else {
                    FloatType::F64
                },
            )),
            "NaNf64" => Ok(float(f64::NAN, FloatType::F64)),
            _ => Err(not_a_constant(v, key)),
        },
        _ => Err(not_a_constant(v, key)),
    }
}

fn not_a_constant(v: &Value, key: &str) -> Diagnostic {
    let mut d = Diagnostic::error(format!(
        "wrong type for `config.{key}`: expected a string, character, integer, boolean or float, found {}",
        v.describe()
    ))
    .primary(v.span, "expected a string, character, integer, boolean or float");
    if let Kind::Ident(i) = &v.kind {
        d = d.help(format!("strings are quoted: `\"{}\"`", i.name));
    }
    d
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
        match config_value(val, key) {
            Ok((value, ty)) => out.push(AppConst {
                key: key.to_string(),
                value,
                ty,
                span: val.span,
            }),
            Err(d) => errs.push(d),
        }
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
        deprecated: Vec::new(),
    };
    // The component's name, and its keys (none for a bare name, which is an error
    // once the name is known to be a component).
    let (ident, st) = match &v.kind {
        Kind::Struct(st) if st.name.is_some() => (st.name.as_ref(), Some(st)),
        Kind::Ident(i) => (Some(i), None),
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
    let Some(st) = st else {
        errs.push(
            Diagnostic::error(format!(
                "a component is written with parentheses: `{}()`",
                ident.name
            ))
            .primary(
                v.span,
                format!("`{}` alone is a unit variant in RON", ident.name),
            )
            .help(format!(
                "write `{}()` (its keys, if any, go between the parentheses)",
                ident.name
            )),
        );
        return dev;
    };
    dev.component = comp.name.clone();
    let reqs: Vec<&str> = comp.requires.iter().map(|r| r.name.as_str()).collect();
    let found = fields(st, &comp.keys, &reqs, &comp.name, errs);
    settings::settings(&mut dev, comp, st, &found, cx, target, errs);
    dev
}

fn component_names(cat: &Catalog) -> String {
    let mut names: Vec<&str> = cat.components.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.join(", ")
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
            if let Kind::Ident(i) = &item.kind {
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

/// `boot: ["net.ipv4", "http.port"]`: each entry a declared device and one of its
/// component's keys marked `boot` in the catalog, once.
fn boot(
    v: &Value,
    devices: &[Device],
    cat: &Catalog,
    errs: &mut Vec<Diagnostic>,
) -> Vec<BootChoice> {
    let Kind::List(items) = &v.kind else {
        errs.push(wrong_type(&KeyType::BootKeys, v, "boot"));
        return Vec::new();
    };
    let mut out: Vec<BootChoice> = Vec::new();
    for item in items {
        let Some(text) = item.as_str() else {
            errs.push(
                Diagnostic::error(format!(
                    "wrong type in `boot`: expected a device key such as \"http.port\" (a string), found {}",
                    item.describe()
                ))
                .primary(item.span, "expected a string"),
            );
            continue;
        };
        let Some((device, key)) = text.split_once('.') else {
            errs.push(
                Diagnostic::error(format!("`boot` entry `{text}` does not name a device key"))
                    .primary(item.span, "expected `<device>.<key>`")
                    .help("write the device's name, a dot and the key, e.g. \"http.port\""),
            );
            continue;
        };
        let Some(dev) = devices.iter().find(|d| d.name == device) else {
            let names = devices.iter().map(|d| d.name.as_str());
            errs.push(
                Diagnostic::error(format!("`boot` names unknown device `{device}`"))
                    .primary(item.span, "no declared device has this name")
                    .help(format!(
                        "{}devices: {}",
                        did_you_mean(device, names.clone()),
                        names.collect::<Vec<_>>().join(", ")
                    )),
            );
            continue;
        };
        let Some(comp) = cat.component(&dev.component) else {
            continue;
        };
        let boot_keys: Vec<&str> = comp
            .keys
            .iter()
            .filter(|k| k.boot)
            .map(|k| k.name.as_str())
            .collect();
        let list = if boot_keys.is_empty() {
            format!("{} has no key that can be set at boot", comp.name)
        } else {
            format!(
                "{}'s keys that can be set at boot: {}",
                comp.name,
                boot_keys.join(", ")
            )
        };
        match comp.keys.iter().find(|k| k.name == key) {
            None => {
                errs.push(
                    Diagnostic::error(format!("`boot`: {} has no key `{key}`", comp.name))
                        .primary(item.span, "no such key")
                        .help(format!(
                            "{}{list}",
                            did_you_mean(key, boot_keys.iter().copied())
                        )),
                );
                continue;
            }
            Some(k) if !k.boot => {
                errs.push(
                    Diagnostic::error(format!("`boot`: `{device}.{key}` cannot be set at boot"))
                        .primary(item.span, "a compile-time key")
                        .note(list),
                );
                continue;
            }
            Some(_) => {}
        }
        if let Some(first) = out.iter().find(|b| b.device == device && b.key == key) {
            errs.push(
                Diagnostic::error(format!("`boot` names `{text}` twice"))
                    .primary(item.span, "named again here")
                    .secondary(first.span, "first here")
                    .help("remove one of them"),
            );
            continue;
        }
        out.push(BootChoice {
            device: device.to_string(),
            key: key.to_string(),
            span: item.span,
        });
    }
    out
}
