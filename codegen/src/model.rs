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
    /// A string (or a path, or a directory).
    Str(String),
    /// A boolean.
    Bool(bool),
    /// A float.
    Float(f64),
    /// One of a `Choice`'s variants.
    Choice(String),
    /// An IPv4 address.
    Ipv4([u8; 4]),
    /// An IPv4 address with its prefix length.
    Ipv4Cidr([u8; 4], u8),
    /// An optional key left out.
    Absent,
}

impl Scalar {
    /// As written in appliance.ron (for comments and reports).
    pub fn ron(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => format!("{s:?}"),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Float(f) => format!("{f:?}"),
            Scalar::Choice(c) => c.clone(),
            Scalar::Ipv4(_) | Scalar::Ipv4Cidr(..) => format!("\"{}\"", self.plain()),
            Scalar::Absent => "(none)".into(),
        }
    }

    /// As plain text (deployment files): no quotes, addresses dotted.
    pub fn plain(&self) -> String {
        match self {
            Scalar::Str(s) => s.clone(),
            Scalar::Ipv4(a) => format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]),
            Scalar::Ipv4Cidr(a, len) => format!("{}.{}.{}.{}/{len}", a[0], a[1], a[2], a[3]),
            Scalar::Absent => String::new(),
            other => other.ron(),
        }
    }

    /// As a Rust literal.
    pub fn rust(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => format!("{s:?}"),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Float(f) => format!("{f:?}"),
            Scalar::Choice(c) => c.clone(),
            Scalar::Ipv4(a) => format!("[{}, {}, {}, {}]", a[0], a[1], a[2], a[3]),
            Scalar::Ipv4Cidr(a, len) => {
                format!("([{}, {}, {}, {}], {len})", a[0], a[1], a[2], a[3])
            }
            Scalar::Absent => "None".into(),
        }
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
}
