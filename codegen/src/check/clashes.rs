//! Names the generated code would define twice: config constants, `prepare` variables,
//! type aliases against `main`, statics of compiled data.

use crate::catalog::Catalog;
use crate::diag::{Diagnostic, Span};
use crate::model::{Appliance, Device};
use crate::names;

/// Generated names that would clash: config constants, variables, and type aliases vs
/// `main`.
pub(crate) fn collisions(a: &Appliance, cat: &Catalog, errs: &mut Vec<Diagnostic>) {
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
    // A static holding a device's compiled archive: `<DEVICE>_ARCHIVE`.
    for d in &a.devices {
        let archive = crate::archive::static_name(&d.name);
        if let Some(other) = a
            .devices
            .iter()
            .find(|o| names::screaming(&o.name) == archive)
        {
            let built = cat.component(&d.component).is_some_and(|c| {
                c.impls.iter().any(|i| {
                    i.build.as_ref().is_some_and(|b| {
                        crate::archive::form_of(&b.compiler) == Some(crate::archive::Form::Archive)
                    })
                })
            });
            if built {
                errs.push(
                    Diagnostic::error(format!(
                        "device `{}` clashes with the compiled data of device `{}`",
                        other.name, d.name
                    ))
                    .primary(other.name_span, format!("becomes `{archive}`"))
                    .secondary(d.name_span, format!("its data is the static `{archive}`"))
                    .help("rename one of the devices"),
                );
            }
        }
    }
}
