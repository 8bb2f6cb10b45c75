//! The reference of the appliance.ron format (`schemas/README.md`), generated from the
//! catalog so that it cannot drift from what the compiler accepts.

use crate::catalog::{Catalog, Code, FileDir, KeySpec, KeyType, Status, Target};
use crate::template;
use crate::value::{Kind, Value};

const TEMPLATE: &str = include_str!("../templates/reference.md.tmpl");

fn ron(v: &Value) -> String {
    match &v.kind {
        Kind::Str(s) => format!("{s:?}"),
        Kind::Int(i) => i.to_string(),
        Kind::Float(f) => format!("{f:?}"),
        Kind::Bool(b) => b.to_string(),
        Kind::Unit(i) => i.name.clone(),
        Kind::Map(m) if m.is_empty() => "{}".into(),
        Kind::List(l) if l.is_empty() => "[]".into(),
        _ => "…".into(),
    }
}

fn type_cell(ty: &KeyType) -> String {
    match ty {
        KeyType::Str => "string".into(),
        KeyType::Path => "string (Rust path)".into(),
        KeyType::Bool => "bool".into(),
        KeyType::Int { rust, min, max } => format!("integer `{min}..={max}` (`{rust}`)"),
        KeyType::Ipv4 => "string (IPv4 address, becomes `[u8; 4]`)".into(),
        KeyType::Ipv4Cidr { or } => {
            let mut s =
                String::from("string (IPv4 address `/` prefix length, a host of its subnet)");
            for v in or {
                s.push_str(&format!(" \\| `{v}`"));
            }
            s
        }
        KeyType::IfName => "string (network interface name, 1-15 bytes)".into(),
        KeyType::Mac => "string (MAC address, e.g. \"00:16:3e:00:00:02\")".into(),
        KeyType::Dir => "string (directory, must exist)".into(),
        KeyType::Choice(c) => c
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(" \\| "),
        KeyType::Target => "target variant".into(),
        KeyType::Config => "map".into(),
        KeyType::Devices => "map of devices".into(),
        KeyType::DeviceList => "list of device names".into(),
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn keys_table(keys: &[KeySpec], const_prefix: Option<&str>) -> String {
    let mut s = String::from("| key | type | default | meaning |\n|---|---|---|---|\n");
    for k in keys {
        let mut default = match &k.default {
            Some(d) => format!("`{}`", ron(d)),
            None if k.optional => "none".into(),
            None => "**required**".into(),
        };
        for (t, d) in &k.target_defaults {
            default.push_str(&format!("; `{}` on {t}", ron(d)));
        }
        let mut doc = cell(&k.doc);
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
        if k.as_const
            && let Some(p) = const_prefix
        {
            doc.push_str(&format!(
                " Becomes `config::{p}_{}: {}`.",
                k.name.to_ascii_uppercase(),
                k.ty.rust_type()
            ));
        }
        s.push_str(&format!(
            "| `{}` | {} | {default} | {doc} |\n",
            k.name,
            type_cell(&k.ty)
        ));
    }
    s.trim_end().to_string()
}

/// The reference text.
pub fn reference(cat: &Catalog) -> String {
    let appliance_keys = keys_table(&cat.appliance, None);

    let mut targets = String::new();
    for t in &cat.targets {
        targets.push_str(&format!(
            "### `{}` (`MORGANA_TARGET={}`)\n\n{}\n\n",
            t.variant, t.name, t.doc
        ));
        match &t.status {
            Status::Ready => {
                targets.push_str(&format!(
                    "- platform: `{}`, entry: `{}!`\n- crates: {}\n- link arguments: `{}`\n",
                    t.platform,
                    t.entry,
                    t.crates
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    link_args(t)
                ));
                for (var, krate) in &t.build_env {
                    targets.push_str(&format!(
                        "- `${var}` is set by the build script of `{krate}` for its direct dependents: the appliance's Cargo.toml must list `{krate}`\n"
                    ));
                }
                for (d, imp) in &t.devices {
                    targets.push_str(&format!("- `{d}`: `{}`\n", imp.ty));
                }
                for f in &t.files {
                    let dir = match f.dir {
                        FileDir::OutDir => "in `OUT_DIR`",
                        FileDir::Profile => "next to the binary (`target/<profile>/`)",
                    };
                    let name = template::render(&f.name, |n| Some(format!("<{n}>")))
                        .unwrap_or_else(|_| f.name.clone());
                    targets.push_str(&format!("- deployment file `{name}`, {dir}\n"));
                }
            }
            Status::Planned(why) => targets.push_str(&format!("Not available yet: {why}.\n")),
        }
        targets.push('\n');
    }

    let mut platform_devices = String::from("| name | provides | |\n|---|---|---|\n");
    for p in &cat.platform_devices {
        platform_devices.push_str(&format!(
            "| `{}` | {} | {} |\n",
            p.name,
            p.provides
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", "),
            cell(&p.doc)
        ));
    }

    let mut signatures = String::from("| signature | trait | |\n|---|---|---|\n");
    for s in &cat.signatures {
        signatures.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            s.name,
            s.trait_path,
            cell(&s.doc)
        ));
    }

    let mut components = String::new();
    for c in &cat.components {
        components.push_str(&format!("### `{}`\n\n{}\n\n", c.name, c.doc));
        let provides = if c.provides.is_empty() {
            "nothing (it is handed to `main`)".to_string()
        } else {
            c.provides
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        components.push_str(&format!("Provides: {provides}.\n\n"));
        if !c.requires.is_empty() {
            components.push_str("Requires (the key names a device; without it, the only device providing the signature is used):\n\n| key | signature | meaning |\n|---|---|---|\n");
            for r in &c.requires {
                let mut doc = cell(&r.doc);
                if !r.when.is_empty() {
                    let conds: Vec<String> =
                        r.when.iter().map(|(k, v)| format!("`{k}: {v}`")).collect();
                    doc.push_str(&format!(" Only with {}.", conds.join(", ")));
                }
                components.push_str(&format!("| `{}` | `{}` | {doc} |\n", r.key, r.signature));
            }
            components.push('\n');
        }
        if !c.keys.is_empty() {
            components.push_str("Keys (`<DEVICE>` is the device name in upper case):\n\n");
            components.push_str(&keys_table(&c.keys, Some("<DEVICE>")));
            components.push_str("\n\n");
        }
        components.push_str("| target | when | implementation |\n|---|---|---|\n");
        for imp in &c.impls {
            let targets = if imp.target_specific() {
                imp.targets.join(", ")
            } else {
                "all".into()
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
            let what = match &imp.code {
                Code::Connect { ty, .. } => format!("`{}`", cell(&strip(ty))),
                Code::Static { ty, .. } => format!("`static` `{}`", cell(&strip(ty))),
                Code::Planned(why) => format!("not available yet: {}", cell(why)),
                Code::Unsupported(why) => format!("not available: {}", cell(why)),
            };
            components.push_str(&format!("| {targets} | {when} | {what} |\n"));
        }
        components.push('\n');
    }

    let out = template::render(TEMPLATE, |k| {
        Some(match k {
            "appliance_keys" => appliance_keys.clone(),
            "targets" => targets.trim_end().to_string(),
            "platform_devices" => platform_devices.trim_end().to_string(),
            "signatures" => signatures.trim_end().to_string(),
            "components" => components.trim_end().to_string(),
            _ => return None,
        })
    });
    out.unwrap_or_else(|e| format!("reference template error: {e}\n"))
}

/// A target's link arguments, a build-time variable shown as `$VAR`.
pub(crate) fn link_args(t: &Target) -> String {
    t.link_args
        .iter()
        .map(|a| {
            template::render(a, |n| {
                Some(format!("${}", n.strip_prefix("env.").unwrap_or(n)))
            })
            .unwrap_or_else(|_| a.clone())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A type template with placeholders shown by name.
fn strip(ty: &str) -> String {
    template::render(ty, |n| Some(n.to_string())).unwrap_or_else(|_| ty.to_string())
}
