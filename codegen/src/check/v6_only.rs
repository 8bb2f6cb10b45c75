//! Addresses and the stacks they are on. An IPv6-only stack is a network device whose
//! IPv4 key (an `Ipv4Cidr` key) is `Off`: it needs its IPv6 key set (or it has no
//! address at all), and nothing may listen on it at an IPv4 address (`0.0.0.0`
//! included). A stack without IPv6 takes no IPv6 address to listen on.

use std::net::IpAddr;

use crate::catalog::{Catalog, Component, KeySpec, KeyType};
use crate::diag::Diagnostic;
use crate::model::{self, Device, Origin, Scalar, Setting};
use crate::wire;

/// The variant of an `Ipv4Cidr` key that turns IPv4 off.
const OFF: &str = "Off";

/// The name of the component's `Ipv4Cidr` key if the device sets it to `Off`.
fn ipv4_off<'c>(dev: &Device, comp: &'c Component) -> Option<&'c str> {
    comp.keys.iter().find_map(|k| {
        (matches!(k.ty, KeyType::Ipv4Cidr { .. })
            && dev
                .setting(&k.name)
                .is_some_and(|s| s.value == Scalar::Choice(OFF.into())))
        .then_some(k.name.as_str())
    })
}

/// `ipv4: Off` with no IPv6: the stack would have no address.
pub(crate) fn off_needs_ipv6(dev: &Device, comp: &Component, errs: &mut Vec<Diagnostic>) {
    let Some(v4) = ipv4_off(dev, comp) else {
        return;
    };
    let Some(v6) = comp
        .keys
        .iter()
        .find(|k| matches!(k.ty, KeyType::Ipv6Cidr { .. }))
    else {
        return;
    };
    if dev
        .setting(&v6.name)
        .is_some_and(|s| s.value != Scalar::Absent)
    {
        return;
    }
    let mut d = Diagnostic::error(format!(
        "`{}` has neither IPv4 nor IPv6: `{v4}: {OFF}` needs `{}`",
        dev.name, v6.name
    ));
    d = match dev.setting(v4).map(|s| s.origin) {
        Some(Origin::Source(span)) => d.primary(span, "IPv4 is off here"),
        _ => d.primary(dev.component_span, "IPv4 is off"),
    };
    errs.push(d.help(format!(
        "an IPv6-only stack: add `{0}: Some(Slaac)` or `{0}: Some(Static(\"fd00::2/64\"))`; or keep IPv4: `{v4}: Dhcp` or `{v4}: Static(\"10.0.2.15/24\")`",
        v6.name
    )));
}

/// An address given to a device's `Ip` key that has `ipv6_needs:
/// "<requirement>.<key>"` (the keys that name a stack's address), and the stack device
/// wired to that requirement.
struct OnStack<'a> {
    dev: &'a Device,
    spec: &'a KeySpec,
    setting: &'a Setting,
    addr: IpAddr,
    /// The stack's IPv6 key (`<key>` of `ipv6_needs`).
    v6_key: &'a str,
    stack: &'a Device,
    stack_comp: &'a Component,
}

/// Every address of an included device that names a place on a wired stack.
fn addresses_on_stacks<'a>(
    model: &'a model::Appliance,
    catalog: &'a Catalog,
    wiring: &'a wire::Wiring<'_>,
) -> Vec<OnStack<'a>> {
    let mut out = Vec::new();
    for (i, node) in wiring.nodes.iter().enumerate() {
        let wire::NodeKind::Declared(d) = node.kind else {
            continue;
        };
        if !wiring.included(i) {
            continue;
        }
        let dev = &model.devices[d];
        let Some(comp) = catalog.component(&dev.component) else {
            continue;
        };
        for spec in &comp.keys {
            let Some((req, v6_key)) = spec.ipv6_needs.as_deref().and_then(|n| n.split_once('.'))
            else {
                continue;
            };
            let Some(setting) = dev.setting(&spec.name) else {
                continue;
            };
            let Scalar::Ip(addr) = setting.value else {
                continue;
            };
            let Some(b) = node.deps.iter().find(|b| b.key == req) else {
                continue;
            };
            let wire::NodeKind::Declared(sd) = wiring.nodes[b.node].kind else {
                continue;
            };
            let stack = &model.devices[sd];
            let Some(stack_comp) = catalog.component(&stack.component) else {
                continue;
            };
            out.push(OnStack {
                dev,
                spec,
                setting,
                addr,
                v6_key,
                stack,
                stack_comp,
            });
        }
    }
    out
}

/// An IPv4 address (`0.0.0.0` too) to listen on, given to a device whose stack has
/// `ipv4: Off`.
pub(crate) fn ipv4_on_v6_only_stacks(
    model: &model::Appliance,
    catalog: &Catalog,
    wiring: &wire::Wiring<'_>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for at in addresses_on_stacks(model, catalog, wiring) {
        let IpAddr::V4(addr) = at.addr else {
            continue;
        };
        let Some(v4) = ipv4_off(at.stack, at.stack_comp) else {
            continue;
        };
        let (dev, stack) = (at.dev, at.stack);
        let mut diag = Diagnostic::error(format!(
            "`{}.{}` is the IPv4 address {addr}, but `{}` has no IPv4 (`{v4}: {OFF}`)",
            dev.name, at.spec.name, stack.name
        ));
        diag = match at.setting.origin {
            Origin::Source(span) => diag.primary(span, "an IPv4 address"),
            _ => diag.primary(dev.component_span, "an IPv4 address by default"),
        };
        if let Some(Origin::Source(span)) = stack.setting(v4).map(|s| s.origin) {
            diag = diag.secondary(span, format!("`{}` is IPv6 only", stack.name));
        }
        out.push(diag.help(format!(
            "use `{}: \"::\"` (every IPv6 address of `{}`), or give `{}` IPv4 again",
            at.spec.name, stack.name, stack.name
        )));
    }
    out
}

/// An IPv6 address (`::`, `fd00::2`) given to a device whose stack has no IPv6: the
/// stack's IPv6 key must be set where it applies (`Network`'s `ipv6`, with `stack:
/// Direct`; the host's sockets take IPv6 as they are).
pub(crate) fn ipv6_on_ipv4_stacks(
    model: &model::Appliance,
    catalog: &Catalog,
    wiring: &wire::Wiring<'_>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for at in addresses_on_stacks(model, catalog, wiring) {
        let IpAddr::V6(addr) = at.addr else {
            continue;
        };
        let (dev, stack, key) = (at.dev, at.stack, at.v6_key);
        let Some(stack_key) = at.stack_comp.keys.iter().find(|k| k.name == key) else {
            continue;
        };
        let applies = stack_key.when.iter().all(|(k, v)| {
            stack
                .setting(k)
                .is_some_and(|s| s.value == Scalar::Choice(v.clone()))
        });
        let unset = stack.setting(key).is_none_or(|s| s.value == Scalar::Absent);
        if !applies || !unset {
            continue;
        }
        let mut diag = Diagnostic::error(format!(
            "`{}.{}` is the IPv6 address {addr}, but `{}` has no IPv6",
            dev.name, at.spec.name, stack.name
        ));
        diag = match at.setting.origin {
            Origin::Source(span) => diag.primary(span, "an IPv6 address"),
            _ => diag.primary(dev.component_span, "an IPv6 address by default"),
        };
        diag = diag.secondary(
            stack.component_span,
            format!("`{}` has no `{key}`", stack.name),
        );
        out.push(diag.help(format!(
            "give `{}` IPv6, e.g. `{key}: Some(Slaac)` or `{key}: Some(Static(\"fd00::2/64\"))`, or use an IPv4 address such as \"0.0.0.0\"",
            stack.name
        )));
    }
    out
}
