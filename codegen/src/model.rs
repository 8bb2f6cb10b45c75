//! The typed model of an appliance: what check.rs makes of the syntax tree once every
//! key is known, typed and in range.

use crate::diag::Span;

/// Where a setting's value came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Origin {
    /// Written in appliance.ron, here.
    Source(Span),
    /// The catalog's default.
    Default,
    /// The catalog's default for the chosen target (`target_defaults`).
    TargetDefault,
    /// The environment (`MORGANA_TARGET`).
    Env,
}

impl Origin {
    /// The span, if the value was written in the file.
    pub fn span(self) -> Option<Span> {
        match self {
            Origin::Source(s) => Some(s),
            _ => None,
        }
    }
}

/// A checked scalar value.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// An integer (already range-checked).
    Int(i128),
    /// A string (or a path, a directory, a file).
    Str(String),
    /// A character.
    Char(char),
    /// A boolean.
    Bool(bool),
    /// A float.
    Float(f64),
    /// One of a `Choice`'s variants (or an address key's identifier, `Dhcp`).
    Choice(String),
    /// An IPv4 address.
    Ipv4([u8; 4]),
    /// An IPv4 address with its prefix length.
    Ipv4Cidr([u8; 4], u8),
    /// An IPv6 address.
    Ipv6([u8; 16]),
    /// An IPv6 address with its prefix length.
    Ipv6Cidr([u8; 16], u8),
    /// An IPv4 or IPv6 address (a `core::net::IpAddr` in code).
    Ip(std::net::IpAddr),
    /// A list of strings (files).
    List(Vec<String>),
    /// An optional key left out (or written `None`).
    Absent,
}

fn bytes(b: &[u8]) -> String {
    let v: Vec<String> = b.iter().map(u8::to_string).collect();
    format!("[{}]", v.join(", "))
}

/// An IPv6 address as its eight 16-bit groups, in hex: `0xfd00, 0, 0, 0, 0, 0, 0, 0x2`.
pub fn groups(octets: &[u8; 16]) -> String {
    let g: Vec<String> = std::net::Ipv6Addr::from(*octets)
        .segments()
        .iter()
        .map(|s| {
            if *s == 0 {
                "0".to_string()
            } else {
                format!("{s:#x}")
            }
        })
        .collect();
    g.join(", ")
}

impl Scalar {
    /// As written in appliance.ron (for comments and reports).
    pub fn ron(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => format!("{s:?}"),
            Scalar::Char(c) => format!("{c:?}"),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Float(f) => format!("{f:?}"),
            Scalar::Choice(c) => c.clone(),
            Scalar::Ipv4(_) | Scalar::Ipv6(_) | Scalar::Ip(_) => format!("\"{}\"", self.plain()),
            Scalar::Ipv4Cidr(..) | Scalar::Ipv6Cidr(..) => format!("Static(\"{}\")", self.plain()),
            Scalar::List(l) => format!(
                "[{}]",
                l.iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Scalar::Absent => "None".into(),
        }
    }

    /// As plain text (deployment files): no quotes, addresses dotted.
    pub fn plain(&self) -> String {
        match self {
            Scalar::Str(s) => s.clone(),
            Scalar::Char(c) => c.to_string(),
            Scalar::Ipv4(a) => std::net::Ipv4Addr::from(*a).to_string(),
            Scalar::Ipv4Cidr(a, len) => format!("{}/{len}", std::net::Ipv4Addr::from(*a)),
            Scalar::Ipv6(a) => std::net::Ipv6Addr::from(*a).to_string(),
            Scalar::Ip(a) => a.to_string(),
            Scalar::Ipv6Cidr(a, len) => format!("{}/{len}", std::net::Ipv6Addr::from(*a)),
            Scalar::List(l) => l.join(" "),
            Scalar::Absent => String::new(),
            other => other.ron(),
        }
    }

    /// As a Rust literal (a float as `f64`; see [`float_literal`] for `f32`).
    pub fn rust(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => format!("{s:?}"),
            Scalar::Char(c) => format!("{c:?}"),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Float(f) => float_literal(*f, "f64"),
            Scalar::Choice(c) => c.clone(),
            Scalar::Ipv4(a) => bytes(a),
            Scalar::Ipv6(a) => bytes(a),
            Scalar::Ip(std::net::IpAddr::V4(a)) => format!(
                "core::net::IpAddr::V4(core::net::Ipv4Addr::new({}))",
                a.octets().map(|o| o.to_string()).join(", ")
            ),
            Scalar::Ip(std::net::IpAddr::V6(a)) => format!(
                "core::net::IpAddr::V6(core::net::Ipv6Addr::new({}))",
                groups(&a.octets())
            ),
            Scalar::Ipv4Cidr(a, len) => format!("({}, {len})", bytes(a)),
            Scalar::Ipv6Cidr(a, len) => format!("({}, {len})", bytes(a)),
            Scalar::List(l) => format!(
                "&[{}]",
                l.iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Scalar::Absent => "None".into(),
        }
    }
}

/// A float as a Rust literal of type `ty` (`f32` or `f64`): `0.5`, `1e300`,
/// `f64::INFINITY`, `f32::NAN`.
pub fn float_literal(f: f64, ty: &str) -> String {
    if f.is_nan() {
        format!("{ty}::NAN")
    } else if f == f64::INFINITY {
        format!("{ty}::INFINITY")
    } else if f == f64::NEG_INFINITY {
        format!("{ty}::NEG_INFINITY")
    } else if ty == "f32" {
        format!("{:?}", f as f32)
    } else {
        format!("{f:?}")
    }
}

/// A component key with its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Scalar,
    /// Written or defaulted.
    pub origin: Origin,
}

/// A requirement key written explicitly: `net: "net"`.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    /// The requirement key.
    pub key: String,
    /// The device named.
    pub device: String,
    /// Where the name is written.
    pub span: Span,
}

/// A declared device.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    /// Its name (a lower-case identifier).
    pub name: String,
    /// Where the name is written.
    pub name_span: Span,
    /// The component's name (empty when it was unknown: then checking failed).
    pub component: String,
    /// Where the component's name is written.
    pub component_span: Span,
    /// Every key of the component, in catalog order (defaults filled in).
    pub settings: Vec<Setting>,
    /// Requirements given explicitly.
    pub refs: Vec<Reference>,
    /// Keys written in the file that mean nothing on the chosen target (the key's
    /// `targets`), with where they are written: ignored, and reported.
    pub ignored: Vec<(String, Span)>,
    /// Keys written in the file that the catalog marks deprecated, with where they are
    /// written: they work, and are reported.
    pub deprecated: Vec<(String, Span)>,
}

impl Device {
    /// The setting for `key`.
    pub fn setting(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }
}

/// An application constant from `config`.
#[derive(Clone, Debug, PartialEq)]
pub struct AppConst {
    /// The key as written.
    pub key: String,
    /// Its value.
    pub value: Scalar,
    /// Its Rust type: `&str`, `char`, `bool`, `u64`/`i64` (or the suffix's), `f64` (or
    /// `f32` by suffix).
    pub ty: String,
    /// Where the value is written.
    pub span: Span,
}

/// A checked appliance description.
#[derive(Clone, Debug, PartialEq)]
pub struct Appliance {
    /// `name`.
    pub name: String,
    /// Catalog name of the chosen target.
    pub target: String,
    /// Where the target came from.
    pub target_origin: Origin,
    /// The targets `target` names, in order, with where each is written: one for
    /// `target: Xen`, several for `target: [Unix, Xen]` (one binary each), none when
    /// `target` is not written.
    pub targets: Vec<(String, Span)>,
    /// `main`: a Rust path.
    pub main: String,
    /// Where `main` is written.
    pub main_span: Span,
    /// `heap_mib`.
    pub heap_mib: u64,
    /// `memory_mib`: the memory of a kernel target's VM.
    pub memory_mib: u64,
    /// `log_level`.
    pub log_level: String,
    /// `config`, in order.
    pub config: Vec<AppConst>,
    /// `devices`, in order.
    pub devices: Vec<Device>,
    /// `start`: device names with where they are written.
    pub start: Vec<(String, Span)>,
    /// `boot`: the device keys read at boot, as written (each names a declared device
    /// and one of its component's `boot` keys).
    pub boot: Vec<BootChoice>,
    /// `cmdline`: the boot command line of the deployment files, and where it is
    /// written (`None`: the default, empty).
    pub cmdline: (String, Option<Span>),
}

/// One entry of `boot: [..]`: `"<device>.<key>"`.
#[derive(Clone, Debug, PartialEq)]
pub struct BootChoice {
    /// The device.
    pub device: String,
    /// The key.
    pub key: String,
    /// Where the entry is written.
    pub span: Span,
}
