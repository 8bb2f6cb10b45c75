//! A device's keys: each written value read by its type (or the default on the
//! target), the requirements written as device names, keys that apply only with a
//! choice (`when`) or on some targets (`targets`), paths that must exist, and
//! addresses that must be inside another key's subnet (`within`).

use std::path::Path;

use crate::catalog::{Component, KeySpec, KeyType};
use crate::check::value::{dotted, optional, scalar, subnet};
use crate::check::{Context, Found, missing};
use crate::diag::{Diagnostic, Span};
use crate::model::{Device, Origin, Reference, Scalar, Setting};
use crate::names;
use crate::syntax::{Kind, Struct};

/// Every key's value: written, or the default on the target; `None` when absent or in
/// error.
type Values<'c> = Vec<(&'c KeySpec, Option<(Scalar, Origin)>)>;

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

/// Reads the device's keys into `dev.settings` (and its requirements into `dev.refs`).
pub(crate) fn settings(
    dev: &mut Device,
    comp: &Component,
    st: &Struct,
    found: &[Found<'_>],
    cx: &Context<'_>,
    target: Option<&str>,
    errs: &mut Vec<Diagnostic>,
) {
    let (values, failed) = read_values(dev, comp, found, cx, target, errs);
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
    requirements(dev, comp, found, &values, target, errs);

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
        if spec.deprecated.is_some()
            && let Some((key, key_span, _)) = written
        {
            dev.deprecated.push((key.to_string(), *key_span));
        }
        let (value, origin) = match value {
            Some(v) => v.clone(),
            None if spec.optional && !failed.contains(&spec.name.as_str()) => {
                (Scalar::Absent, Origin::Default)
            }
            None => continue, // missing or in error: reported
        };
        let what = format!("{}.{}", dev.name, spec.name);
        if let Origin::Source(span) = origin {
            check_paths(&spec.ty, &value, span, &what, cx, errs);
        }
        dev.settings.push(Setting {
            key: spec.name.clone(),
            value,
            origin,
        });
    }
    within(dev, comp, errs);
    super::v6_only::off_needs_ipv6(dev, comp, errs);
}

/// Each key's value, written or defaulted; and the keys whose written value is wrong.
fn read_values<'c>(
    dev: &Device,
    comp: &'c Component,
    found: &[Found<'_>],
    cx: &Context<'_>,
    target: Option<&str>,
    errs: &mut Vec<Diagnostic>,
) -> (Values<'c>, Vec<&'c str>) {
    let mut values: Values<'c> = Vec::new();
    let mut failed: Vec<&str> = Vec::new();
    for spec in &comp.keys {
        let what = format!("{}.{}", dev.name, spec.name);
        let value = match found.iter().find(|f| f.0 == spec.name) {
            Some((_, _, v)) => {
                let read = if spec.optional {
                    optional(v, cx.extensions, &what).and_then(|inner| match inner {
                        Some(inner) => scalar(&spec.ty, inner, &what),
                        None => Ok(Scalar::Absent),
                    })
                } else {
                    scalar(&spec.ty, v, &what)
                };
                match read {
                    Ok(s) => Some((s, Origin::Source(v.span))),
                    Err(d) => {
                        errs.push(d);
                        failed.push(&spec.name);
                        None
                    }
                }
            }
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
    (values, failed)
}

/// The requirement keys written: device names, if their `when` holds.
fn requirements(
    dev: &mut Device,
    comp: &Component,
    found: &[Found<'_>],
    values: &Values<'_>,
    target: Option<&str>,
    errs: &mut Vec<Diagnostic>,
) {
    let value_of = |k: &str| {
        values
            .iter()
            .find(|(spec, _)| spec.name == k)
            .and_then(|(_, v)| v.as_ref().map(|(s, _)| s.clone()))
    };
    for (key, key_span, v) in found {
        let Some(r) = comp.requires.iter().find(|r| r.name == *key) else {
            continue;
        };
        if !holds(&r.when, value_of) {
            errs.push(inapplicable(dev, key, *key_span, &r.when, values, target));
            continue;
        }
        match &v.kind {
            Kind::Str(s) => dev.refs.push(Reference {
                key: r.name.clone(),
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
                if let Kind::Ident(i) = &v.kind {
                    d = d.help(format!("write `\"{}\"`", i.name));
                }
                errs.push(d);
            }
        }
    }
}

/// A key or requirement written although its `when` does not hold.
fn inapplicable(
    dev: &Device,
    key: &str,
    key_span: Span,
    when: &[(String, String)],
    values: &Values<'_>,
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

/// An address that must be inside another key's subnet (a gateway).
fn within(dev: &Device, comp: &Component, errs: &mut Vec<Diagnostic>) {
    for spec in &comp.keys {
        let (Some(within), Some(s)) = (&spec.within, dev.setting(&spec.name)) else {
            continue;
        };
        let Origin::Source(span) = s.origin else {
            continue;
        };
        let Some(net) = dev.setting(within) else {
            continue;
        };
        let what = format!("{}.{}", dev.name, spec.name);
        if let Scalar::Ipv6(g) = &s.value {
            within_v6(g, span, net, &what, &dev.name, within, &spec.name, errs);
            continue;
        }
        let Scalar::Ipv4(g) = &s.value else {
            continue;
        };
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
                let why = if *other == Scalar::Choice("Off".into()) {
                    "IPv4 is off, so there is no IPv4 gateway"
                } else {
                    "a DHCP lease brings its own gateway"
                };
                errs.push(d.help(format!(
                    "{why}: remove `{}`, or give a static address, e.g. `{within}: Static(\"10.0.2.15/24\")`",
                    spec.name
                )));
            }
        }
    }
}

/// An IPv6 gateway: on the link, so inside the prefix of the static address, or
/// link-local (`fe80::/10`, what routers usually are); not the interface itself.
#[allow(clippy::too_many_arguments)]
fn within_v6(
    g: &[u8; 16],
    span: Span,
    net: &crate::model::Setting,
    what: &str,
    dev: &str,
    within: &str,
    key: &str,
    errs: &mut Vec<Diagnostic>,
) {
    let gw = std::net::Ipv6Addr::from(*g);
    let mut d = match &net.value {
        Scalar::Ipv6Cidr(a, len) => {
            let mask = u128::MAX << (128 - u32::from(*len));
            let addr = u128::from_be_bytes(*a);
            let prefix = format!("{}/{len}", std::net::Ipv6Addr::from(addr & mask));
            let d = if gw.is_unspecified() || gw.is_multicast() || gw.is_loopback() {
                Diagnostic::error(format!("`{what}` {gw} is not a unicast address"))
                    .primary(span, "not a router's address")
            } else if u128::from(gw) == addr {
                Diagnostic::error(format!("`{what}` {gw} is the interface's own address"))
                    .primary(span, "the same address as the interface")
            } else if !gw.is_unicast_link_local() && u128::from(gw) & mask != addr & mask {
                Diagnostic::error(format!(
                    "`{what}` {gw} is off-link: outside the prefix {prefix} of `{dev}.{within}`"
                ))
                .primary(span, format!("not in {prefix}, and not link-local"))
            } else {
                return;
            };
            let d = match net.origin {
                Origin::Source(ns) => d.secondary(ns, format!("the prefix is {prefix}")),
                _ => d,
            };
            d.help(format!(
                "the gateway is reached directly: a router's address inside {prefix}, or its link-local address (fe80::/10), e.g. Some(\"fe80::1\")"
            ))
        }
        other => {
            let d = Diagnostic::error(format!("`{what}` needs a static `{within}` address"))
                .primary(span, format!("used with `{within}: {}`", other.ron()));
            let d = match net.origin {
                Origin::Source(ns) => {
                    d.secondary(ns, format!("`{within}` is {} here", other.ron()))
                }
                _ => d,
            };
            d.help(format!(
                "with `Slaac` the router advertisements bring the gateway, and `LinkLocal` or no IPv6 has none: remove `{key}`, or give a static address, e.g. `{within}: Static(\"fd00::2/64\")`"
            ))
        }
    };
    if matches!(net.value, Scalar::Absent) {
        d = Diagnostic::error(format!("`{what}` needs a static `{within}` address"))
            .primary(span, format!("`{dev}` has no `{within}`"))
            .help(format!(
                "give the interface an IPv6 address, e.g. `{within}: Static(\"fd00::2/64\")`, or remove `{key}`"
            ));
    }
    errs.push(d);
}

/// Directories and files named by `Dir`, `File` and `Files` keys must exist.
fn check_paths(
    ty: &KeyType,
    value: &Scalar,
    span: Span,
    what: &str,
    cx: &Context<'_>,
    errs: &mut Vec<Diagnostic>,
) {
    match (ty, value) {
        (KeyType::Dir, Scalar::Str(p)) => check_path(p, true, span, what, cx, errs),
        (KeyType::File, Scalar::Str(p)) => check_path(p, false, span, what, cx, errs),
        (KeyType::Files, Scalar::List(ps)) => {
            for p in ps {
                check_path(p, false, span, what, cx, errs);
            }
        }
        _ => {}
    }
}

fn check_path(
    path: &str,
    dir: bool,
    span: Span,
    what: &str,
    cx: &Context<'_>,
    errs: &mut Vec<Diagnostic>,
) {
    let p = Path::new(path);
    let kind = if dir { "directory" } else { "file" };
    if path.is_empty() || p.is_absolute() {
        errs.push(
            Diagnostic::error(format!("`{what}` must be a relative path, found {path:?}"))
                .primary(
                    span,
                    "expected a path relative to the appliance's directory",
                )
                .help(if dir {
                    "e.g. \"htdocs\" for a folder next to appliance.ron"
                } else {
                    "e.g. \"redirects\" for a file next to appliance.ron"
                }),
        );
        return;
    }
    let full = cx.manifest_dir.join(p);
    let is = if dir { full.is_dir() } else { full.is_file() };
    if !is {
        let shown = if cx.display_dir.is_empty() {
            path.to_string()
        } else {
            format!("{}/{path}", cx.display_dir.trim_end_matches('/'))
        };
        let what_is = if full.exists() {
            if dir {
                "is not a directory"
            } else {
                "is not a file"
            }
        } else {
            "does not exist"
        };
        errs.push(
            Diagnostic::error(format!("{kind} `{shown}` {what_is}"))
                .primary(span, format!("`{what}` {what_is}"))
                .note("the path is relative to the directory that holds appliance.ron")
                .help(format!(
                    "create `{shown}` or point `{what}` at an existing {kind}"
                )),
        );
    }
}
