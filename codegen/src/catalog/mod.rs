//! The component catalog (`schemas/catalog.ron`) as typed data: decoded by serde and
//! `ron` ([`load`]), then checked for consistency ([`validate`]). A mistake in the
//! catalog is reported like a mistake in an appliance, with the file, line and column.

pub mod load;
pub mod validate;

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::diag::{FileId, SourceMap};
use crate::syntax;

/// The catalog shipped in `schemas/catalog.ron`.
pub const BUILTIN_PATH: &str = "schemas/catalog.ron";
/// Its text, embedded when morgana-codegen is compiled.
pub const BUILTIN_SOURCE: &str = include_str!("../../../schemas/catalog.ron");
/// Every file of the built-in catalog, merged in this order: `schemas/catalog.ron`
/// (signatures, the top level, targets, the first components), then one file per
/// family of components in `schemas/catalog/` (each adds its own entries, so that
/// families are added side by side).
pub const BUILTIN_FILES: &[(&str, &str)] = &[
    (BUILTIN_PATH, BUILTIN_SOURCE),
    (
        "schemas/catalog/storage.ron",
        include_str!("../../../schemas/catalog/storage.ron"),
    ),
];

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

/// One catalog file as written; [`load`] merges files into a [`Catalog`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Catalog")]
pub(crate) struct CatalogFile {
    #[serde(default, deserialize_with = "named")]
    pub signatures: Vec<Signature>,
    #[serde(default, deserialize_with = "named")]
    pub appliance: Vec<KeySpec>,
    #[serde(default, deserialize_with = "named")]
    pub platform_devices: Vec<PlatformDevice>,
    #[serde(default, deserialize_with = "named")]
    pub targets: Vec<Target>,
    #[serde(default, deserialize_with = "named")]
    pub components: Vec<Component>,
}

/// An entry of a catalog map (`"name": Entry(..)`): the map key is its name.
pub(crate) trait Named {
    fn set_name(&mut self, name: String);
}

macro_rules! named {
    ($($t:ty),*) => {
        $(impl Named for $t {
            fn set_name(&mut self, name: String) {
                self.name = name;
            }
        })*
    };
}
named!(
    Signature,
    KeySpec,
    PlatformDevice,
    Target,
    TargetFile,
    Component,
    Requirement
);

/// Reads a map whose keys are names, in order; a name written twice is an error.
fn pairs<'de, D, T, F>(d: D, each: F) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
    F: FnMut(String, T) -> T,
{
    struct Pairs<T, F>(F, std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>, F: FnMut(String, T) -> T> Visitor<'de> for Pairs<T, F> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map from names to entries")
        }

        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Vec<T>, A::Error> {
            let mut names: Vec<String> = Vec::new();
            let mut out = Vec::new();
            while let Some(name) = map.next_key::<String>()? {
                if names.contains(&name) {
                    return Err(de::Error::custom(format!("`{name}` is declared twice")));
                }
                let value: T = map.next_value()?;
                names.push(name.clone());
                out.push((self.0)(name, value));
            }
            Ok(out)
        }
    }
    d.deserialize_map(Pairs(each, std::marker::PhantomData))
}

fn named<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Named,
{
    pairs(d, |name, mut t: T| {
        t.set_name(name);
        t
    })
}

/// `{"name": "value"}` as (name, value) pairs in order.
fn string_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    let raw: Vec<Pair<String>> = pairs(d, |name, mut p: Pair<String>| {
        p.0 = name;
        p
    })?;
    Ok(raw.into_iter().map(|p| (p.0, p.1)).collect())
}

/// `{"key": Variant}`: conditions on choice keys, as (key, variant) pairs.
fn conditions<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    let raw: Vec<Pair<VariantName>> = pairs(d, |name, mut p: Pair<VariantName>| {
        p.0 = name;
        p
    })?;
    Ok(raw.into_iter().map(|p| (p.0, p.1.0)).collect())
}

/// `{"target": value}` as (target, literal) pairs.
fn literal_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, Literal)>, D::Error> {
    let raw: Vec<Pair<Literal>> = pairs(d, |name, mut p: Pair<Literal>| {
        p.0 = name;
        p
    })?;
    Ok(raw.into_iter().map(|p| (p.0, p.1)).collect())
}

/// A map value with the name filled in afterwards.
struct Pair<T>(String, T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Pair<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(|t| Pair(String::new(), t))
    }
}

/// An identifier written as such (`Direct`), read as its name.
struct VariantName(String);

impl<'de> Deserialize<'de> for VariantName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = VariantName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a variant name such as `Direct`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<VariantName, E> {
                Ok(VariantName(v.to_string()))
            }
        }
        d.deserialize_identifier(V)
    }
}

/// A value written in the catalog in appliance.ron's own syntax (a default), kept as
/// its syntax tree so that it is checked exactly like a value in appliance.ron.
#[derive(Clone, Debug)]
pub struct Literal {
    /// As written.
    pub text: String,
    /// Parsed.
    pub value: syntax::Value,
}

impl<'de> Deserialize<'de> for Literal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<ron::value::RawValue>::deserialize(d)?.trim_boxed();
        let text = raw.get_ron().to_string();
        let doc = syntax::parse(&text, FileId::MAX).map_err(|e| de::Error::custom(e.message))?;
        Ok(Literal {
            text,
            value: doc.value,
        })
    }
}

/// A module signature: a trait in morgana-signatures.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Catalog name, e.g. `tcp`.
    #[serde(skip)]
    pub name: String,
    /// Rust path of the trait.
    #[serde(rename = "trait")]
    pub trait_path: String,
    /// One sentence.
    pub doc: String,
}

/// A key of a struct in appliance.ron: a top-level key or a component's config key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Key")]
pub struct KeySpec {
    /// The key.
    #[serde(skip)]
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: KeyType,
    /// Its default; `None` means the key is required (unless `optional`).
    #[serde(default)]
    pub default: Option<Literal>,
    /// Defaults that differ per target: (target name, value); they win over `default`.
    #[serde(default, deserialize_with = "literal_pairs")]
    pub target_defaults: Vec<(String, Literal)>,
    /// Whether the key may be left out without a default: it is an `Option` (`None`,
    /// or `Some(..)` when written; the value alone with `#![enable(implicit_some)]`).
    #[serde(default)]
    pub optional: bool,
    /// The key exists only when these choice keys of the same component have these
    /// variants: (key, variant). Written otherwise, it is an error.
    #[serde(default, deserialize_with = "conditions")]
    pub when: Vec<(String, String)>,
    /// The targets the key means something on (empty: all). On other targets a written
    /// value is ignored (the report says so), so one file can serve every target.
    #[serde(default)]
    pub targets: Vec<String>,
    /// For an `Ipv4` key: the `Ipv4Cidr` key of the same component whose subnet the
    /// address must be inside (a gateway).
    #[serde(default)]
    pub within: Option<String>,
    /// For an `Ip` key: `"<requirement>.<key>"`, the key of the device wired to that
    /// requirement that must be set for an IPv6 value to work (a listener on `::` needs
    /// a stack with IPv6), where that key applies (its `when`).
    #[serde(default)]
    pub ipv6_needs: Option<String>,
    /// Whether the value becomes a `pub const` in the generated `config` module.
    #[serde(default, rename = "const")]
    pub as_const: bool,
    /// Whether an appliance may also read the key at boot (it names it in its top-level
    /// `boot: [..]`): `--<word>=<value>` on the kernel command line or in argv, the value
    /// in appliance.ron being the default. Only for the types morgana-boot-args parses:
    /// `Int` (min 0 or more), `Ipv4` (optional too) and `Ipv4Cidr`.
    #[serde(default)]
    pub boot: bool,
    /// The word of a `boot` key on the command line, where it differs from the key's
    /// name (`--ipv4-gateway` for `Network`'s `gateway`): lower-case letters, digits and
    /// `-`.
    #[serde(default)]
    pub boot_name: Option<String>,
    /// What `--help` says of a `boot` key, in the command line's terms (`dhcp`, not
    /// `Dhcp`); without it, the first sentence of `doc`.
    #[serde(default)]
    pub boot_doc: Option<String>,
    /// Set when the key is on its way out: what to write instead. A written deprecated
    /// key still works and is reported as a warning (`cargo::warning=`) with this text.
    #[serde(default)]
    pub deprecated: Option<String>,
    /// One paragraph.
    pub doc: String,
}

impl KeySpec {
    /// The default on `target`: a target-specific one if there is, else the general one;
    /// with whether it is target-specific.
    pub fn default_for(&self, target: Option<&str>) -> Option<(&syntax::Value, bool)> {
        target
            .and_then(|t| self.target_defaults.iter().find(|(n, _)| n == t))
            .map(|(_, v)| (&v.value, true))
            .or_else(|| self.default.as_ref().map(|v| (&v.value, false)))
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
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum KeyType {
    /// A string.
    Str,
    /// A Rust path (`Website`, `app::Website`), written as a string.
    Path,
    /// `true` / `false`.
    Bool,
    /// An integer in `min..=max`, read and emitted as Rust type `rust` (its suffix, if
    /// written, must be that type's: `8080u16`).
    Int {
        /// The Rust type of the constant.
        rust: String,
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
        /// The unit, for the reference (`MiB`, `ms`).
        #[serde(default)]
        unit: Option<String>,
    },
    /// An IPv4 address written as a string, emitted as `[u8; 4]`.
    Ipv4,
    /// An IPv4 address with its prefix length (`"10.0.2.15/24"`), a host address of a
    /// subnet; or one of the identifiers in `or` (e.g. `Dhcp`), which `when` can match.
    /// In templates: `<key>.address` (`[u8; 4]`) and `<key>.prefix_len`.
    Ipv4Cidr {
        /// Identifiers accepted instead of an address.
        #[serde(default)]
        or: Vec<String>,
    },
    /// An IPv6 address written as a string (`"fd00::2"`), emitted as `[u8; 16]`.
    Ipv6,
    /// An IPv4 or IPv6 address written as a string (`"0.0.0.0"`, `"::"`), emitted as a
    /// `core::net::IpAddr` constant expression.
    Ip,
    /// An IPv6 address with its prefix length (`"fd00::2/64"`), or one of the
    /// identifiers in `or`. In templates: `<key>.address` (`[u8; 16]`), `<key>.prefix_len`.
    Ipv6Cidr {
        /// Identifiers accepted instead of an address.
        #[serde(default)]
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
    /// A file relative to the appliance's directory; must exist.
    File,
    /// A list of files relative to the appliance's directory; each must exist.
    Files,
    /// A list of strings (ALPN protocol names, names of secrets).
    Strs,
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
    /// A list of `"<device>.<key>"` strings: the keys read at boot.
    BootKeys,
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
            KeyType::Ipv6 => "a string holding an IPv6 address".into(),
            KeyType::Ip => "a string holding an IPv4 or IPv6 address".into(),
            KeyType::Ipv4Cidr { or } | KeyType::Ipv6Cidr { or } => {
                let v = if matches!(self, KeyType::Ipv4Cidr { .. }) {
                    "IPv4"
                } else {
                    "IPv6"
                };
                if or.is_empty() {
                    format!("a string holding an {v} address with its prefix length")
                } else {
                    format!(
                        "{} or `Static(\"..\")` holding an {v} address with its prefix length",
                        or.join(", ")
                    )
                }
            }
            KeyType::IfName => "a string naming a network interface".into(),
            KeyType::Mac => "a string holding a MAC address".into(),
            KeyType::Dir => "a string naming a directory".into(),
            KeyType::File => "a string naming a file".into(),
            KeyType::Files => "a list of strings naming files".into(),
            KeyType::Strs => "a list of strings".into(),
            KeyType::Choice(c) => format!("one of {}", c.join(", ")),
            KeyType::Target => "a target".into(),
            KeyType::Config => {
                "a map from strings to strings, characters, integers, booleans or floats".into()
            }
            KeyType::Devices => "a map from device names to components".into(),
            KeyType::DeviceList => "a list of device names".into(),
            KeyType::BootKeys => "a list of strings naming device keys (`\"http.port\"`)".into(),
        }
    }

    /// The Rust type of the constant this key becomes.
    pub fn rust_type(&self) -> &str {
        match self {
            KeyType::Int { rust, .. } => rust,
            KeyType::Ipv4 => "[u8; 4]",
            KeyType::Ipv6 => "[u8; 16]",
            KeyType::Ip => "core::net::IpAddr",
            KeyType::Bool => "bool",
            KeyType::Files | KeyType::Strs => "&[&str]",
            _ => "&str",
        }
    }

    /// Whether the value names a path below the appliance's directory (watched for
    /// changes, checked to exist).
    pub fn is_path(&self) -> bool {
        matches!(self, KeyType::Dir | KeyType::File | KeyType::Files)
    }
}

/// A device every platform provides.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformDevice {
    /// Its reserved name, e.g. `clock`.
    #[serde(skip)]
    pub name: String,
    /// Shown in reports, e.g. `Clock`.
    pub title: String,
    /// Signatures it provides.
    #[serde(default)]
    pub provides: Vec<String>,
    /// One sentence.
    pub doc: String,
}

/// Whether something can be built today.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub enum Status {
    /// Implemented.
    #[default]
    Ready,
    /// Declared, not implemented yet; the text says what is missing.
    Planned(String),
}

/// A target: a way to run an appliance.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Catalog name, e.g. `unix` (also the `MORGANA_TARGET` value).
    #[serde(skip)]
    pub name: String,
    /// The identifier written in appliance.ron, e.g. `Unix`.
    pub variant: String,
    /// One sentence.
    pub doc: String,
    /// Ready or planned.
    #[serde(default)]
    pub status: Status,
    /// Rust path of the platform type handed to `connect_and_start`.
    #[serde(default)]
    pub platform: String,
    /// Rust path of the entry macro.
    #[serde(default)]
    pub entry: String,
    /// Crates the generated code needs on this target.
    #[serde(default)]
    pub crates: Vec<String>,
    /// Linker arguments for the appliance's binaries; `{{ env.<VAR> }}` stands for the
    /// value of a build-time environment variable listed in `build_env`.
    #[serde(default)]
    pub link_args: Vec<String>,
    /// Environment variables the build script needs: (variable, the crate whose build
    /// script sets it for its direct dependents, Cargo's `links` metadata).
    #[serde(default, deserialize_with = "string_pairs")]
    pub build_env: Vec<(String, String)>,
    /// How each platform device is obtained: (device name, implementation).
    #[serde(default, deserialize_with = "platform_impls")]
    pub devices: Vec<(String, PlatformImpl)>,
    /// Deployment files.
    #[serde(default, deserialize_with = "named")]
    pub files: Vec<TargetFile>,
    /// Where an appliance with boot-time keys reads its words; a ready target needs it.
    #[serde(default)]
    pub boot_words: Option<BootWords>,
}

/// Where a target's boot-time words come from.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootWords {
    /// An expression (a template of `{{ platform }}`) of an iterator of `&'static str`.
    pub words: String,
    /// Which `morgana_boot_args::Source` they are.
    pub source: BootSource,
}

/// `morgana_boot_args::Source`: how the words are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum BootSource {
    /// A kernel command line: words that are not `--` words are the platform's.
    KernelCommandLine,
    /// A process's arguments: every word must be a boot-time key.
    Argv,
}

fn platform_impls<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, PlatformImpl)>, D::Error> {
    let raw: Vec<Pair<PlatformImpl>> = pairs(d, |name, mut p: Pair<PlatformImpl>| {
        p.0 = name;
        p
    })?;
    Ok(raw.into_iter().map(|p| (p.0, p.1)).collect())
}

/// Where a deployment file goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum FileDir {
    /// `OUT_DIR`, next to the generated code.
    #[default]
    OutDir,
    /// The profile directory (`target/<profile>`), next to the binary.
    Profile,
}

/// A deployment file of a target.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "File")]
pub struct TargetFile {
    /// The file name (a template: `{{ name }}.qemu`).
    #[serde(skip)]
    pub name: String,
    /// Where it is written.
    #[serde(default)]
    pub dir: FileDir,
    /// The template file in `schemas/templates/` that renders its text, with
    /// `name`, `file`, `target`, `heap_mib`, `memory_mib`, `binary`, `stem` and
    /// `deploy.<slot>`. A `.xml`/`.json` template's values are escaped for that format.
    pub template: String,
}

/// Variables of a deployment file's name and template besides `deploy`.
/// `binary` is the path of the built binary: absolute when the build script knows the
/// profile directory (see [`crate::compile_with`]), else the bare file name; `stem` is
/// its file name (`<name>`, or `<name>-<target>` for a later target of `target: [..]`).
/// `cmdline` is the appliance's boot command line (`cmdline` in appliance.ron, empty by
/// default).
pub const FILE_VARIABLES: &[&str] = &[
    "name",
    "file",
    "target",
    "heap_mib",
    "memory_mib",
    "binary",
    "stem",
    "cmdline",
];

/// A platform device on one target.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformImpl {
    /// Its Rust type.
    #[serde(rename = "type")]
    pub ty: String,
    /// The expression that obtains it from `{{ platform }}` (a template).
    pub expr: String,
}

/// A component: something a device can be.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Its name in appliance.ron, e.g. `HttpServer`.
    #[serde(skip)]
    pub name: String,
    /// One paragraph.
    pub doc: String,
    /// A short noun phrase, e.g. `TCP/IP stack` (reports say what was left out by it);
    /// may be empty.
    #[serde(default)]
    pub title: String,
    /// Signatures it provides.
    #[serde(default)]
    pub provides: Vec<String>,
    /// Devices it needs.
    #[serde(default, deserialize_with = "named")]
    pub requires: Vec<Requirement>,
    /// Its config keys.
    #[serde(default, deserialize_with = "named")]
    pub keys: Vec<KeySpec>,
    /// Implementations, tried in order; the first whose targets and `when` match wins.
    #[serde(default)]
    pub impls: Vec<Impl>,
    /// The catalog file it is written in (for messages), e.g. `schemas/catalog.ron`.
    #[serde(skip)]
    pub file: String,
}

/// A dependency of a component on a device providing a signature.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// The key naming the device, e.g. `net`; also the template variable.
    #[serde(skip)]
    pub name: String,
    /// The signature the device must provide.
    pub signature: String,
    /// Why it is needed, for the report (may be empty).
    #[serde(default)]
    pub purpose: String,
    /// The requirement exists only when these choice keys have these variants.
    #[serde(default, deserialize_with = "conditions")]
    pub when: Vec<(String, String)>,
    /// One sentence.
    pub doc: String,
}

impl Requirement {
    /// The key naming the device (the entry's name).
    pub fn key(&self) -> &str {
        &self.name
    }
}

/// One implementation of a component.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Impl {
    /// Target names, or `*` for every target.
    pub targets: Vec<String>,
    /// Conditions on `Choice` keys: (key, variant).
    #[serde(default, deserialize_with = "conditions")]
    pub when: Vec<(String, String)>,
    /// What the device becomes.
    pub code: Code,
    /// Crates the code needs.
    #[serde(default)]
    pub crates: Vec<String>,
    /// Whether the device's value may be handed to several users (it is `Copy`).
    #[serde(default)]
    pub shared: bool,
    /// Whether the device's value is a `Clone` handle that several users may share
    /// (each gets `<device>.clone()`), e.g. a TCP stack under both HTTPS and plain HTTP.
    #[serde(default)]
    pub cloned: bool,
    /// Contributions to the target's deployment files: (slot, template). A file (or
    /// another contribution) says `{{ deploy.<slot> }}` to get the contributions of every
    /// included device to `<slot>`, concatenated in connect order.
    #[serde(default, deserialize_with = "string_pairs")]
    pub deploy: Vec<(String, String)>,
    /// A resource the device takes for itself (a template over the device's keys, e.g.
    /// `tap device {{ tap }}`); two included devices claiming the same one is an error.
    #[serde(default)]
    pub claims: String,
    /// How many devices of this component an appliance may declare on this
    /// implementation's targets (a kernel's disks); more is an error at the first one
    /// too many. `None`: no limit.
    #[serde(default)]
    pub max_devices: Option<usize>,
    /// Data compiled at build time for the device (see [`crate::archive`]).
    #[serde(default)]
    pub build: Option<Build>,
    /// Cargo features of its crates that some uses need (the build checks that the
    /// appliance's Cargo.toml turns them on, and says how).
    #[serde(default)]
    pub features: Vec<Feature>,
}

/// A cargo feature of a crate that an implementation needs when it is used a certain
/// way: when another device requires one of its signatures (`used`), or when one of its
/// optional keys is set (`set`). Cargo features cannot be turned on by a build script,
/// so the appliance's Cargo.toml must list them; codegen checks it and names the line.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    /// The crate (package name), e.g. `morgana-direct`.
    #[serde(rename = "crate")]
    pub krate: String,
    /// The feature, e.g. `udp`.
    pub feature: String,
    /// Needed when an included device requires this signature of the device.
    #[serde(default)]
    pub used: Option<String>,
    /// Needed when this optional key of the device is set. Without `used` and `set`,
    /// needed whenever the implementation is chosen.
    #[serde(default)]
    pub set: Option<String>,
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

/// A build step: the component's build-time compiler turns the files a key names into
/// an rkyv archive that the generated code includes (`{{ archive }}`), or into Rust
/// constants that the templates place (`{{ compiled }}`), by the compiler's
/// [`crate::archive::Form`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// The compiler's name (see [`crate::archive::COMPILERS`]).
    pub compiler: String,
    /// The key (a `File` or `Files`) whose files it compiles.
    pub input: String,
    /// A `Strs` key saying what each file holds, in the files' order (the DNS zones'
    /// names); given to the compiler as `Input::names`, checked to count one per file.
    #[serde(default)]
    pub names: Option<String>,
}

/// What a device becomes in generated code.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Code {
    /// `pub type Alias = ty;` and `let name = <connect>?;` (`.map_err` added).
    Connect {
        /// Type template.
        #[serde(rename = "type")]
        ty: String,
        /// Values made before `connect`: (name, template of an expression yielding
        /// `Result<T, E: Display>`, ending in `.await` if it is a future). Each becomes
        /// `let <device>_<name> = ..?;` and `{{ <name> }}` in `connect` (and in later
        /// steps) names it.
        #[serde(default, deserialize_with = "string_pairs")]
        prepare: Vec<(String, String)>,
        /// Template of the expression yielding `Result<Self, E: Display>` (ending in
        /// `.await` for a future).
        connect: String,
    },
    /// `pub static NAME: ty = init;`, handed out as `&NAME`.
    Static {
        /// Type template.
        #[serde(rename = "type")]
        ty: String,
        /// Initialiser template (a constant expression).
        init: String,
    },
    /// Declared, not implemented yet.
    Planned(String),
    /// Never possible on these targets; the text says what to use instead.
    Unsupported(String),
}

impl Catalog {
    /// The catalog in `schemas/catalog.ron` and `schemas/catalog/` (decoded, merged and
    /// checked once).
    pub fn builtin() -> Result<&'static Catalog, crate::diag::Diagnostics> {
        static BUILTIN: std::sync::OnceLock<Result<Catalog, crate::diag::Diagnostics>> =
            std::sync::OnceLock::new();
        BUILTIN
            .get_or_init(|| Catalog::from_sources(BUILTIN_FILES))
            .as_ref()
            .map_err(Clone::clone)
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
        let net = cat.component("Network").expect("Network");
        assert_eq!(net.keys[0].name, "stack");
        assert_eq!(net.requires[0].name, "clock");
    }

    /// `qemu` and `xen-only` are the `xen` kernel for one hypervisor: every key and
    /// implementation the catalog gives `xen` must name them too (the catalog writes the
    /// three out; this keeps a later edit from forgetting one).
    #[test]
    fn the_one_hypervisor_targets_follow_xen() {
        let cat = Catalog::builtin().unwrap_or_else(|d| panic!("{d}"));
        let narrowed = ["qemu", "xen-only"];
        for t in narrowed {
            let target = cat.target(t).unwrap_or_else(|| panic!("target {t}"));
            assert_eq!(target.status, Status::Ready);
            assert_eq!(target.platform, cat.target("xen").expect("xen").platform);
        }
        let keys = cat
            .appliance
            .iter()
            .chain(cat.components.iter().flat_map(|c| c.keys.iter()));
        for k in keys {
            if k.targets.iter().any(|t| t == "xen") {
                for t in narrowed {
                    assert!(
                        k.targets.iter().any(|x| x == t),
                        "key {}: not on {t}",
                        k.name
                    );
                }
            }
            if let Some((_, d)) = k.target_defaults.iter().find(|(t, _)| t == "xen") {
                for t in narrowed {
                    let on = k.target_defaults.iter().find(|(x, _)| x == t);
                    assert_eq!(
                        on.map(|(_, v)| &v.text),
                        Some(&d.text),
                        "key {}: {t}",
                        k.name
                    );
                }
            }
        }
        for c in &cat.components {
            for (i, imp) in c.impls.iter().enumerate() {
                if imp.targets.iter().any(|t| t == "xen") {
                    for t in narrowed {
                        assert!(imp.for_target(t), "{} impl {i}: not on {t}", c.name);
                    }
                }
            }
        }
    }

    #[test]
    fn catalog_errors_point_into_the_catalog() {
        let bad = "Catalog(\n  components: {\"X\": Component(doc: \"\", provides: [\"nope\"], colour: 1)})";
        let d = Catalog::from_sources(&[("bad.ron", bad)]).expect_err("bad catalog");
        let text = d.to_string();
        assert!(text.contains("colour"), "{text}");
        assert!(text.contains("--> bad.ron:2:"), "{text}");
    }

    /// `boot: true` only on what morgana-boot-args parses, `boot_name` only with it; each
    /// problem at its key's line and column in the catalog file.
    #[test]
    fn boot_keys_are_checked_where_they_are_written() {
        let ext = r#"#![enable(implicit_some)]
Catalog(
  components: {
    "Greeter": Component(
      doc: "",
      keys: {
        "greeting": Key(type: Str, default: "hi", boot: true, doc: "What to say."),
        "port": Key(type: Int(rust: "u16", min: 0, max: 65535), default: 7, boot_name: "p", doc: ""),
        "delta": Key(type: Int(rust: "i32", min: -5, max: 5), default: 0, boot: true, doc: ""),
        "port2": Key(type: Int(rust: "u16", min: 0, max: 65535), default: 7, boot: true, boot_name: "Port_2", doc: ""),
      },
    ),
  },
)"#;
        let mut files = BUILTIN_FILES.to_vec();
        files.push(("boot.catalog.ron", ext));
        let text = Catalog::from_sources(&files)
            .expect_err("bad boot keys")
            .to_string();
        for (what, at) in [
            (
                "`greeting`: `boot: true` on a string",
                "boot.catalog.ron:7:9",
            ),
            (
                "`port`: `boot_name` and `boot_doc` need `boot: true`",
                "boot.catalog.ron:8:9",
            ),
            (
                "`delta`: `boot: true` on an integer (i32)",
                "boot.catalog.ron:9:9",
            ),
            (
                "boot name `Port_2`: use lower-case letters",
                "boot.catalog.ron:10:9",
            ),
        ] {
            assert!(text.contains(what), "{what}\n{text}");
            assert!(text.contains(&format!("--> {at}")), "{at}\n{text}");
        }
    }
}
