//! The reference of the appliance.ron format (`schemas/README.md`), generated from the
//! catalog so that it cannot drift from what the compiler accepts: the catalog's
//! entries become rows and sections, laid out by `templates/reference.md.jinja`.

use std::collections::BTreeMap;

use minijinja::{Value, context};

use crate::catalog::{Catalog, Code, FileDir, Impl, KeySpec, KeyType, Status, Target};
use crate::syntax::parser::EXTENSIONS;
use crate::templates;

/// A value as written in appliance.ron, for a table cell.
fn ron(text: &str) -> String {
    if text.len() > 40 {
        "…".into()
    } else {
        text.to_string()
    }
}

fn type_cell(ty: &KeyType) -> String {
    match ty {
        KeyType::Str => "string".into(),
        KeyType::Path => "string (Rust path)".into(),
        KeyType::Bool => "bool".into(),
        KeyType::Int {
            rust,
            min,
            max,
            unit,
        } => {
            let unit = unit.as_ref().map(|u| format!(", {u}")).unwrap_or_default();
            format!("integer `{min}..={max}` (`{rust}`{unit})")
        }
        KeyType::Ipv4 => "string (IPv4 address, becomes `[u8; 4]`)".into(),
        KeyType::Ip => "string (IPv4 or IPv6 address, becomes `core::net::IpAddr`)".into(),
        KeyType::Ipv6 => "string (IPv6 address, becomes `[u8; 16]`)".into(),
        KeyType::Ipv4Cidr { or } | KeyType::Ipv6Cidr { or } => {
            let v = if matches!(ty, KeyType::Ipv4Cidr { .. }) {
                "IPv4"
            } else {
                "IPv6"
            };
            if or.is_empty() {
                format!("string ({v} address `/` prefix length, a host of its subnet)")
            } else {
                let mut s = format!(
                    "`Static(\"..\")` ({v} address `/` prefix length, a host of its subnet)"
                );
                for v in or {
                    s.push_str(&format!(" \\| `{v}`"));
                }
                s
            }
        }
        KeyType::IfName => "string (network interface name, 1-15 bytes)".into(),
        KeyType::Mac => "string (MAC address, e.g. \"00:16:3e:00:00:02\")".into(),
        KeyType::Dir => "string (directory, must exist)".into(),
        KeyType::File => "string (file, must exist)".into(),
        KeyType::Files => "list of strings (files, must exist)".into(),
        KeyType::Strs => "list of strings".into(),
        KeyType::Choice(c) => c
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(" \\| "),
        KeyType::Target => "target variant".into(),
        KeyType::Config => "map".into(),
        KeyType::Devices => "map of devices".into(),
        KeyType::DeviceList => "list of device names".into(),
        KeyType::BootKeys => "list of device keys".into(),
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The rows of a keys table: `key`, `ty`, `default` and `doc` each.
fn key_rows(keys: &[KeySpec], const_prefix: Option<&str>) -> Vec<Value> {
    let mut rows = Vec::new();
    for k in keys {
        let mut default = match &k.default {
            Some(d) => format!("`{}`", ron(&d.text)),
            None if k.optional => "`None`".into(),
            None => "**required**".into(),
        };
        for (t, d) in &k.target_defaults {
            default.push_str(&format!("; `{}` on {t}", ron(&d.text)));
        }
        let mut doc = cell(&k.doc);
        if k.optional {
            doc.push_str(" Optional: `Some(..)` or `None`.");
        }
        if !k.when.is_empty() {
            let conds: Vec<String> = k.when.iter().map(|(c, v)| format!("`{c}: {v}`")).collect();
            doc.push_str(&format!(" Only with {}.", conds.join(", ")));
        }
        if !k.targets.is_empty() {
            doc.push_str(&format!(
                " Used on {} only (ignored elsewhere).",
                k.targets.join(", ")
            ));
        }
        if let Some(w) = &k.within {
            doc.push_str(&format!(" Must be inside the subnet of `{w}`."));
        }
        if k.boot {
            doc.push_str(&format!(
                " Can be read at boot (`boot: [\"<device>.{}\"]`): `--{}=..`.",
                k.name,
                k.boot_name
                    .clone()
                    .unwrap_or_else(|| k.name.replace('_', "-"))
            ));
        }
        if k.as_const
            && let Some(p) = const_prefix
        {
            doc.push_str(&format!(
                " Becomes `config::{p}_{}: {}`.",
                k.name.to_ascii_uppercase(),
                k.ty.rust_type()
            ));
        }
        rows.push(context! {
            key => k.name.clone(),
            ty => type_cell(&k.ty),
            default => default,
            doc => doc,
        });
    }
    rows
}

/// A target's link arguments, a build-time variable shown as `$VAR`.
pub(crate) fn link_args(t: &Target) -> String {
    t.link_args
        .iter()
        .map(|a| link_arg_shown(a, &t.build_env))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A link argument with its build-time variables shown as `$VAR`.
pub(crate) fn link_arg_shown(arg: &str, build_env: &[(String, String)]) -> String {
    let env = templates::environment();
    let vars: BTreeMap<&str, String> = build_env
        .iter()
        .map(|(v, _)| (v.as_str(), format!("${v}")))
        .collect();
    templates::render_inline(env, "link argument", arg, context! { env => vars })
        .unwrap_or_else(|_| arg.to_string())
}

/// A type template shown with its variables by name (`morgana_http::Server<net, clock>`).
fn shown_type(ty: &str) -> String {
    let mut out = ty.to_string();
    while let Some(start) = out.find("{{") {
        let Some(end) = out[start..].find("}}") else {
            break;
        };
        let name = out[start + 2..start + end].trim().to_string();
        out.replace_range(start..start + end + 2, &name);
    }
    out
}

/// A row of a component's implementations table (target, when, what); `on`: the one
/// target the row is for, when the type depends on it.
fn impl_row(imp: &Impl, on: Option<&str>) -> (String, String, String) {
    let targets = match on {
        Some(t) => t.to_string(),
        None if imp.target_specific() => imp.targets.join(", "),
        None => "all".into(),
    };
    let when = if imp.when.is_empty() {
        "always".to_string()
    } else {
        imp.when
            .iter()
            .map(|(k, v)| format!("`{k}: {v}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ty_on = |ty: &str| {
        let shown = shown_type(ty);
        match on {
            Some(t) => minijinja::Environment::new()
                .render_str(&shown, context! { target => t })
                .unwrap_or(shown),
            None => shown,
        }
    };
    let mut what = match &imp.code {
        Code::Connect { ty, .. } => format!("`{}`", cell(&ty_on(ty))),
        Code::Static { ty, .. } => format!("`static` `{}`", cell(&ty_on(ty))),
        Code::Planned(why) => format!("not available yet: {}", cell(why)),
        Code::Unsupported(why) => format!("not available: {}", cell(why)),
    };
    if let Some(b) = &imp.build {
        what.push_str(&format!(
            "; `{}` compiled at build time by the `{}` compiler",
            b.input, b.compiler
        ));
    }
    (targets, when, what)
}

fn target_section(t: &Target) -> Value {
    let ready = t.status == Status::Ready;
    let why = match &t.status {
        Status::Planned(why) => why.clone(),
        Status::Ready => String::new(),
    };
    let files: Vec<(String, &str)> = t
        .files
        .iter()
        .map(|f| {
            let dir = match f.dir {
                FileDir::OutDir => "in `OUT_DIR`",
                FileDir::Profile => "next to the binary (`target/<profile>/`)",
            };
            (f.name.replace("{{ ", "<").replace(" }}", ">"), dir)
        })
        .collect();
    context! {
        variant => &t.variant,
        name => &t.name,
        doc => &t.doc,
        ready => ready,
        why => why,
        platform => &t.platform,
        entry => &t.entry,
        crates => t.crates.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
        link_args => link_args(t),
        build_env => &t.build_env,
        devices => t.devices.iter().map(|(d, imp)| (d.clone(), imp.ty.clone())).collect::<Vec<_>>(),
        files => files,
    }
}

fn component_section(c: &crate::catalog::Component) -> Value {
    let provides = if c.provides.is_empty() {
        "nothing (it is handed to `main`)".to_string()
    } else {
        c.provides
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let requires: Vec<(String, String, String)> = c
        .requires
        .iter()
        .map(|r| {
            let mut doc = cell(&r.doc);
            if !r.when.is_empty() {
                let conds: Vec<String> =
                    r.when.iter().map(|(k, v)| format!("`{k}: {v}`")).collect();
                doc.push_str(&format!(" Only with {}.", conds.join(", ")));
            }
            (r.name.clone(), r.signature.clone(), doc)
        })
        .collect();
    let impls: Vec<(String, String, String)> = c
        .impls
        .iter()
        .flat_map(|imp| {
            // A type that depends on the target (`{% if target == .. %}`) gets a row per
            // target, as it is there.
            let per_target = match &imp.code {
                Code::Connect { ty, .. } | Code::Static { ty, .. } => {
                    ty.contains("{%") && imp.target_specific()
                }
                _ => false,
            };
            let rows: Vec<Option<&str>> = if per_target {
                imp.targets.iter().map(|t| Some(t.as_str())).collect()
            } else {
                vec![None]
            };
            rows.into_iter().map(move |on| impl_row(imp, on))
        })
        .collect();
    context! {
        name => &c.name,
        doc => &c.doc,
        provides => provides,
        requires => requires,
        keys => key_rows(&c.keys, Some("<DEVICE>")),
        impls => impls,
    }
}

/// The reference text.
pub fn reference(cat: &Catalog) -> String {
    let env = templates::environment();
    let ctx = context! {
        appliance_keys => key_rows(&cat.appliance, None),
        targets => cat.targets.iter().map(target_section).collect::<Vec<_>>(),
        platform_devices => cat.platform_devices.iter().map(|p| {
            (p.name.clone(), p.provides.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "), cell(&p.doc))
        }).collect::<Vec<_>>(),
        signatures => cat.signatures.iter().map(|s| (s.name.clone(), s.trait_path.clone(), cell(&s.doc))).collect::<Vec<_>>(),
        components => cat.components.iter().map(component_section).collect::<Vec<_>>(),
        extensions => EXTENSIONS.to_vec(),
        compilers => crate::archive::compiler_names(),
    };
    templates::render(env, "reference.md.jinja", ctx)
        .unwrap_or_else(|e| format!("reference template error: {e}\n"))
}
