//! appliance.ron is RON: morgana-codegen's front end (`syntax` + `check`) and the `ron`
//! crate must agree on every document of a corpus — both accept it and read the same
//! values, or both reject it.
//!
//! `ron` reads a document into `model::Appliance`, the Rust types the built-in catalog
//! stands for (a struct `Appliance`, strings, integers of each key's type, enums for
//! targets and choices, `Option`s for optional keys, `Ipv4 { Dhcp, Static(String) }`,
//! components as an enum of struct variants, application constants as any RON number,
//! string, character or boolean); morgana-codegen reads it with `morgana_codegen::read`.
//! Both readings are reduced to the same `Norm` (the values written, with the catalog's
//! defaults for the top-level keys) and compared.
//!
//! The corpus: whole documents written for this test, and documents made by putting
//! value facts into one slot of a valid appliance — facts taken from the `ron` crate's
//! own test suite (number underscores and suffixes, escapes, raw identifiers, comments,
//! trailing commas, `implicit_some`, ...; `ron-rs/ron` tests/*.rs, named with each
//! group) and our own. Only syntax and the reading of values are compared: the corpus
//! keeps to names, paths and addresses that the catalog's checks accept.

use std::path::Path;

use morgana_codegen::model::{Appliance, Origin, Scalar};

/// The catalog's shape of an appliance, as serde types.
mod model {
    use std::fmt;

    use serde::Deserialize;
    use serde::de::{self, Deserializer, MapAccess, Visitor};

    fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        T::deserialize(d).map(Some)
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename = "Appliance")]
    pub struct Appliance {
        pub name: String,
        #[serde(default, deserialize_with = "present")]
        pub target: Option<Target>,
        pub main: String,
        #[serde(default, deserialize_with = "present")]
        pub heap_mib: Option<usize>,
        #[serde(default, deserialize_with = "present")]
        pub memory_mib: Option<u32>,
        #[serde(default, deserialize_with = "present")]
        pub log_level: Option<LogLevel>,
        #[serde(default, deserialize_with = "present")]
        pub config: Option<Ordered<Const>>,
        #[serde(default, deserialize_with = "present")]
        pub devices: Option<Ordered<Component>>,
        #[serde(default, deserialize_with = "present")]
        pub start: Option<Vec<String>>,
        #[serde(default, deserialize_with = "present")]
        pub boot: Option<Vec<String>>,
        #[serde(default, deserialize_with = "present")]
        pub cmdline: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    pub enum Target {
        Unix,
        Xen,
    }

    #[derive(Debug, Deserialize)]
    pub enum LogLevel {
        Off,
        Error,
        Warn,
        Info,
        Debug,
        Trace,
    }

    #[derive(Debug, Deserialize)]
    pub enum Stack {
        Host,
        Direct,
    }

    #[derive(Debug, Deserialize)]
    pub enum Ipv4 {
        Dhcp,
        Off,
        Static(String),
    }

    #[derive(Debug, Deserialize)]
    pub enum Ipv6 {
        LinkLocal,
        Slaac,
        Static(String),
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub enum Component {
        Crunch {
            dir: String,
        },
        Network {
            #[serde(default, deserialize_with = "present")]
            stack: Option<Stack>,
            #[serde(default, deserialize_with = "present")]
            ipv4: Option<Ipv4>,
            #[serde(default, deserialize_with = "present")]
            gateway: Option<Option<String>>,
            #[serde(default, deserialize_with = "present")]
            ipv6: Option<Option<Ipv6>>,
            #[serde(default, deserialize_with = "present")]
            gateway6: Option<Option<String>>,
            #[serde(default, deserialize_with = "present")]
            tap: Option<String>,
            #[serde(default, deserialize_with = "present")]
            bridge: Option<String>,
            #[serde(default, deserialize_with = "present")]
            mac: Option<Option<String>>,
            #[serde(default, deserialize_with = "present")]
            clock: Option<String>,
            #[serde(default, deserialize_with = "present")]
            entropy: Option<String>,
        },
        HttpServer {
            #[serde(default, deserialize_with = "present")]
            net: Option<String>,
            #[serde(default, deserialize_with = "present")]
            clock: Option<String>,
            #[serde(default, deserialize_with = "present")]
            address: Option<String>,
            #[serde(default, deserialize_with = "present")]
            port: Option<u16>,
            #[serde(default, deserialize_with = "present")]
            max_connections: Option<usize>,
            #[serde(default, deserialize_with = "present")]
            idle_timeout_ms: Option<u64>,
        },
        DnsServer {
            #[serde(default, deserialize_with = "present")]
            net: Option<String>,
            #[serde(default, deserialize_with = "present")]
            clock: Option<String>,
            zones: Vec<String>,
            #[serde(default, deserialize_with = "present")]
            origins: Option<Vec<String>>,
            #[serde(default, deserialize_with = "present")]
            address: Option<String>,
            #[serde(default, deserialize_with = "present")]
            port: Option<u16>,
            #[serde(default, deserialize_with = "present")]
            max_tcp_connections: Option<usize>,
            #[serde(default, deserialize_with = "present")]
            tcp_idle_timeout_ms: Option<u64>,
        },
        UdpSocket {
            #[serde(default, deserialize_with = "present")]
            net: Option<String>,
            #[serde(default, deserialize_with = "present")]
            address: Option<String>,
            port: u16,
        },
        Redirects {
            file: String,
        },
        // Storage (schemas/catalog/storage.ron).
        Block {
            image: String,
            #[serde(default, deserialize_with = "present")]
            size_mib: Option<u64>,
            #[serde(default, deserialize_with = "present")]
            read_only: Option<bool>,
            #[serde(default, deserialize_with = "present")]
            sync: Option<Sync>,
        },
        KvStore {
            #[serde(default, deserialize_with = "present")]
            block: Option<String>,
            #[serde(default, deserialize_with = "present")]
            entropy: Option<String>,
            #[serde(default, deserialize_with = "present")]
            cache_entries: Option<usize>,
            #[serde(default, deserialize_with = "present")]
            cache_max_value: Option<usize>,
            #[serde(default, deserialize_with = "present")]
            max_space_percent: Option<u32>,
            #[serde(default, deserialize_with = "present")]
            salvage: Option<bool>,
        },
        KvImage {
            #[serde(default, deserialize_with = "present")]
            block: Option<String>,
        },
        RedisServer {
            #[serde(default, deserialize_with = "present")]
            net: Option<String>,
            #[serde(default, deserialize_with = "present")]
            store: Option<String>,
            #[serde(default, deserialize_with = "present")]
            clock: Option<String>,
            #[serde(default, deserialize_with = "present")]
            address: Option<String>,
            #[serde(default, deserialize_with = "present")]
            port: Option<u16>,
            #[serde(default, deserialize_with = "present")]
            durability: Option<Durability>,
            #[serde(default, deserialize_with = "present")]
            max_connections: Option<usize>,
            #[serde(default, deserialize_with = "present")]
            idle_timeout_ms: Option<u64>,
            #[serde(default, deserialize_with = "present")]
            max_request: Option<usize>,
        },
    }

    #[derive(Debug, Deserialize)]
    pub enum Sync {
        Fdatasync,
        Direct,
    }

    #[derive(Debug, Deserialize)]
    pub enum Durability {
        Always,
        EverySec,
    }

    /// An application constant: any RON string, character, boolean or number.
    #[derive(Debug, PartialEq)]
    pub enum Const {
        Str(String),
        Char(char),
        Bool(bool),
        Int(i128),
        Float(f64),
    }

    impl<'de> Deserialize<'de> for Const {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Const, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Const;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string, character, boolean or number")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Const, E> {
                    Ok(Const::Str(v.to_string()))
                }
                fn visit_char<E: de::Error>(self, v: char) -> Result<Const, E> {
                    Ok(Const::Char(v))
                }
                fn visit_bool<E: de::Error>(self, v: bool) -> Result<Const, E> {
                    Ok(Const::Bool(v))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Const, E> {
                    Ok(Const::Int(v.into()))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Const, E> {
                    Ok(Const::Int(v.into()))
                }
                fn visit_f32<E: de::Error>(self, v: f32) -> Result<Const, E> {
                    Ok(Const::Float(v.into()))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Const, E> {
                    Ok(Const::Float(v))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// A map with string keys, in order; a key written twice is an error (as it is for
    /// devices and constants).
    #[derive(Debug)]
    pub struct Ordered<T>(pub Vec<(String, T)>);

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<T>(std::marker::PhantomData<T>);
            impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
                type Value = Ordered<T>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a map")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered<T>, A::Error> {
                    let mut out: Vec<(String, T)> = Vec::new();
                    while let Some(k) = m.next_key::<String>()? {
                        if out.iter().any(|(n, _)| *n == k) {
                            return Err(de::Error::custom(format!("`{k}` twice")));
                        }
                        let v = m.next_value()?;
                        out.push((k, v));
                    }
                    Ok(Ordered(out))
                }
            }
            d.deserialize_map(V(std::marker::PhantomData))
        }
    }
}

/// A device's keys and their values, as text.
type Keys = Vec<(String, String)>;

/// A reading of a document, reduced to what both readers can say.
#[derive(Debug)]
struct Norm {
    name: String,
    target: String,
    main: String,
    heap_mib: i128,
    memory_mib: i128,
    log_level: String,
    config: Vec<(String, model::Const)>,
    /// (device, component, the keys written and their values as text, sorted).
    devices: Vec<(String, String, Keys)>,
    start: Vec<String>,
    /// `boot`, as `device.key`.
    boot: Vec<String>,
    cmdline: String,
    /// (device, key) written for another target (morgana ignores them; `ron` cannot
    /// know): left out of the comparison.
    ignored: Vec<(String, String)>,
}

impl Norm {
    /// Without the keys that `other` ignored.
    fn without(mut self, ignored: &[(String, String)]) -> Norm {
        for (dev, _, keys) in &mut self.devices {
            keys.retain(|(k, _)| !ignored.iter().any(|(d, i)| d == dev && i == k));
        }
        self
    }
}

fn same_float(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

impl PartialEq for Norm {
    fn eq(&self, o: &Norm) -> bool {
        let consts = self.config.len() == o.config.len()
            && self.config.iter().zip(&o.config).all(|((k, a), (l, b))| {
                k == l
                    && match (a, b) {
                        (model::Const::Float(x), model::Const::Float(y)) => same_float(*x, *y),
                        _ => a == b,
                    }
            });
        consts
            && (
                &self.name,
                &self.target,
                &self.main,
                self.heap_mib,
                self.memory_mib,
            ) == (&o.name, &o.target, &o.main, o.heap_mib, o.memory_mib)
            && self.log_level == o.log_level
            && self.devices == o.devices
            && self.start == o.start
            && self.boot == o.boot
            && self.cmdline == o.cmdline
    }
}

fn ron_norm(a: model::Appliance) -> Norm {
    use model::Component as C;
    let opt = |o: &Option<Option<String>>| {
        o.as_ref()
            .map(|inner| inner.clone().unwrap_or_else(|| "None".into()))
    };
    let mut devices = Vec::new();
    for (name, c) in a.devices.map(|d| d.0).unwrap_or_default() {
        let mut keys: Vec<(&str, Option<String>)> = Vec::new();
        let component = match c {
            C::Crunch { dir } => {
                keys.push(("dir", Some(dir)));
                "Crunch"
            }
            C::Network {
                stack,
                ipv4,
                gateway,
                ipv6,
                gateway6,
                tap,
                bridge,
                mac,
                clock,
                entropy,
            } => {
                keys.push(("stack", stack.map(|s| format!("{s:?}"))));
                keys.push((
                    "ipv4",
                    ipv4.map(|i| match i {
                        model::Ipv4::Dhcp => "Dhcp".into(),
                        model::Ipv4::Off => "Off".into(),
                        model::Ipv4::Static(s) => s,
                    }),
                ));
                keys.push(("gateway", opt(&gateway)));
                keys.push((
                    "ipv6",
                    ipv6.map(|i| match i {
                        None => "None".into(),
                        Some(model::Ipv6::LinkLocal) => "LinkLocal".into(),
                        Some(model::Ipv6::Slaac) => "Slaac".into(),
                        Some(model::Ipv6::Static(s)) => s,
                    }),
                ));
                keys.push(("gateway6", opt(&gateway6)));
                keys.push(("tap", tap));
                keys.push(("bridge", bridge));
                keys.push((
                    "mac",
                    opt(&mac).map(|m| {
                        if m == "None" {
                            m
                        } else {
                            m.to_ascii_lowercase()
                        }
                    }),
                ));
                keys.push(("clock", clock));
                keys.push(("entropy", entropy));
                "Network"
            }
            C::HttpServer {
                net,
                clock,
                address,
                port,
                max_connections,
                idle_timeout_ms,
            } => {
                keys.push(("net", net));
                keys.push(("clock", clock));
                keys.push(("address", address));
                keys.push(("port", port.map(|p| p.to_string())));
                keys.push(("max_connections", max_connections.map(|p| p.to_string())));
                keys.push(("idle_timeout_ms", idle_timeout_ms.map(|p| p.to_string())));
                "HttpServer"
            }
            C::DnsServer {
                net,
                clock,
                zones,
                origins,
                address,
                port,
                max_tcp_connections,
                tcp_idle_timeout_ms,
            } => {
                keys.push(("net", net));
                keys.push(("clock", clock));
                keys.push(("zones", Some(zones.join(" "))));
                keys.push(("origins", origins.map(|o| o.join(" "))));
                keys.push(("address", address));
                keys.push(("port", port.map(|p| p.to_string())));
                keys.push((
                    "max_tcp_connections",
                    max_tcp_connections.map(|p| p.to_string()),
                ));
                keys.push((
                    "tcp_idle_timeout_ms",
                    tcp_idle_timeout_ms.map(|p| p.to_string()),
                ));
                "DnsServer"
            }
            C::UdpSocket { net, address, port } => {
                keys.push(("net", net));
                keys.push(("address", address));
                keys.push(("port", Some(port.to_string())));
                "UdpSocket"
            }
            C::Redirects { file } => {
                keys.push(("file", Some(file)));
                "Redirects"
            }
            C::Block {
                image,
                size_mib,
                read_only,
                sync,
            } => {
                keys.push(("image", Some(image)));
                keys.push(("size_mib", size_mib.map(|v| v.to_string())));
                keys.push(("read_only", read_only.map(|v| v.to_string())));
                keys.push(("sync", sync.map(|v| format!("{v:?}"))));
                "Block"
            }
            C::KvStore {
                block,
                entropy,
                cache_entries,
                cache_max_value,
                max_space_percent,
                salvage,
            } => {
                keys.push(("block", block));
                keys.push(("entropy", entropy));
                keys.push(("cache_entries", cache_entries.map(|v| v.to_string())));
                keys.push(("cache_max_value", cache_max_value.map(|v| v.to_string())));
                keys.push((
                    "max_space_percent",
                    max_space_percent.map(|v| v.to_string()),
                ));
                keys.push(("salvage", salvage.map(|v| v.to_string())));
                "KvStore"
            }
            C::KvImage { block } => {
                keys.push(("block", block));
                "KvImage"
            }
            C::RedisServer {
                net,
                store,
                clock,
                address,
                port,
                durability,
                max_connections,
                idle_timeout_ms,
                max_request,
            } => {
                keys.push(("net", net));
                keys.push(("store", store));
                keys.push(("clock", clock));
                keys.push(("address", address));
                keys.push(("port", port.map(|v| v.to_string())));
                keys.push(("durability", durability.map(|v| format!("{v:?}"))));
                keys.push(("max_connections", max_connections.map(|v| v.to_string())));
                keys.push(("idle_timeout_ms", idle_timeout_ms.map(|v| v.to_string())));
                keys.push(("max_request", max_request.map(|v| v.to_string())));
                "RedisServer"
            }
        };
        let mut written: Vec<(String, String)> = keys
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?)))
            .collect();
        written.sort();
        devices.push((name, component.to_string(), written));
    }
    Norm {
        name: a.name,
        target: a.target.map_or("Unix".into(), |t| format!("{t:?}")),
        main: a.main,
        heap_mib: a.heap_mib.map_or(16, |v| v as i128),
        memory_mib: a.memory_mib.map_or(32, i128::from),
        log_level: a.log_level.map_or("Info".into(), |l| format!("{l:?}")),
        config: a.config.map(|c| c.0).unwrap_or_default(),
        devices,
        start: a.start.unwrap_or_default(),
        boot: a.boot.unwrap_or_default(),
        cmdline: a.cmdline.unwrap_or_default(),
        ignored: Vec::new(),
    }
}

fn morgana_norm(a: Appliance) -> Norm {
    let text = |s: &Scalar| match s {
        Scalar::Absent => "None".to_string(),
        other => other.plain(),
    };
    let devices = a
        .devices
        .iter()
        .map(|d| {
            let mut written: Vec<(String, String)> = d
                .settings
                .iter()
                .filter(|s| matches!(s.origin, Origin::Source(_)))
                .map(|s| (s.key.clone(), text(&s.value)))
                .chain(d.refs.iter().map(|r| (r.key.clone(), r.device.clone())))
                .collect();
            written.sort();
            (d.name.clone(), d.component.clone(), written)
        })
        .collect();
    let config = a
        .config
        .iter()
        .map(|c| {
            let v = match &c.value {
                Scalar::Str(s) => model::Const::Str(s.clone()),
                Scalar::Char(ch) => model::Const::Char(*ch),
                Scalar::Bool(b) => model::Const::Bool(*b),
                Scalar::Int(i) => model::Const::Int(*i),
                Scalar::Float(f) => model::Const::Float(*f),
                other => model::Const::Str(format!("unexpected {other:?}")),
            };
            (c.key.clone(), v)
        })
        .collect();
    Norm {
        name: a.name,
        target: match a.target.as_str() {
            "xen" => "Xen".into(),
            _ => "Unix".into(),
        },
        main: a.main,
        heap_mib: a.heap_mib.into(),
        memory_mib: a.memory_mib.into(),
        log_level: a.log_level,
        config,
        devices,
        start: a.start.into_iter().map(|(n, _)| n).collect(),
        boot: a
            .boot
            .iter()
            .map(|b| format!("{}.{}", b.device, b.key))
            .collect(),
        cmdline: a.cmdline.0,
        ignored: a
            .devices
            .iter()
            .flat_map(|d| d.ignored.iter().map(|(k, _)| (d.name.clone(), k.clone())))
            .collect(),
    }
}

enum Verdict {
    Accept(Box<Norm>),
    Reject(String),
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Accept(n) => write!(f, "accepted {n:?}"),
            Verdict::Reject(e) => write!(f, "rejected: {e}"),
        }
    }
}

fn by_ron(text: &str) -> Verdict {
    match ron::Options::default().from_str::<model::Appliance>(text) {
        Ok(a) => Verdict::Accept(Box::new(ron_norm(a))),
        Err(e) => Verdict::Reject(e.to_string()),
    }
}

const DIR: &str = "tests/differential";

fn by_morgana(text: &str) -> Verdict {
    let catalog = morgana_codegen::Catalog::builtin().expect("catalog");
    match morgana_codegen::read(catalog, text, "appliance.ron", Path::new(DIR)) {
        Ok(a) => Verdict::Accept(Box::new(morgana_norm(a))),
        Err(d) => Verdict::Reject(d.to_string()),
    }
}

/// One document of the corpus, and where its fact comes from.
struct Doc {
    what: String,
    text: String,
}

/// A valid appliance with a slot `@` for a fact.
fn doc(what: impl Into<String>, text: String) -> Doc {
    Doc {
        what: what.into(),
        text,
    }
}

fn base(slot: &str, value: &str) -> String {
    let (name, main, heap, port, level, config_value, gateway, device, prefix, start) = (
        "\"web\"",
        "\"App\"",
        "16",
        "8080",
        "Info",
        "1",
        "Some(\"10.0.2.2\")",
        "Crunch(dir: \"htdocs\")",
        "",
        "[\"console\", \"http\", \"site\"]",
    );
    let pick = |s: &str, default: &str| {
        if s == slot {
            value.to_string()
        } else {
            default.to_string()
        }
    };
    format!(
        "{prefix}Appliance(\n    name: {name},\n    main: {main},\n    heap_mib: {heap},\n    log_level: {level},\n    config: {{\"x\": {config}}},\n    devices: {{\n        \"site\": {device},\n        \"net\": Network(stack: Direct, ipv4: Static(\"10.0.2.15/24\"), gateway: {gateway}),\n        \"http\": HttpServer(port: {port}),\n    }},\n    start: {start},\n)\n",
        prefix = pick("prefix", prefix),
        name = pick("name", name),
        main = pick("main", main),
        heap = pick("heap", heap),
        level = pick("level", level),
        config = pick("config", config_value),
        device = pick("device", device),
        gateway = pick("gateway", gateway),
        port = pick("port", port),
        start = pick("start", start),
    )
}

/// Facts for one slot, each one a document.
fn facts(slot: &str, group: &str, values: &[&str], out: &mut Vec<Doc>) {
    for v in values {
        out.push(doc(format!("{group}: {slot} = {v}"), base(slot, v)));
    }
}

fn corpus() -> Vec<Doc> {
    let mut out = Vec::new();
    // Strings (ron tests/escape.rs, 425_escape_strings.rs, unicode.rs; our own).
    facts(
        "name",
        "strings",
        &[
            r#""plain""#,
            r#""a\nb\tc\\d\"e\'f\0g""#,
            r#""\x41\x7F""#,
            r#""\xC3\xA9 and \xE2\x82\xAC""#,
            r#""\xC3""#,
            r#""\x80""#,
            r#""\u{7}\u{E9}\u{1F600}\u{10FFFF}""#,
            r#""\u{}""#,
            r#""\u{D800}""#,
            r#""\u{1234567}""#,
            r#""\u12""#,
            r#""\q""#,
            "\"a\\\nb\"",
            "\"a\\\r\n  \t b\"",
            "\"a\\\rb\"",
            "\"a\nb\"",
            "\"tab\there\"",
            r#"r"raw \n stays""#,
            r##"r#"with "quotes""#"##,
            r###"r##"a"#b"##"###,
            r#"r#"unterminated""#,
            r#"b"bytes""#,
            r#"br"raw bytes""#,
            "'c'",
            "\"ß ä ♠ 日本\"",
            "\"\"",
            "\"unterminated",
            "name",
            "Some(\"web\")",
            "\"a\" \"b\"",
            "r\"\"",
            "\"\\\\\"",
        ],
        &mut out,
    );
    // Integers of a key's type (ron tests/481_number_underscores_suffixes.rs,
    // 599_integer_suffix.rs, numbers.rs; our own). `port` is a u16 with the whole range.
    facts(
        "port",
        "integers",
        &[
            "0",
            "8080",
            "65535",
            "65536",
            "-0",
            "-1",
            "+8080",
            "0x1F90",
            "0X1F90",
            "0xffff",
            "0x1_0000",
            "0o17620",
            "0b1111110010000",
            "0b10_10___101_",
            "1_000",
            "1___0_0_0_",
            "_8080",
            "0x_1F90",
            "0b2",
            "0oA",
            "0xZ",
            "12a",
            "8080u16",
            "8080u32",
            "8080i16",
            "8080u8",
            "8080usize",
            "8080_u16",
            "8080 u16",
            "80.80",
            "8e3",
            "8080.",
            ".8080",
            "8080f32",
            "b'a'",
            "'a'",
            "\"8080\"",
            "0x",
            "0b",
            "1u7",
            "1i128",
            "1u128",
            "99999999999999999999",
            "Some(8080)",
            "(8080)",
            "inf",
            "NaN",
        ],
        &mut out,
    );
    // `heap_mib` is a usize: read as a u64 (ron tests/599_integer_suffix.rs).
    facts(
        "heap",
        "integers",
        &[
            "16", "16u64", "16usize", "16u32", "0x10", "0o20", "0b10000", "+16", "16i64",
        ],
        &mut out,
    );
    // Application constants: a value of no particular type (ron tests/
    // 481_number_underscores_suffixes.rs, floats.rs, 370_float_parsing.rs,
    // 465_no_comment_char_value.rs, 564_exhaustive_number.rs; our own).
    facts(
        "config",
        "any value",
        &[
            "1",
            "-1",
            "255",
            "256",
            "-128",
            "-129",
            "65536",
            "4294967296",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "5u8",
            "5i8",
            "-5i8",
            "-1u8",
            "256u8",
            "5u64",
            "5i64",
            "1u7",
            "1i128",
            "0b10_10___101_",
            "0o71_32___145_",
            "0xa1_fe___372_",
            "0_6_163_810___17",
            "_123",
            "12a",
            "2_18__6_",
            "2_18__6_.",
            "2_18__6_._",
            "2_18__6_.3__7_",
            ".3__7_",
            "._3__7_",
            "2_18__6_.3__7_e____7_3__",
            "2_18__6_.3__7_e+____",
            "1_f32",
            "-1_f32",
            "1f17",
            "1f64",
            "1f32",
            "1.5",
            "0.5",
            "0.1",
            "1e3",
            "1E3",
            "1e-3",
            "1e+3",
            "1.5e3",
            ".5",
            "5.",
            "-0.0",
            "+1.5",
            "1.0f32",
            "1.0f64",
            "0.1f32",
            "1ee3",
            "1ee3f32",
            "1..2",
            "..",
            "1..",
            "inf",
            "-inf",
            "+inf",
            "NaN",
            "-NaN",
            "inff32",
            "inff64",
            "NaNf64",
            "-inff64",
            "NaNf32a",
            "-inff64a",
            "+NaNf17",
            "r#inf",
            "true",
            "false",
            "r#true",
            "True",
            "'a'",
            "'/'",
            "'#'",
            "'\\''",
            "'\\n'",
            "'\\u{E9}'",
            "'\\x41'",
            "'\\x80'",
            "'ab'",
            "'''",
            "''",
            "\"s\"",
            "r#\"raw\"#",
            "b'a'",
            "b'\\x80'",
            "b'\\u{41}'",
            "b'é'",
            "b\"bytes\"",
            "()",
            "None",
            "Some(1)",
            "[1]",
            "{}",
            "(1, 2)",
            "Unit",
            "Name(a: 1)",
            "0x",
            "1__",
            "-",
            "+",
            "-_1",
        ],
        &mut out,
    );
    // Variants (ron tests/401_raw_identifier.rs, 322_escape_idents.rs; our own).
    facts(
        "level",
        "variants",
        &[
            "Info",
            "Debug",
            "r#Info",
            "Info()",
            "Info(1)",
            "\"Info\"",
            "info",
            "INFO",
            "Infos",
            "r#In",
            "Some(Info)",
            "r#",
            "r#Info-x",
            "Info /* comment */",
        ],
        &mut out,
    );
    // Optional keys: Option<String> (ron tests/367_implicit_some.rs, 465_implicit_some_stack.rs,
    // 410_trailing_comma.rs), without and with `implicit_some`.
    let gateways = [
        "Some(\"10.0.2.2\")",
        "Some ( \"10.0.2.2\" , )",
        "Some(\"10.0.2.2\",,)",
        "None",
        "\"10.0.2.2\"",
        "Some(None)",
        "Some(Some(\"10.0.2.2\"))",
        "r#Some(\"10.0.2.2\")",
        "Some",
        "Some()",
        "None()",
        "()",
        "Some(\"10.0.2.2\", \"10.0.2.3\")",
    ];
    facts("gateway", "options", &gateways, &mut out);
    for g in gateways {
        out.push(doc(
            format!("options with implicit_some: gateway = {g}"),
            format!("#![enable(implicit_some)]\n{}", base("gateway", g)),
        ));
    }
    // Components: struct variants of an enum.
    facts(
        "device",
        "components",
        &[
            "Crunch(dir: \"htdocs\")",
            "Crunch(dir: \"htdocs\",)",
            "Crunch (dir : \"htdocs\")",
            "r#Crunch(r#dir: \"htdocs\")",
            "Crunch(\"htdocs\")",
            "Crunch",
            "Crunch()",
            "Crunch(dir: \"htdocs\", dir: \"htdocs\")",
            "Crunch(colour: 1)",
            "crunch(dir: \"htdocs\")",
            "(dir: \"htdocs\")",
            "Redirects(file: \"redirects\")",
            "Redirects(file: r\"redirects\")",
            "Crunch(dir: \"htdocs\"",
            "Crunch(dir: \"htdocs\") Crunch",
            "Crunch(,dir: \"htdocs\")",
            "Crunch(dir: \"htdocs\",,)",
            "Crunch{dir: \"htdocs\"}",
            "Crunch(dir: ['h'])",
        ],
        &mut out,
    );
    // Attributes and extensions (ron tests/extensions.rs, 522_explicit_struct_names.rs).
    facts(
        "prefix",
        "attributes",
        &[
            "#![enable(implicit_some)]\n",
            "#![enable(unwrap_newtypes, unwrap_variant_newtypes)]\n",
            "#![enable(implicit_some,)]\n",
            "# ! [ enable ( implicit_some ) ]\n",
            "#![enable(explicit_struct_names)]\n",
            "#![enable()]\n",
            "#![enable(implicit)]\n",
            "#![enable(implicit_some unwrap_newtypes)]\n",
            "#![type = \"my::Appliance\"]\n",
            "#![schema = \"./schema.ron\"]\n",
            "#![type = my]\n",
            "#![enable(implicit_some)]\n#![enable(unwrap_newtypes)]\n",
            "#[enable(implicit_some)]\n",
            "#!enable(implicit_some)\n",
            "// a comment\n",
            "/* a /* nested */ comment */\n",
            "/* unclosed\n",
            "/ oops\n",
            "\u{feff}",
            "\u{2028}\u{200E}\u{0B}\u{0C}\u{85}",
            "\u{00A0}",
            "\u{3000}",
        ],
        &mut out,
    );
    // The start list (ron tests/410_trailing_comma.rs, 256_comma_error.rs).
    facts(
        "start",
        "lists",
        &[
            "[\"console\", \"http\", \"site\",]",
            "[\"console\" \"http\"]",
            "[,\"console\"]",
            "[\"console\",,]",
            "[]",
            "[console]",
            "(\"console\")",
            "[\"console\", \"http\", \"site\"] ,",
        ],
        &mut out,
    );
    whole_documents(&mut out);
    out
}

/// Documents written whole.
fn whole_documents(out: &mut Vec<Doc>) {
    let whole = [
        ("minimal", "Appliance(name: \"a\", main: \"App\")"),
        ("anonymous struct", "(name: \"a\", main: \"App\")"),
        (
            "explicit names, anonymous",
            "#![enable(explicit_struct_names)]\n(name: \"a\", main: \"App\")",
        ),
        (
            "explicit names, named",
            "#![enable(explicit_struct_names)]\nAppliance(name: \"a\", main: \"App\")",
        ),
        ("raw struct name", "r#Appliance(name: \"a\", main: \"App\")"),
        (
            "other struct name",
            "Application(name: \"a\", main: \"App\")",
        ),
        ("unit", "Appliance"),
        ("empty parens", "Appliance()"),
        ("empty", ""),
        ("comment only", "// nothing\n"),
        (
            "two values",
            "Appliance(name: \"a\", main: \"App\") Appliance()",
        ),
        ("missing main", "Appliance(name: \"a\")"),
        (
            "unknown key",
            "Appliance(name: \"a\", main: \"App\", colour: 1)",
        ),
        (
            "duplicate key",
            "Appliance(name: \"a\", main: \"App\", name: \"b\")",
        ),
        ("raw field", "Appliance(r#name: \"a\", r#main: \"App\")"),
        (
            "unicode field",
            "Appliance(name: \"a\", main: \"App\", nämé: 1)",
        ),
        (
            "target",
            "Appliance(name: \"a\", main: \"App\", target: Xen)",
        ),
        (
            "target with parens",
            "Appliance(name: \"a\", main: \"App\", target: Xen())",
        ),
        (
            "map key not a string",
            "Appliance(name: \"a\", main: \"App\", config: {x: 1})",
        ),
        (
            "config keys twice",
            "Appliance(name: \"a\", main: \"App\", config: {\"x\": 1, \"x\": 2})",
        ),
        (
            "devices twice",
            "Appliance(name: \"a\", main: \"App\", devices: {\"s\": Crunch(dir: \"htdocs\"), \"s\": Crunch(dir: \"htdocs\")})",
        ),
        (
            "host network, unit-like",
            "Appliance(name: \"a\", main: \"App\", devices: {\"net\": Network(), \"http\": HttpServer()}, start: [\"http\"])",
        ),
        (
            "dhcp",
            "Appliance(name: \"a\", main: \"App\", devices: {\"net\": Network(stack: Direct, ipv4: Dhcp)}, start: [])",
        ),
        (
            "raw dhcp",
            "Appliance(name: \"a\", main: \"App\", devices: {\"net\": Network(stack: Direct, ipv4: r#Dhcp)}, start: [])",
        ),
        (
            "quoted dhcp",
            "Appliance(name: \"a\", main: \"App\", devices: {\"net\": Network(stack: Direct, ipv4: \"Dhcp\")}, start: [])",
        ),
        (
            "address without Static",
            "Appliance(name: \"a\", main: \"App\", devices: {\"net\": Network(stack: Direct, ipv4: \"10.0.2.15/24\")}, start: [])",
        ),
        (
            "Static with a trailing comma",
            "Appliance(name: \"a\", main: \"App\", devices: {\"net\": Network(stack: Direct, ipv4: Static(\"10.0.2.15/24\",))}, start: [])",
        ),
        (
            "Static without parens",
            "Appliance(name: \"a\", main: \"App\", devices: {\"net\": Network(stack: Direct, ipv4: Static)}, start: [])",
        ),
        (
            "quoted choice",
            "Appliance(name: \"a\", main: \"App\", devices: {\"net\": Network(stack: \"Direct\")}, start: [])",
        ),
        (
            "mac with implicit_some",
            "#![enable(implicit_some)]\nAppliance(name: \"a\", main: \"App\", target: Xen, devices: {\"net\": Network(mac: \"00:16:3e:00:00:02\", bridge: \"br0\")}, start: [])",
        ),
        (
            "mac",
            "Appliance(name: \"a\", main: \"App\", target: Xen, devices: {\"net\": Network(mac: Some(\"00:16:3E:00:00:02\"))}, start: [])",
        ),
        (
            "mac None",
            "Appliance(name: \"a\", main: \"App\", target: Xen, devices: {\"net\": Network(mac: None)}, start: [])",
        ),
        (
            "requirement by name",
            "Appliance(name: \"a\", main: \"App\", devices: {\"net\": Network(), \"http\": HttpServer(net: \"net\", clock: \"clock\")}, start: [\"http\"])",
        ),
        (
            "comments everywhere",
            "/*a*/Appliance/*b*/(/*c*/name/*d*/:/*e*/\"a\"/*f*/,//g\nmain: \"App\"//h\n)//i",
        ),
        (
            "line comment at end without newline",
            "Appliance(name: \"a\", main: \"App\") // end",
        ),
        (
            "CRLF",
            "Appliance(\r\n  name: \"a\",\r\n  main: \"App\",\r\n)\r\n",
        ),
        (
            "every integer key",
            "Appliance(name: \"a\", main: \"App\", heap_mib: 0x20, memory_mib: 64u32, devices: {\"http\": HttpServer(port: 0, max_connections: 1_000u64, idle_timeout_ms: 5_000), \"net\": Network()}, start: [\"http\"])",
        ),
        (
            "deep nesting in a constant",
            "Appliance(name: \"a\", main: \"App\", config: {\"x\": [[[[[[[[1]]]]]]]]})",
        ),
        (
            "map with trailing comma",
            "Appliance(name: \"a\", main: \"App\", config: {\"x\": 1, \"y\": 'y',},)",
        ),
        (
            "string spanning lines",
            "Appliance(name: \"a\nb\", main: \"App\")",
        ),
    ];
    for (what, text) in whole {
        out.push(doc(what, text.to_string()));
    }
}

#[test]
fn appliance_ron_is_read_as_the_ron_crate_reads_it() {
    let corpus = corpus();
    let mut disagreements = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    for d in &corpus {
        let (r, m) = (by_ron(&d.text), by_morgana(&d.text));
        let r = match (r, &m) {
            (Verdict::Accept(a), Verdict::Accept(b)) => {
                Verdict::Accept(Box::new(a.without(&b.ignored)))
            }
            (r, _) => r,
        };
        match (&r, &m) {
            (Verdict::Accept(a), Verdict::Accept(b)) if a == b => accepted += 1,
            (Verdict::Reject(_), Verdict::Reject(_)) => rejected += 1,
            _ => disagreements.push(format!(
                "{}:\n{}\n--- ron: {r}\n--- morgana: {m}",
                d.what, d.text
            )),
        }
    }
    eprintln!(
        "differential corpus: {} documents, {accepted} accepted by both, {rejected} rejected by both, {} disagreements",
        corpus.len(),
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} of {} documents read differently:\n\n{}",
        disagreements.len(),
        corpus.len(),
        disagreements.join("\n\n")
    );
    assert!(
        accepted >= 100 && rejected >= 100,
        "{accepted} accepted, {rejected} rejected"
    );
}

/// The real appliances and the goldens are read alike too.
#[test]
fn the_repository_s_appliances_are_read_alike() {
    let mut files: Vec<std::path::PathBuf> = [
        "../appliances/hello",
        "../appliances/static-website",
        "../appliances/kv",
    ]
    .iter()
    .map(|d| Path::new(d).join("appliance.ron"))
    .collect();
    for e in std::fs::read_dir("tests/golden")
        .expect("goldens")
        .flatten()
    {
        let f = e.path().join("appliance.ron");
        if f.exists() {
            files.push(f);
        }
    }
    for f in files {
        let text = std::fs::read_to_string(&f).expect("appliance.ron");
        let dir = f.parent().expect("dir");
        let catalog = morgana_codegen::Catalog::builtin().expect("catalog");
        let m = morgana_codegen::read(catalog, &text, "appliance.ron", dir)
            .unwrap_or_else(|d| panic!("{}: {d}", f.display()));
        let r = ron::Options::default()
            .from_str::<model::Appliance>(&text)
            .unwrap_or_else(|e| panic!("{}: ron: {e}", f.display()));
        let m = morgana_norm(m);
        assert_eq!(ron_norm(r).without(&m.ignored), m, "{}", f.display());
    }
}
