//! The component catalog (`schemas/catalog.ron`) as typed data, decoded with spans so
//! that a mistake in the catalog is reported like a mistake in an appliance.

use crate::diag::{Diagnostic, Diagnostics, SourceFile, SourceMap, Span};
use crate::parse;
use crate::template;
use crate::value::{Kind, Struct, Value};

/// The catalog shipped in `schemas/catalog.ron`.
pub const BUILTIN_PATH: &str = "schemas/catalog.ron";
/// Its text, embedded when morgana-codegen is compiled.
pub const BUILTIN_SOURCE: &str = include_str!("../../schemas/catalog.ron");

/// Everything appliance.ron may say, and what it becomes per target.
#[derive(Clone, Debug)]
pub struct Catalog {
    /// Module signatures, in catalog order.
    pub signatures: Vec<Signature>,
    /// The keys of the top-level `Appliance(..)`.
    pub appliance: Vec<KeySpec>,
    /// Devices every platform provides, under reserved names.
    pub platform_devices: Vec<PlatformDevice>,
    /// Targets.
    pub targets: Vec<Target>,
    /// Components.
    pub components: Vec<Component>,
    /// The catalog's sources (for diagnostics about catalog entries).
    pub sources: SourceMap,
}

/// A module signature: a trait in morgana-signatures.
#[derive(Clone, Debug)]
pub struct Signature {
    /// Catalog name, e.g. `tcp`.
    pub name: String,
    /// Rust path of the trait.
    pub trait_path: String,
    /// One sentence.
    pub doc: String,
}

/// A key of a struct in appliance.ron: a top-level key or a component's config key.
#[derive(Clone, Debug)]
pub struct KeySpec {
    /// The key.
    pub name: String,
    /// Its type.
    pub ty: KeyType,
    /// Its default; `None` means the key is required (unless `optional`).
    pub default: Option<Value>,
    /// Defaults that differ per target: (target name, value); they win over `default`.
    pub target_defaults: Vec<(String, Value)>,
    /// Whether the key may be left out without a default: then it has no value (`None`
    /// in templates and constants, `Some(..)` when written).
    pub optional: bool,
    /// The key exists only when these choice keys of the same component have these
    /// variants: (key, variant). Written otherwise, it is an error.
    pub when: Vec<(String, String)>,
    /// The targets the key means something on (empty: all). On other targets a written
    /// value is ignored (the report says so), so one file can serve every target.
    pub targets: Vec<String>,
    /// For an `Ipv4` key: the `Ipv4Cidr` key of the same component whose subnet the
    /// address must be inside (a gateway).
    pub within: Option<String>,
    /// Whether the value becomes a `pub const` in the generated `config` module.
    pub as_const: bool,
    /// One paragraph.
    pub doc: String,
    /// Where the key is declared in the catalog.
    pub span: Span,
}

impl KeySpec {
    /// The default on `target`: a target-specific one if there is, else the general one;
    /// with whether it is target-specific.
    pub fn default_for(&self, target: Option<&str>) -> Option<(&Value, bool)> {
        target
            .and_then(|t| self.target_defaults.iter().find(|(n, _)| n == t))
            .map(|(_, v)| (v, true))
            .or_else(|| self.default.as_ref().map(|v| (v, false)))
    }

    /// Whether leaving the key out is an error.
    pub fn required(&self) -> bool {
        self.default.is_none() && !self.optional
    }

    /// Whether the key means something on `target`.
    pub fn applies_to(&self, target: &str) -> bool {
        self.targets.is_empty() || self.targets.iter().any(|t| t == target)
    }
}

/// The type of a key.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyType {
    /// A string.
    Str,
    /// A Rust path (`Website`, `app::Website`), written as a string.
    Path,
    /// `true` / `false`.
    Bool,
    /// An integer in `min..=max`, emitted as Rust type `rust`.
    Int {
        /// The Rust type of the constant.
        rust: String,
        /// Smallest allowed value.
        min: i128,
        /// Largest allowed value.
        max: i128,
    },
    /// An IPv4 address written as a string, emitted as `[u8; 4]`.
    Ipv4,
    /// An IPv4 address with its prefix length (`"10.0.2.15/24"`), a host address of a
    /// subnet; or one of the identifiers in `or` (e.g. `Dhcp`), which `when` can match.
    /// In templates: `{{ <key>.address }}` (`[u8; 4]`) and `{{ <key>.prefix_len }}`.
    Ipv4Cidr {
        /// Identifiers accepted instead of an address.
        or: Vec<String>,
    },
    /// A network interface name: 1 to 15 bytes (Linux's limit) of ASCII letters,
    /// digits, `_`, `-` and `.`, so that it can be written unquoted into any deployment
    /// file.
    IfName,
    /// An Ethernet (MAC) address written as a string, six hex pairs separated by colons
    /// (`"00:16:3e:00:00:02"`), unicast and not all zeros; kept in lower case.
    Mac,
    /// A directory relative to the appliance's directory; must exist.
    Dir,
    /// One of the listed identifiers.
    Choice(Vec<String>),
    /// A target's variant name (`Unix`, `Xen`).
    Target,
    /// The application config map.
    Config,
    /// The device map.
    Devices,
    /// A list of device names.
    DeviceList,
}

impl KeyType {
    /// How the type is shown in messages and the reference.
    pub fn describe(&self) -> String {
        match self {
            KeyType::Str => "a string".into(),
            KeyType::Path => "a string naming a Rust type".into(),
            KeyType::Bool => "a boolean".into(),
            KeyType::Int { rust, .. } => format!("an integer ({rust})"),
            KeyType::Ipv4 => "a string holding an IPv4 address".into(),
            KeyType::Ipv4Cidr { or } if or.is_empty() => {
                "a string holding an IPv4 address with its prefix length".into()
            }
            KeyType::Ipv4Cidr { or } => format!(
                "{} or a string holding an IPv4 address with its prefix length",
                or.join(", ")
            ),
            KeyType::IfName => "a string naming a network interface".into(),
            KeyType::Mac => "a string holding a MAC address".into(),
            KeyType::Dir => "a string naming a directory".into(),
            KeyType::Choice(c) => format!("one of {}", c.join(", ")),
            KeyType::Target => "a target".into(),
            KeyType::Config => "a map from strings to strings, integers, booleans or floats".into(),
            KeyType::Devices => "a map from device names to components".into(),
            KeyType::DeviceList => "a list of device names".into(),
        }
    }

    /// The Rust type of the constant this key becomes.
    pub fn rust_type(&self) -> &str {
        match self {
            KeyType::Int { rust, .. } => rust,
            KeyType::Ipv4 => "[u8; 4]",
            KeyType::Bool => "bool",
            _ => "&str",
        }
    }
}

/// A device every platform provides.
#[derive(Clone, Debug)]
pub struct PlatformDevice {
    /// Its reserved name, e.g. `clock`.
    pub name: String,
    /// Shown in reports, e.g. `Clock`.
    pub title: String,
    /// Signatures it provides.
    pub provides: Vec<String>,
    /// One sentence.
    pub doc: String,
}

/// Whether something can be built today.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Implemented.
    Ready,
    /// Declared, not implemented yet; the text says what is missing.
    Planned(String),
}

/// A target: a way to run an appliance.
#[derive(Clone, Debug)]
pub struct Target {
    /// Catalog name, e.g. `unix` (also the `MORGANA_TARGET` value).
    pub name: String,
    /// The identifier written in appliance.ron, e.g. `Unix`.
    pub variant: String,
    /// One sentence.
    pub doc: String,
    /// Ready or planned.
    pub status: Status,
    /// Rust path of the platform type handed to `connect_and_start`.
    pub platform: String,
    /// Rust path of the entry macro.
    pub entry: String,
    /// Crates the generated code needs on this target.
    pub crates: Vec<String>,
    /// Linker arguments for the appliance's binaries; `{{ env.<VAR> }}` stands for the
    /// value of a build-time environment variable listed in `build_env`.
    pub link_args: Vec<String>,
    /// Environment variables the build script needs: (variable, the crate whose build
    /// script sets it for its direct dependents, Cargo's `links` metadata).
    pub build_env: Vec<(String, String)>,
    /// How each platform device is obtained: (device name, implementation).
    pub devices: Vec<(String, PlatformImpl)>,
    /// Deployment files.
    pub files: Vec<TargetFile>,
    /// Where the target is declared.
    pub span: Span,
}

/// Where a deployment file goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileDir {
    /// `OUT_DIR`, next to the generated code.
    OutDir,
    /// The profile directory (`target/<profile>`), next to the binary.
    Profile,
}

/// A deployment file of a target.
#[derive(Clone, Debug)]
pub struct TargetFile {
    /// The file name (a template: `{{ name }}`).
    pub name: String,
    /// Where it is written.
    pub dir: FileDir,
    /// The contents (a template: `{{ name }}`, `{{ file }}`, `{{ target }}`,
    /// `{{ heap_mib }}`, `{{ memory_mib }}`, `{{ binary }}`, `{{ deploy.<slot> }}`).
    pub text: String,
}

/// Placeholders of a deployment file's name and text besides `deploy.<slot>`.
/// `binary` is the path of the built binary: absolute when the build script knows the
/// profile directory (see [`crate::compile_with`]), else the bare file name.
pub const FILE_PLACEHOLDERS: &[&str] =
    &["name", "file", "target", "heap_mib", "memory_mib", "binary"];

/// A platform device on one target.
#[derive(Clone, Debug)]
pub struct PlatformImpl {
    /// Its Rust type.
    pub ty: String,
    /// The expression that obtains it from `{{ platform }}`.
    pub expr: String,
}

/// A component: something a device can be.
#[derive(Clone, Debug)]
pub struct Component {
    /// Its name in appliance.ron, e.g. `HttpServer`.
    pub name: String,
    /// One paragraph.
    pub doc: String,
    /// A short noun phrase, e.g. `TCP/IP stack` (reports say what was left out by it);
    /// may be empty.
    pub title: String,
    /// Signatures it provides.
    pub provides: Vec<String>,
    /// Devices it needs.
    pub requires: Vec<Requirement>,
    /// Its config keys.
    pub keys: Vec<KeySpec>,
    /// Implementations, tried in order; the first whose targets and `when` match wins.
    pub impls: Vec<Impl>,
    /// Where the component is declared.
    pub span: Span,
}

/// A dependency of a component on a device providing a signature.
#[derive(Clone, Debug)]
pub struct Requirement {
    /// The key naming the device, e.g. `net`; also the template placeholder.
    pub key: String,
    /// The signature the device must provide.
    pub signature: String,
    /// Why it is needed, for the report (may be empty).
    pub purpose: String,
    /// The requirement exists only when these choice keys have these variants.
    pub when: Vec<(String, String)>,
    /// One sentence.
    pub doc: String,
}

/// One implementation of a component.
#[derive(Clone, Debug)]
pub struct Impl {
    /// Target names, or `*` for every target.
    pub targets: Vec<String>,
    /// Conditions on `Choice` keys: (key, variant).
    pub when: Vec<(String, String)>,
    /// What the device becomes.
    pub code: Code,
    /// Crates the code needs.
    pub crates: Vec<String>,
    /// Whether the device's value may be handed to several users (it is `Copy`).
    pub shared: bool,
    /// Contributions to the target's deployment files: (slot, template). A file (or
    /// another contribution) says `{{ deploy.<slot> }}` to get the contributions of every
    /// included device to `<slot>`, concatenated in connect order.
    pub deploy: Vec<(String, String)>,
    /// A resource the device takes for itself (a template over the device's keys, e.g.
    /// `tap device {{ tap }}`); two included devices claiming the same one is an error.
    pub claims: String,
}

impl Impl {
    /// Whether this implementation is for `target`.
    pub fn for_target(&self, target: &str) -> bool {
        self.targets.iter().any(|t| t == "*" || t == target)
    }

    /// Whether it is specific to some targets (not `*`).
    pub fn target_specific(&self) -> bool {
        !self.targets.iter().any(|t| t == "*")
    }
}

/// What a device becomes in generated code.
#[derive(Clone, Debug)]
pub enum Code {
    /// `pub type Alias = ty;` and `let name = <connect>.await?;`.
    Connect {
        /// Type template.
        ty: String,
        /// Values made before `connect`: (name, template of an expression yielding
        /// `Result<T, E: Display>`, synchronous or ending in `.await`). Each becomes
        /// `let <device>_<name> = ..?;` and `{{ <name> }}` in `connect` (and in later
        /// steps) names it.
        prepare: Vec<(String, String)>,
        /// Expression template of a future yielding `Result<Self, E: Display>`.
        connect: String,
    },
    /// `pub static NAME: ty = init;`; users get `&NAME`.
    Static {
        /// Type template.
        ty: String,
        /// Constant initialiser template.
        init: String,
    },
    /// Declared, not implemented yet.
    Planned(String),
    /// Never possible on these targets; the text says what to use instead.
    Unsupported(String),
}

impl Catalog {
    /// The catalog in `schemas/catalog.ron`.
    pub fn builtin() -> Result<Catalog, Diagnostics> {
        Catalog::from_sources(&[(BUILTIN_PATH, BUILTIN_SOURCE)])
    }

    /// Reads and merges catalog files (later files add entries; a duplicate is an error),
    /// then checks that the result is consistent.
    pub fn from_sources(files: &[(&str, &str)]) -> Result<Catalog, Diagnostics> {
        let mut cat = Catalog {
            signatures: Vec::new(),
            appliance: Vec::new(),
            platform_devices: Vec::new(),
            targets: Vec::new(),
            components: Vec::new(),
            sources: SourceMap::default(),
        };
        let mut errs = Vec::new();
        for (path, text) in files {
            let id = cat.sources.add(SourceFile::new(*path, *text));
            match parse::parse(text, id) {
                Ok(v) => Decoder { errs: &mut errs }.catalog(&v, &mut cat),
                Err(d) => errs.push(d),
            }
        }
        if errs.is_empty() {
            cat.validate(&mut errs);
        }
        if errs.is_empty() {
            Ok(cat)
        } else {
            Err(Diagnostics {
                sources: cat.sources,
                list: errs,
            })
        }
    }

    /// The component called `name`.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    /// The target called `name` (catalog name, e.g. `unix`).
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// The platform device called `name`.
    pub fn platform_device(&self, name: &str) -> Option<&PlatformDevice> {
        self.platform_devices.iter().find(|p| p.name == name)
    }

    /// The signature called `name`.
    pub fn signature(&self, name: &str) -> Option<&Signature> {
        self.signatures.iter().find(|s| s.name == name)
    }

    fn validate(&self, errs: &mut Vec<Diagnostic>) {
        let sig_known = |s: &str| self.signature(s).is_some();
        for p in &self.platform_devices {
            for s in &p.provides {
                if !sig_known(s) {
                    errs.push(Diagnostic::error(format!(
                        "catalog: platform device `{}` provides unknown signature `{s}`",
                        p.name
                    )));
                }
            }
        }
        for t in &self.targets {
            self.validate_target(t, errs);
        }
        for c in &self.components {
            self.validate_component(c, errs);
        }
        for k in &self.appliance {
            if let Some(d) = &k.default
                && let Err(e) = crate::check::default_ok(&k.ty, d)
                && !matches!(
                    k.ty,
                    KeyType::Target | KeyType::Config | KeyType::Devices | KeyType::DeviceList
                )
            {
                errs.push(
                    Diagnostic::error(format!("catalog: default of `{}`: {e}", k.name))
                        .primary(k.span, ""),
                );
            }
            if !k.when.is_empty() || !k.targets.is_empty() || !k.target_defaults.is_empty() {
                errs.push(
                    Diagnostic::error(format!(
                        "catalog: top-level key `{}`: `when`, `targets` and `target_defaults` are for component keys",
                        k.name
                    ))
                    .primary(k.span, ""),
                );
            }
        }
    }

    fn validate_target(&self, t: &Target, errs: &mut Vec<Diagnostic>) {
        let err = |msg: String| {
            Diagnostic::error(format!("catalog: target `{}`: {msg}", t.name)).primary(t.span, "")
        };
        for f in &t.files {
            check_template(&f.name, FILE_PLACEHOLDERS, "a file name", t.span, errs);
            if let Err(e) = template::render(&f.text, |n| {
                (FILE_PLACEHOLDERS.contains(&n) || n.starts_with("deploy.")).then(String::new)
            }) {
                errs.push(err(format!("file `{}`: {e}", f.name)));
            }
        }
        for (var, krate) in &t.build_env {
            if !t.crates.contains(krate) {
                errs.push(err(format!(
                    "`build_env` variable `{var}` comes from `{krate}`, which is not in `crates`"
                )));
            }
        }
        for arg in &t.link_args {
            for p in placeholders(arg) {
                match p.strip_prefix("env.") {
                    Some(var) if t.build_env.iter().any(|(v, _)| v == var) => {}
                    Some(var) => errs.push(err(format!(
                        "link argument `{arg}` uses `{var}`, which is not in `build_env`"
                    ))),
                    None => errs.push(err(format!(
                        "link argument `{arg}`: only `{{{{ env.<VAR> }}}}` placeholders are allowed"
                    ))),
                }
            }
        }
        if t.status != Status::Ready {
            return;
        }
        let missing = |what: &str| err(format!("a ready target needs `{what}`"));
        if t.platform.is_empty() {
            errs.push(missing("platform"));
        }
        if t.entry.is_empty() {
            errs.push(missing("entry"));
        }
        for p in &self.platform_devices {
            match t.devices.iter().find(|(n, _)| *n == p.name) {
                None => errs.push(missing(&format!("devices.{}", p.name))),
                Some((_, imp)) => check_template(
                    &imp.expr,
                    &["platform"],
                    &format!("target `{}` device `{}`", t.name, p.name),
                    t.span,
                    errs,
                ),
            }
        }
        for (n, _) in &t.devices {
            if self.platform_device(n).is_none() {
                errs.push(err(format!("implements unknown platform device `{n}`")));
            }
        }
    }

    fn validate_component(&self, c: &Component, errs: &mut Vec<Diagnostic>) {
        let sig_known = |s: &str| self.signature(s).is_some();
        let err = |msg: String| {
            Diagnostic::error(format!("catalog: `{}`: {msg}", c.name)).primary(c.span, "")
        };
        let target_known = |t: &str| self.target(t).is_some();
        // A condition names a key of the component with variant identifiers, and one of
        // them; for keys and requirements, a key that is itself unconditional.
        let condition_on = |key: &str, variant: &str, conditional_ok: bool| {
            c.keys.iter().any(|k| {
                k.name == key
                    && (conditional_ok || k.when.is_empty())
                    && match &k.ty {
                        KeyType::Choice(v) | KeyType::Ipv4Cidr { or: v } => {
                            v.iter().any(|x| x == variant)
                        }
                        _ => false,
                    }
            })
        };
        let condition_ok = |key: &str, variant: &str| condition_on(key, variant, false);
        for s in &c.provides {
            if !sig_known(s) {
                errs.push(err(format!("provides unknown signature `{s}`")));
            }
        }
        for r in &c.requires {
            if !sig_known(&r.signature) {
                errs.push(err(format!("requires unknown signature `{}`", r.signature)));
            }
            if c.keys.iter().any(|k| k.name == r.key) {
                errs.push(err(format!("`{}` is both a requirement and a key", r.key)));
            }
            for (key, variant) in &r.when {
                if !condition_ok(key, variant) {
                    errs.push(err(format!(
                        "requirement `{}`: `when: {{\"{key}\": {variant}}}` does not name a choice key and one of its variants",
                        r.key
                    )));
                }
            }
        }
        for k in &c.keys {
            if matches!(
                k.ty,
                KeyType::Target | KeyType::Config | KeyType::Devices | KeyType::DeviceList
            ) {
                errs.push(err(format!("key `{}` has a top-level-only type", k.name)));
            }
            if let Some(d) = &k.default
                && let Err(e) = crate::check::default_ok(&k.ty, d)
            {
                errs.push(err(format!("default of `{}`: {e}", k.name)));
            }
            for (t, d) in &k.target_defaults {
                if !target_known(t) {
                    errs.push(err(format!(
                        "key `{}`: default for unknown target `{t}`",
                        k.name
                    )));
                }
                if let Err(e) = crate::check::default_ok(&k.ty, d) {
                    errs.push(err(format!("default of `{}` on {t}: {e}", k.name)));
                }
            }
            if k.optional && (k.default.is_some() || !k.target_defaults.is_empty()) {
                errs.push(err(format!(
                    "key `{}` is `optional` and has a default: choose one",
                    k.name
                )));
            }
            for t in &k.targets {
                if !target_known(t) {
                    errs.push(err(format!("key `{}`: unknown target `{t}`", k.name)));
                }
            }
            for (key, variant) in &k.when {
                if !condition_ok(key, variant) {
                    errs.push(err(format!(
                        "key `{}`: `when: {{\"{key}\": {variant}}}` does not name a choice key and one of its variants",
                        k.name
                    )));
                }
            }
            if let Some(w) = &k.within {
                let ok = k.ty == KeyType::Ipv4
                    && c.keys
                        .iter()
                        .any(|o| &o.name == w && matches!(o.ty, KeyType::Ipv4Cidr { .. }));
                if !ok {
                    errs.push(err(format!(
                        "key `{}`: `within` relates an `Ipv4` key to an `Ipv4Cidr` key of the same component",
                        k.name
                    )));
                }
            }
        }
        for imp in &c.impls {
            for t in &imp.targets {
                if t != "*" && !target_known(t) {
                    errs.push(err(format!("implementation for unknown target `{t}`")));
                }
            }
            for (key, variant) in &imp.when {
                if !condition_on(key, variant, true) {
                    errs.push(err(format!(
                        "`when: {{\"{key}\": {variant}}}` does not name a choice key and one of its variants"
                    )));
                }
            }
            let reqs: Vec<&str> = c.requires.iter().map(|r| r.key.as_str()).collect();
            let mut values: Vec<String> = vec!["Self".into(), "platform".into()];
            values.extend(reqs.iter().map(|s| s.to_string()));
            values.extend(key_placeholders(&c.keys, true));
            let what = format!("component `{}`", c.name);
            match &imp.code {
                Code::Connect {
                    ty,
                    prepare,
                    connect,
                } => {
                    check_template(ty, &reqs, &what, c.span, errs);
                    for (step, text) in prepare {
                        if values.iter().any(|v| v == step) || !crate::names::is_snake(step) {
                            errs.push(err(format!(
                                "`prepare` step `{step}` must be a lower-case identifier that is not a key or requirement"
                            )));
                        }
                        let allowed: Vec<&str> = values.iter().map(String::as_str).collect();
                        check_template(text, &allowed, &what, c.span, errs);
                        values.push(step.clone());
                    }
                    let allowed: Vec<&str> = values.iter().map(String::as_str).collect();
                    check_template(connect, &allowed, &what, c.span, errs);
                }
                Code::Static { ty, init } => {
                    let allowed: Vec<&str> = values.iter().map(String::as_str).collect();
                    check_template(ty, &reqs, &what, c.span, errs);
                    check_template(init, &allowed, &what, c.span, errs);
                }
                Code::Planned(_) | Code::Unsupported(_) => {}
            }
            let plain = key_placeholders(&c.keys, false);
            if let Err(e) = template::render(&imp.claims, |n| {
                plain.iter().any(|p| p == n).then(String::new)
            }) {
                errs.push(err(format!("`claims`: {e}")));
            }
            for (slot, text) in &imp.deploy {
                if !crate::names::is_snake(slot) {
                    errs.push(err(format!(
                        "deploy slot `{slot}` must be a lower-case identifier"
                    )));
                }
                if let Err(e) = template::render(text, |n| {
                    (plain.iter().any(|p| p == n) || n.starts_with("deploy.")).then(String::new)
                }) {
                    errs.push(err(format!("deploy slot `{slot}`: {e}")));
                }
            }
        }
    }
}

/// The placeholders a component's keys give templates: `config.<key>` for constants in
/// code (`in_code`), `<key>` otherwise, and `<key>.address` / `<key>.prefix_len` for an
/// `Ipv4Cidr` key. Deployment templates (`!in_code`) get every key's plain value, and
/// `<key>.item` for an optional key: `<key>=<value>,` when it is set, nothing when it is
/// not (an item of a comma-separated list such as an xl `vif` spec).
pub(crate) fn key_placeholders(keys: &[KeySpec], in_code: bool) -> Vec<String> {
    let mut out = Vec::new();
    for k in keys {
        if in_code && k.as_const {
            out.push(format!("config.{}", k.name));
        } else {
            out.push(k.name.clone());
        }
        if let KeyType::Ipv4Cidr { .. } = k.ty {
            out.push(format!("{}.address", k.name));
            out.push(format!("{}.prefix_len", k.name));
        }
        if !in_code && k.optional {
            out.push(format!("{}.item", k.name));
        }
    }
    out
}

/// The placeholder names in a template (malformed ones left out).
pub(crate) fn placeholders(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let _ = template::render(text, |n| {
        names.push(n.to_string());
        Some(String::new())
    });
    names
}

fn check_template(
    text: &str,
    allowed: &[&str],
    what: &str,
    span: Span,
    errs: &mut Vec<Diagnostic>,
) {
    if let Err(e) = template::render(text, |name| allowed.contains(&name).then(String::new)) {
        errs.push(Diagnostic::error(format!("catalog: {what}: {e}")).primary(span, ""));
    }
}

/// Decodes catalog values, collecting every error.
struct Decoder<'e> {
    errs: &'e mut Vec<Diagnostic>,
}

/// The fields of one struct, taken one by one; leftovers are reported.
struct Fields<'v> {
    st: &'v Struct,
    span: Span,
    taken: Vec<bool>,
}

impl<'v> Fields<'v> {
    fn get(&mut self, key: &str) -> Option<&'v Value> {
        let i = self.st.fields.iter().position(|(k, _)| k.name == key)?;
        self.taken[i] = true;
        Some(&self.st.fields[i].1)
    }
}

impl Decoder<'_> {
    fn err(&mut self, span: Span, msg: impl Into<String>) {
        self.errs
            .push(Diagnostic::error(format!("catalog: {}", msg.into())).primary(span, ""));
    }

    fn fields<'v>(&mut self, v: &'v Value, name: &str) -> Option<Fields<'v>> {
        match &v.kind {
            Kind::Struct(st) if st.name.as_ref().is_none_or(|n| n.name == name) => Some(Fields {
                st,
                span: v.span,
                taken: vec![false; st.fields.len()],
            }),
            _ => {
                self.err(
                    v.span,
                    format!("expected `{name}(..)`, found {}", v.describe()),
                );
                None
            }
        }
    }

    fn finish(&mut self, f: Fields<'_>) {
        for (i, (k, _)) in f.st.fields.iter().enumerate() {
            if !f.taken[i] {
                self.err(k.span, format!("unknown field `{}`", k.name));
            }
        }
    }

    fn string(&mut self, f: &mut Fields<'_>, key: &str, required: bool) -> String {
        match f.get(key) {
            Some(Value {
                kind: Kind::Str(s), ..
            }) => s.clone(),
            Some(v) => {
                self.err(v.span, format!("`{key}` must be a string"));
                String::new()
            }
            None => {
                if required {
                    self.err(f.span, format!("missing `{key}`"));
                }
                String::new()
            }
        }
    }

    fn bool(&mut self, f: &mut Fields<'_>, key: &str) -> bool {
        match f.get(key) {
            Some(Value {
                kind: Kind::Bool(b),
                ..
            }) => *b,
            Some(v) => {
                self.err(v.span, format!("`{key}` must be a boolean"));
                false
            }
            None => false,
        }
    }

    fn strings(&mut self, f: &mut Fields<'_>, key: &str) -> Vec<String> {
        match f.get(key) {
            Some(Value {
                kind: Kind::List(items),
                ..
            }) => items
                .iter()
                .filter_map(|v| match &v.kind {
                    Kind::Str(s) => Some(s.clone()),
                    _ => {
                        self.err(v.span, format!("`{key}` must list strings"));
                        None
                    }
                })
                .collect(),
            Some(v) => {
                self.err(v.span, format!("`{key}` must be a list of strings"));
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    fn map<'v>(&mut self, f: &mut Fields<'v>, key: &str) -> Vec<(String, &'v Value)> {
        match f.get(key) {
            Some(Value {
                kind: Kind::Map(entries),
                ..
            }) => entries
                .iter()
                .filter_map(|(k, v)| match &k.kind {
                    Kind::Str(s) => Some((s.clone(), v)),
                    _ => {
                        self.err(k.span, "map keys must be strings");
                        None
                    }
                })
                .collect(),
            Some(v) => {
                self.err(v.span, format!("`{key}` must be a map"));
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    fn catalog(&mut self, v: &Value, cat: &mut Catalog) {
        let Some(mut f) = self.fields(v, "Catalog") else {
            return;
        };
        for (name, v) in self.map(&mut f, "signatures") {
            if let Some(mut g) = self.fields(v, "Signature") {
                let s = Signature {
                    trait_path: self.string(&mut g, "trait", true),
                    doc: self.string(&mut g, "doc", true),
                    name,
                };
                self.finish(g);
                self.unique(
                    cat.signatures.iter().any(|x| x.name == s.name),
                    v.span,
                    &s.name,
                );
                cat.signatures.push(s);
            }
        }
        for (name, v) in self.map(&mut f, "appliance") {
            if let Some(k) = self.key(name, v) {
                self.unique(
                    cat.appliance.iter().any(|x| x.name == k.name),
                    v.span,
                    &k.name,
                );
                cat.appliance.push(k);
            }
        }
        for (name, v) in self.map(&mut f, "platform_devices") {
            if let Some(mut g) = self.fields(v, "PlatformDevice") {
                let p = PlatformDevice {
                    title: self.string(&mut g, "title", true),
                    provides: self.strings(&mut g, "provides"),
                    doc: self.string(&mut g, "doc", true),
                    name,
                };
                self.finish(g);
                self.unique(
                    cat.platform_devices.iter().any(|x| x.name == p.name),
                    v.span,
                    &p.name,
                );
                cat.platform_devices.push(p);
            }
        }
        for (name, v) in self.map(&mut f, "targets") {
            if let Some(t) = self.target(name, v) {
                self.unique(
                    cat.targets.iter().any(|x| x.name == t.name),
                    v.span,
                    &t.name,
                );
                cat.targets.push(t);
            }
        }
        for (name, v) in self.map(&mut f, "components") {
            if let Some(c) = self.component(name, v) {
                self.unique(
                    cat.components.iter().any(|x| x.name == c.name),
                    v.span,
                    &c.name,
                );
                cat.components.push(c);
            }
        }
        self.finish(f);
    }

    fn unique(&mut self, dup: bool, span: Span, name: &str) {
        if dup {
            self.err(span, format!("`{name}` is declared twice"));
        }
    }

    fn key(&mut self, name: String, v: &Value) -> Option<KeySpec> {
        let mut f = self.fields(v, "Key")?;
        let ty = match f.get("type") {
            Some(t) => self.key_type(t),
            None => {
                self.err(v.span, "missing `type`");
                None
            }
        };
        let target_defaults = self
            .map(&mut f, "target_defaults")
            .into_iter()
            .map(|(t, v)| (t, v.clone()))
            .collect();
        let within = match f.get("within") {
            Some(w) => match w.as_str() {
                Some(s) => Some(s.to_string()),
                None => {
                    self.err(w.span, "`within` names a key, as a string");
                    None
                }
            },
            None => None,
        };
        let k = KeySpec {
            ty: ty.unwrap_or(KeyType::Str),
            default: f.get("default").cloned(),
            target_defaults,
            optional: self.bool(&mut f, "optional"),
            when: self.when(&mut f),
            targets: self.strings(&mut f, "targets"),
            within,
            as_const: self.bool(&mut f, "const"),
            doc: self.string(&mut f, "doc", true),
            span: v.span,
            name,
        };
        self.finish(f);
        Some(k)
    }

    fn key_type(&mut self, v: &Value) -> Option<KeyType> {
        let simple = |n: &str| match n {
            "Str" => Some(KeyType::Str),
            "Path" => Some(KeyType::Path),
            "Bool" => Some(KeyType::Bool),
            "Ipv4" => Some(KeyType::Ipv4),
            "Ipv4Cidr" => Some(KeyType::Ipv4Cidr { or: Vec::new() }),
            "IfName" => Some(KeyType::IfName),
            "Mac" => Some(KeyType::Mac),
            "Dir" => Some(KeyType::Dir),
            "Target" => Some(KeyType::Target),
            "Config" => Some(KeyType::Config),
            "Devices" => Some(KeyType::Devices),
            "DeviceList" => Some(KeyType::DeviceList),
            _ => None,
        };
        match &v.kind {
            Kind::Unit(i) => {
                let t = simple(&i.name);
                if t.is_none() {
                    self.err(v.span, format!("unknown key type `{}`", i.name));
                }
                t
            }
            Kind::Struct(st) if st.name.as_ref().is_some_and(|n| n.name == "Int") => {
                let mut f = self.fields(v, "Int")?;
                let rust = self.string(&mut f, "rust", true);
                let mut int = |f: &mut Fields<'_>, k: &str| match f.get(k) {
                    Some(Value {
                        kind: Kind::Int(i), ..
                    }) => *i,
                    _ => {
                        self.err(v.span, format!("`Int` needs an integer `{k}`"));
                        0
                    }
                };
                let min = int(&mut f, "min");
                let max = int(&mut f, "max");
                self.finish(f);
                Some(KeyType::Int { rust, min, max })
            }
            Kind::Struct(st) if st.name.as_ref().is_some_and(|n| n.name == "Ipv4Cidr") => {
                let mut f = self.fields(v, "Ipv4Cidr")?;
                let or = self.strings(&mut f, "or");
                self.finish(f);
                Some(KeyType::Ipv4Cidr { or })
            }
            Kind::Tuple(t) if t.name.as_ref().is_some_and(|n| n.name == "Choice") => {
                match t.items.as_slice() {
                    [
                        Value {
                            kind: Kind::List(items),
                            ..
                        },
                    ] => {
                        let names: Vec<String> = items
                            .iter()
                            .filter_map(|i| i.as_str().map(str::to_string))
                            .collect();
                        if names.len() != items.len() || names.is_empty() {
                            self.err(v.span, "`Choice` lists variant names as strings");
                        }
                        Some(KeyType::Choice(names))
                    }
                    _ => {
                        self.err(v.span, "write `Choice([\"A\", \"B\"])`");
                        None
                    }
                }
            }
            _ => {
                self.err(
                    v.span,
                    format!("expected a key type, found {}", v.describe()),
                );
                None
            }
        }
    }

    fn status(&mut self, f: &mut Fields<'_>) -> Status {
        match f.get("status") {
            None => Status::Ready,
            Some(Value {
                kind: Kind::Unit(i),
                ..
            }) if i.name == "Ready" => Status::Ready,
            Some(v) => match &v.kind {
                Kind::Tuple(t)
                    if t.name.as_ref().is_some_and(|n| n.name == "Planned")
                        && t.items.len() == 1
                        && t.items[0].as_str().is_some() =>
                {
                    Status::Planned(t.items[0].as_str().unwrap_or_default().to_string())
                }
                _ => {
                    self.err(v.span, "status is `Ready` or `Planned(\"why\")`");
                    Status::Ready
                }
            },
        }
    }

    fn target(&mut self, name: String, v: &Value) -> Option<Target> {
        let mut f = self.fields(v, "Target")?;
        let status = self.status(&mut f);
        let mut devices = Vec::new();
        for (dev, dv) in self.map(&mut f, "devices") {
            if let Some(mut g) = self.fields(dv, "PlatformImpl") {
                devices.push((
                    dev,
                    PlatformImpl {
                        ty: self.string(&mut g, "type", true),
                        expr: self.string(&mut g, "expr", true),
                    },
                ));
                self.finish(g);
            }
        }
        let mut files = Vec::new();
        for (file, fv) in self.map(&mut f, "files") {
            match &fv.kind {
                Kind::Str(text) => files.push(TargetFile {
                    name: file,
                    dir: FileDir::OutDir,
                    text: text.clone(),
                }),
                _ => {
                    let Some(mut g) = self.fields(fv, "File") else {
                        continue;
                    };
                    let dir = match g.get("dir") {
                        None => FileDir::OutDir,
                        Some(Value {
                            kind: Kind::Unit(i),
                            ..
                        }) if i.name == "OutDir" => FileDir::OutDir,
                        Some(Value {
                            kind: Kind::Unit(i),
                            ..
                        }) if i.name == "Profile" => FileDir::Profile,
                        Some(d) => {
                            self.err(d.span, "`dir` is `OutDir` or `Profile`");
                            FileDir::OutDir
                        }
                    };
                    files.push(TargetFile {
                        text: self.string(&mut g, "text", true),
                        name: file,
                        dir,
                    });
                    self.finish(g);
                }
            }
        }
        let mut build_env = Vec::new();
        for (var, cv) in self.map(&mut f, "build_env") {
            match cv.as_str() {
                Some(c) => build_env.push((var, c.to_string())),
                None => self.err(
                    cv.span,
                    "`build_env` maps a variable to the crate that sets it",
                ),
            }
        }
        let t = Target {
            variant: self.string(&mut f, "variant", true),
            doc: self.string(&mut f, "doc", true),
            platform: self.string(&mut f, "platform", false),
            entry: self.string(&mut f, "entry", false),
            crates: self.strings(&mut f, "crates"),
            link_args: self.strings(&mut f, "link_args"),
            build_env,
            status,
            devices,
            files,
            span: v.span,
            name,
        };
        self.finish(f);
        Some(t)
    }

    fn component(&mut self, name: String, v: &Value) -> Option<Component> {
        let mut f = self.fields(v, "Component")?;
        let mut requires = Vec::new();
        for (key, rv) in self.map(&mut f, "requires") {
            if let Some(mut g) = self.fields(rv, "Requirement") {
                requires.push(Requirement {
                    signature: self.string(&mut g, "signature", true),
                    purpose: self.string(&mut g, "purpose", false),
                    when: self.when(&mut g),
                    doc: self.string(&mut g, "doc", true),
                    key,
                });
                self.finish(g);
            }
        }
        let mut keys = Vec::new();
        for (key, kv) in self.map(&mut f, "keys") {
            keys.extend(self.key(key, kv));
        }
        let mut impls = Vec::new();
        match f.get("impls") {
            Some(Value {
                kind: Kind::List(items),
                ..
            }) => {
                for iv in items {
                    impls.extend(self.implementation(iv));
                }
            }
            Some(other) => self.err(other.span, "`impls` must be a list of `Impl(..)`"),
            None => {}
        }
        let c = Component {
            title: self.string(&mut f, "title", false),
            doc: self.string(&mut f, "doc", true),
            provides: self.strings(&mut f, "provides"),
            requires,
            keys,
            impls,
            span: v.span,
            name,
        };
        self.finish(f);
        Some(c)
    }

    /// `when: {"key": Variant}`.
    fn when(&mut self, f: &mut Fields<'_>) -> Vec<(String, String)> {
        let mut when = Vec::new();
        for (key, wv) in self.map(f, "when") {
            match &wv.kind {
                Kind::Unit(i) => when.push((key, i.name.clone())),
                _ => self.err(wv.span, "`when` values are variant names, e.g. `Host`"),
            }
        }
        when
    }

    /// A map from names to template strings.
    fn templates(&mut self, f: &mut Fields<'_>, key: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, tv) in self.map(f, key) {
            match tv.as_str() {
                Some(t) => out.push((name, t.to_string())),
                None => self.err(tv.span, format!("`{key}` maps names to template strings")),
            }
        }
        out
    }

    fn implementation(&mut self, v: &Value) -> Option<Impl> {
        let mut f = self.fields(v, "Impl")?;
        let when = self.when(&mut f);
        let code = match f.get("code") {
            Some(cv) => self.code(cv)?,
            None => {
                self.err(v.span, "missing `code`");
                return None;
            }
        };
        let i = Impl {
            targets: self.strings(&mut f, "targets"),
            when,
            code,
            crates: self.strings(&mut f, "crates"),
            shared: self.bool(&mut f, "shared"),
            deploy: self.templates(&mut f, "deploy"),
            claims: self.string(&mut f, "claims", false),
        };
        self.finish(f);
        Some(i)
    }

    fn code(&mut self, v: &Value) -> Option<Code> {
        match &v.kind {
            Kind::Struct(st) if st.name.as_ref().is_some_and(|n| n.name == "Connect") => {
                let mut f = self.fields(v, "Connect")?;
                let c = Code::Connect {
                    ty: self.string(&mut f, "type", true),
                    prepare: self.templates(&mut f, "prepare"),
                    connect: self.string(&mut f, "connect", true),
                };
                self.finish(f);
                Some(c)
            }
            Kind::Struct(st) if st.name.as_ref().is_some_and(|n| n.name == "Static") => {
                let mut f = self.fields(v, "Static")?;
                let c = Code::Static {
                    ty: self.string(&mut f, "type", true),
                    init: self.string(&mut f, "init", true),
                };
                self.finish(f);
                Some(c)
            }
            Kind::Tuple(t) if t.items.len() == 1 && t.items[0].as_str().is_some() => {
                let text = t.items[0].as_str().unwrap_or_default().to_string();
                match t.name.as_ref().map(|n| n.name.as_str()) {
                    Some("Planned") => Some(Code::Planned(text)),
                    Some("Unsupported") => Some(Code::Unsupported(text)),
                    _ => {
                        self.err(
                            v.span,
                            "expected `Planned(\"..\")` or `Unsupported(\"..\")`",
                        );
                        None
                    }
                }
            }
            _ => {
                self.err(
                    v.span,
                    "code is `Connect(type, connect)`, `Static(type, init)`, `Planned(why)` or `Unsupported(why)`",
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_is_consistent() {
        let cat = Catalog::builtin().unwrap_or_else(|d| panic!("{d}"));
        assert!(cat.component("HttpServer").is_some());
        assert_eq!(
            cat.target("unix").map(|t| t.status.clone()),
            Some(Status::Ready)
        );
        assert_eq!(
            cat.target("xen").map(|t| t.status.clone()),
            Some(Status::Ready)
        );
    }

    #[test]
    fn catalog_errors_point_into_the_catalog() {
        let bad =
            "Catalog(components: {\"X\": Component(doc: \"\", provides: [\"nope\"], colour: 1)})";
        let d = Catalog::from_sources(&[("bad.ron", bad)]).expect_err("bad catalog");
        let text = d.to_string();
        assert!(text.contains("unknown field `colour`"), "{text}");
    }
}
