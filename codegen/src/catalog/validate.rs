//! Consistency of a decoded catalog: names refer to things that exist, defaults have
//! their key's type, conditions name choice keys and their variants, and every template
//! renders (with stand-ins for the values) and parses as the Rust it stands for.

use minijinja::Value;

use crate::catalog::load::{Finding, Step};
use crate::catalog::{
    Catalog, Code, Component, FILE_VARIABLES, Impl, KeySpec, KeyType, Status, Target,
};
use crate::catalog_path;
use crate::templates::{self, Placeholder};

/// Checks `cat`; problems go to `findings`.
pub fn validate(cat: &Catalog, findings: &mut Vec<Finding>) {
    let env = templates::environment();
    for p in &cat.platform_devices {
        for s in &p.provides {
            if cat.signature(s).is_none() {
                findings.push(Finding::new(
                    catalog_path!["platform_devices", &p.name, "provides"],
                    format!(
                        "platform device `{}` provides unknown signature `{s}`",
                        p.name
                    ),
                ));
            }
        }
    }
    for t in &cat.targets {
        validate_target(cat, t, env, findings);
    }
    for c in &cat.components {
        validate_component(cat, c, env, findings);
    }
    for k in &cat.appliance {
        let at = catalog_path!["appliance", &k.name];
        let top_level_type = matches!(
            k.ty,
            KeyType::Target
                | KeyType::Config
                | KeyType::Devices
                | KeyType::DeviceList
                | KeyType::BootKeys
        );
        if let Some(d) = &k.default
            && !top_level_type
            && let Err(e) = crate::check::default_ok(&k.ty, &d.value)
        {
            findings.push(Finding::new(
                at.clone(),
                format!("default of `{}`: {e}", k.name),
            ));
        }
        if k.boot || k.boot_name.is_some() {
            findings.push(Finding::new(
                at.clone(),
                format!(
                    "top-level key `{}`: `boot` and `boot_name` are for component keys",
                    k.name
                ),
            ));
        }
        if !k.when.is_empty() || !k.targets.is_empty() || !k.target_defaults.is_empty() {
            findings.push(Finding::new(
                at,
                format!(
                    "top-level key `{}`: `when`, `targets` and `target_defaults` are for component keys",
                    k.name
                ),
            ));
        }
    }
}

/// Why a key cannot be read at boot as the catalog says, if it cannot.
fn boot_problem(k: &KeySpec) -> Option<String> {
    if (k.boot_name.is_some() || k.boot_doc.is_some()) && !k.boot {
        return Some("`boot_name` and `boot_doc` need `boot: true`".into());
    }
    if let Some(word) = &k.boot_name
        && !crate::boot::is_word(word)
    {
        return Some(format!(
            "boot name `{word}`: use lower-case letters, digits and single `-`, starting with a letter"
        ));
    }
    if !k.boot {
        return None;
    }
    let parsed = match &k.ty {
        KeyType::Int { min, .. } => *min >= 0,
        KeyType::Ipv4 => true,
        KeyType::Ipv4Cidr { .. } => !k.optional,
        _ => false,
    };
    if !parsed {
        return Some(format!(
            "`boot: true` on {}{}: morgana-boot-args reads integers (from 0 up), IPv4 addresses (optional too) and IPv4 addresses with a prefix length",
            if k.optional { "an optional " } else { "" },
            k.ty.describe()
        ));
    }
    None
}

/// A context of stand-ins: each name renders as itself.
fn stand_ins<'a>(names: impl IntoIterator<Item = &'a str>) -> Value {
    let map: std::collections::BTreeMap<String, Value> = names
        .into_iter()
        .map(|n| {
            (
                n.to_string(),
                Value::from_object(Placeholder(n.to_string())),
            )
        })
        .collect();
    Value::from(map)
}

/// [`stand_ins`] for a component's `connect`, `prepare`, `claims` and `deploy`
/// templates, with `instance` (a number: the device's position among those of its
/// component) as 0.
fn device_stand_ins<'a>(names: impl IntoIterator<Item = &'a str>) -> Value {
    let mut map: std::collections::BTreeMap<String, Value> = names
        .into_iter()
        .map(|n| {
            (
                n.to_string(),
                Value::from_object(Placeholder(n.to_string())),
            )
        })
        .collect();
    map.insert("instance".into(), Value::from(0));
    Value::from(map)
}

/// What a template must parse as once rendered.
#[derive(Clone, Copy)]
enum Shape {
    Type,
    Expr,
    Text,
}

fn check_template(
    env: &minijinja::Environment<'_>,
    text: &str,
    ctx: Value,
    shape: Shape,
) -> Result<(), String> {
    let out = templates::render_inline(env, "catalog template", text, ctx)?;
    match shape {
        Shape::Type => syn::parse_str::<syn::Type>(&out)
            .map(drop)
            .map_err(|e| format!("`{out}` is not a Rust type: {e}")),
        Shape::Expr => syn::parse_str::<syn::Expr>(&out)
            .map(drop)
            .map_err(|e| format!("`{out}` is not a Rust expression: {e}")),
        Shape::Text => Ok(()),
    }
}

fn validate_target(
    cat: &Catalog,
    t: &Target,
    env: &minijinja::Environment<'_>,
    findings: &mut Vec<Finding>,
) {
    let at = |rest: &[Step]| {
        let mut p = catalog_path!["targets", &t.name];
        p.extend_from_slice(rest);
        p
    };
    let err =
        |rest: &[Step], msg: String| Finding::new(at(rest), format!("target `{}`: {msg}", t.name));
    for f in &t.files {
        let here = [Step::from("files"), Step::from(&f.name)];
        let mut names: Vec<&str> = FILE_VARIABLES.to_vec();
        if let Err(e) = check_template(env, &f.name, stand_ins(names.iter().copied()), Shape::Text)
        {
            findings.push(err(&here, format!("file name `{}`: {e}", f.name)));
        }
        if !templates::exists(&f.template) {
            findings.push(err(
                &here,
                format!(
                    "file `{}`: no template `{}` in schemas/templates/",
                    f.name, f.template
                ),
            ));
            continue;
        }
        names.push("deploy");
        if let Err(e) = templates::render(env, &f.template, stand_ins(names)) {
            findings.push(err(&here, format!("file `{}`: {e}", f.name)));
        }
    }
    for (var, krate) in &t.build_env {
        if !t.crates.contains(krate) {
            findings.push(err(
                &[Step::from("build_env")],
                format!(
                    "`build_env` variable `{var}` comes from `{krate}`, which is not in `crates`"
                ),
            ));
        }
    }
    let env_vars: std::collections::BTreeMap<&str, &str> =
        t.build_env.iter().map(|(v, _)| (v.as_str(), "x")).collect();
    for arg in &t.link_args {
        let ctx = minijinja::context! { env => env_vars.clone() };
        if let Err(e) = check_template(env, arg, ctx, Shape::Text) {
            findings.push(
                err(&[Step::from("link_args")], format!("link argument `{arg}`: {e}"))
                    .help("a link argument may use `{{ env.<VAR> }}` for a variable listed in `build_env`"),
            );
        }
    }
    if t.status != Status::Ready {
        return;
    }
    let missing = |what: &str| err(&[], format!("a ready target needs `{what}`"));
    if t.platform.is_empty() {
        findings.push(missing("platform"));
    }
    match &t.boot_words {
        None => findings.push(missing("boot_words")),
        Some(b) => {
            let here = [Step::from("boot_words")];
            if let Err(e) = check_template(env, &b.words, stand_ins(["platform"]), Shape::Expr) {
                findings.push(err(&here, format!("boot words: {e}")));
            }
        }
    }
    if t.entry.is_empty() {
        findings.push(missing("entry"));
    }
    for p in &cat.platform_devices {
        match t.devices.iter().find(|(n, _)| *n == p.name) {
            None => findings.push(missing(&format!("devices.{}", p.name))),
            Some((_, imp)) => {
                let here = [Step::from("devices"), Step::from(&p.name)];
                if let Err(e) = check_template(env, &imp.expr, stand_ins(["platform"]), Shape::Expr)
                {
                    findings.push(err(&here, format!("device `{}`: {e}", p.name)));
                }
                if let Err(e) = check_template(env, &imp.ty, stand_ins([]), Shape::Type) {
                    findings.push(err(&here, format!("device `{}`: {e}", p.name)));
                }
            }
        }
    }
    for (n, _) in &t.devices {
        if cat.platform_device(n).is_none() {
            findings.push(err(
                &[Step::from("devices"), Step::from(n)],
                format!("implements unknown platform device `{n}`"),
            ));
        }
    }
}

/// Whether `key: variant` names a choice key of `c` (or an address key's identifier)
/// and one of its variants; for keys and requirements the key must itself be
/// unconditional.
fn condition_on(c: &Component, key: &str, variant: &str, conditional_ok: bool) -> bool {
    c.keys.iter().any(|k| {
        k.name == key
            && (conditional_ok || k.when.is_empty())
            && match &k.ty {
                KeyType::Choice(v) | KeyType::Ipv4Cidr { or: v } | KeyType::Ipv6Cidr { or: v } => {
                    v.iter().any(|x| x == variant)
                }
                _ => false,
            }
    })
}

fn validate_component(
    cat: &Catalog,
    c: &Component,
    env: &minijinja::Environment<'_>,
    findings: &mut Vec<Finding>,
) {
    let at = |rest: &[Step]| {
        let mut p = catalog_path!["components", &c.name];
        p.extend_from_slice(rest);
        p
    };
    let err = |rest: &[Step], msg: String| Finding::new(at(rest), format!("`{}`: {msg}", c.name));
    for s in &c.provides {
        if cat.signature(s).is_none() {
            findings.push(err(
                &[Step::from("provides")],
                format!("provides unknown signature `{s}`"),
            ));
        }
    }
    for r in &c.requires {
        let here = [Step::from("requires"), Step::from(&r.name)];
        if cat.signature(&r.signature).is_none() {
            findings.push(err(
                &here,
                format!("requires unknown signature `{}`", r.signature),
            ));
        }
        if c.keys.iter().any(|k| k.name == r.name) {
            findings.push(err(
                &here,
                format!("`{}` is both a requirement and a key", r.name),
            ));
        }
        for (key, variant) in &r.when {
            if !condition_on(c, key, variant, false) {
                findings.push(err(&here, format!(
                    "requirement `{}`: `when: {{\"{key}\": {variant}}}` does not name a choice key and one of its variants",
                    r.name
                )));
            }
        }
    }
    for k in &c.keys {
        validate_key(cat, c, k, &err, findings);
    }
    for (i, imp) in c.impls.iter().enumerate() {
        validate_impl(cat, c, i, imp, env, &err, findings);
        for f in &imp.features {
            let here = [Step::from("impls"), Step::Index(i), Step::from("features")];
            let ok = match (&f.used, &f.set) {
                (Some(s), None) => c.provides.contains(s),
                (None, Some(k)) => c.keys.iter().any(|key| &key.name == k && key.optional),
                (None, None) => true,
                (Some(_), Some(_)) => false,
            };
            if !ok {
                findings.push(err(&here, format!(
                    "feature `{}/{}`: give `used` (a signature the component provides), `set` (one of its optional keys), or neither (always needed by this implementation)",
                    f.krate, f.feature
                )));
            }
            if !imp.crates.contains(&f.krate) {
                findings.push(err(
                    &here,
                    format!(
                        "feature `{}/{}`: the crate is not among the implementation's `crates`",
                        f.krate, f.feature
                    ),
                ));
            }
        }
    }
}

fn validate_key(
    cat: &Catalog,
    c: &Component,
    k: &KeySpec,
    err: &dyn Fn(&[Step], String) -> Finding,
    findings: &mut Vec<Finding>,
) {
    let here = [Step::from("keys"), Step::from(&k.name)];
    let mut push = |msg: String| findings.push(err(&here, msg));
    if matches!(
        k.ty,
        KeyType::Target
            | KeyType::Config
            | KeyType::Devices
            | KeyType::DeviceList
            | KeyType::BootKeys
    ) {
        push(format!("key `{}` has a top-level-only type", k.name));
    }
    if let Some(msg) = boot_problem(k) {
        push(format!("key `{}`: {msg}", k.name));
    }
    if let KeyType::Int { rust, min, max, .. } = &k.ty {
        match crate::syntax::number::IntType::of_rust(rust) {
            None => push(format!("key `{}`: `{rust}` is not an integer type", k.name)),
            Some(t) => {
                let (lo, hi) = t.range();
                if i128::from(*min) < lo || i128::from(*max) > hi || min > max {
                    push(format!(
                        "key `{}`: {min}..={max} does not fit in `{rust}`",
                        k.name
                    ));
                }
            }
        }
    }
    if let Some(d) = &k.default
        && let Err(e) = crate::check::default_ok(&k.ty, &d.value)
    {
        push(format!("default of `{}`: {e}", k.name));
    }
    for (t, d) in &k.target_defaults {
        if cat.target(t).is_none() {
            push(format!(
                "key `{}`: default for unknown target `{t}`",
                k.name
            ));
        }
        if let Err(e) = crate::check::default_ok(&k.ty, &d.value) {
            push(format!("default of `{}` on {t}: {e}", k.name));
        }
    }
    if k.optional && (k.default.is_some() || !k.target_defaults.is_empty()) {
        push(format!(
            "key `{}` is `optional` and has a default: choose one",
            k.name
        ));
    }
    for t in &k.targets {
        if cat.target(t).is_none() {
            push(format!("key `{}`: unknown target `{t}`", k.name));
        }
    }
    for (key, variant) in &k.when {
        if !condition_on(c, key, variant, false) {
            push(format!(
                "key `{}`: `when: {{\"{key}\": {variant}}}` does not name a choice key and one of its variants",
                k.name
            ));
        }
    }
    if let Some(w) = &k.within {
        let ok = k.ty == KeyType::Ipv4
            && c.keys
                .iter()
                .any(|o| &o.name == w && matches!(o.ty, KeyType::Ipv4Cidr { .. }))
            || k.ty == KeyType::Ipv6
                && c.keys
                    .iter()
                    .any(|o| &o.name == w && matches!(o.ty, KeyType::Ipv6Cidr { .. }));
        if !ok {
            push(format!(
                "key `{}`: `within` relates an address key to an address-with-prefix key of the same component",
                k.name
            ));
        }
    }
}

/// The variables a component's templates see: in code (`in_code`) `config.<key>` for
/// constants and `<key>` otherwise; in deployment slots and claims every `<key>`.
pub(crate) fn key_variables(keys: &[KeySpec], in_code: bool) -> Vec<String> {
    keys.iter()
        .filter(|k| !(in_code && k.as_const))
        .map(|k| k.name.clone())
        .collect()
}

fn validate_impl(
    cat: &Catalog,
    c: &Component,
    i: usize,
    imp: &Impl,
    env: &minijinja::Environment<'_>,
    err: &dyn Fn(&[Step], String) -> Finding,
    findings: &mut Vec<Finding>,
) {
    let here = [Step::from("impls"), Step::from(i)];
    let mut push = |msg: String| findings.push(err(&here, msg));
    for t in &imp.targets {
        if t != "*" && cat.target(t).is_none() {
            push(format!("implementation for unknown target `{t}`"));
        }
    }
    for (key, variant) in &imp.when {
        if !condition_on(c, key, variant, true) {
            push(format!(
                "`when: {{\"{key}\": {variant}}}` does not name a choice key and one of its variants"
            ));
        }
    }
    if let Some(b) = &imp.build {
        if crate::archive::feature_of(&b.compiler).is_none() {
            push(format!(
                "build step: no compiler `{}` (compilers: {})",
                b.compiler,
                crate::archive::compiler_names().join(", ")
            ));
        }
        if !c
            .keys
            .iter()
            .any(|k| k.name == b.input && matches!(k.ty, KeyType::File | KeyType::Files))
        {
            push(format!(
                "build step: `input: \"{}\"` must name a `File` or `Files` key",
                b.input
            ));
        }
        if let Some(names) = &b.names
            && !c
                .keys
                .iter()
                .any(|k| &k.name == names && matches!(k.ty, KeyType::Strs))
        {
            push(format!(
                "build step: `names: \"{names}\"` must name a `Strs` key"
            ));
        }
    }
    let reqs: Vec<&str> = c.requires.iter().map(|r| r.name.as_str()).collect();
    let mut values: Vec<String> = vec!["Self".into(), "platform".into(), "target".into()];
    if let Some(form) = imp
        .build
        .as_ref()
        .and_then(|b| crate::archive::form_of(&b.compiler))
    {
        values.push(form.variable().into());
    }
    values.extend(reqs.iter().map(|s| s.to_string()));
    values.extend(key_variables(&c.keys, true));
    let consts: std::collections::BTreeMap<String, Value> = c
        .keys
        .iter()
        .filter(|k| k.as_const)
        .map(|k| {
            (
                k.name.clone(),
                Value::from_object(Placeholder(format!("config.{}", k.name))),
            )
        })
        .collect();
    let ctx = |names: &[String]| {
        let mut map: std::collections::BTreeMap<String, Value> = names
            .iter()
            .map(|n| (n.clone(), Value::from_object(Placeholder(n.clone()))))
            .collect();
        map.insert("config".into(), Value::from(consts.clone()));
        map.insert("instance".into(), Value::from(0));
        Value::from(map)
    };
    let mut type_names: Vec<String> = reqs.iter().map(|s| s.to_string()).collect();
    type_names.push("target".into());
    // A choice's identifier may pick a type parameter.
    type_names.extend(
        c.keys
            .iter()
            .filter(|k| matches!(k.ty, KeyType::Choice(_)))
            .map(|k| k.name.clone()),
    );
    match &imp.code {
        Code::Connect {
            ty,
            prepare,
            connect,
        } => {
            if let Err(e) = check_template(
                env,
                ty,
                stand_ins(type_names.iter().map(String::as_str)),
                Shape::Type,
            ) {
                push(format!("`type`: {e}"));
            }
            for (step, text) in prepare {
                if values.iter().any(|v| v == step) || !crate::names::is_snake(step) {
                    push(format!(
                        "`prepare` step `{step}` must be a lower-case identifier that is not a key or requirement"
                    ));
                }
                if let Err(e) = check_template(env, text, ctx(&values), Shape::Expr) {
                    push(format!("`prepare` step `{step}`: {e}"));
                }
                values.push(step.clone());
            }
            if let Err(e) = check_template(env, connect, ctx(&values), Shape::Expr) {
                push(format!("`connect`: {e}"));
            }
        }
        Code::Static { ty, init } => {
            if let Err(e) = check_template(
                env,
                ty,
                stand_ins(type_names.iter().map(String::as_str)),
                Shape::Type,
            ) {
                push(format!("`type`: {e}"));
            }
            if let Err(e) = check_template(env, init, ctx(&values), Shape::Expr) {
                push(format!("`init`: {e}"));
            }
        }
        Code::Planned(_) | Code::Unsupported(_) => {}
    }
    let plain = key_variables(&c.keys, false);
    if let Err(e) = check_template(
        env,
        &imp.claims,
        device_stand_ins(plain.iter().map(String::as_str)),
        Shape::Text,
    ) {
        push(format!("`claims`: {e}"));
    }
    for (slot, text) in &imp.deploy {
        if !crate::names::is_snake(slot) {
            push(format!(
                "deploy slot `{slot}` must be a lower-case identifier"
            ));
        }
        let mut names: Vec<&str> = plain.iter().map(String::as_str).collect();
        names.push("deploy");
        names.push("requires");
        names.push("boot_words");
        if let Err(e) = check_template(env, text, device_stand_ins(names), Shape::Text) {
            push(format!("deploy slot `{slot}`: {e}"));
        }
    }
}
