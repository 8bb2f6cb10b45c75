//! A compiler written without this interface in mind fits it: the DNS zone compiler
//! (`morgana_dns_zone::compile(&[ZoneFile { path, text, origin }])`, diagnostics with
//! byte ranges, secondary labels and levels) behind `Compiler`, as its host crate would
//! put it for morgana-codegen. Its archive, included the way the generated code
//! includes one (`morgana_archive::Aligned`), opens with `morgana_dns::Zones::from_bytes`;
//! its diagnostics keep their file, line, column, width, labels and help.

use morgana_archive::Aligned;
use morgana_archive_build::{Compiler, Data, Diagnostic, Input, Output, SourceText};
use morgana_dns_zone::{Level, ZoneFile};
use std::path::Path;

/// The adapter: what `components/dns/compiler` would hold.
struct Zones;

/// Characters of `text` in the byte range of `span` (the caret's width).
fn width(text: &str, span: morgana_dns_zone::Span) -> u32 {
    text.get(span.lo..span.hi)
        .map_or(1, |s| s.chars().count() as u32)
}

fn convert(d: &morgana_dns_zone::Diagnostic, files: &[SourceText]) -> Diagnostic {
    let text = files
        .iter()
        .find(|f| f.path == d.file)
        .map_or("", |f| f.text.as_str());
    let at = d.primary.span;
    let new = match d.level {
        Level::Error => Diagnostic::error,
        Level::Warning => Diagnostic::warning,
    };
    let mut out = new(&d.file, at.line, at.col, width(text, at), d.message.clone())
        .label(d.primary.message.clone());
    for l in &d.secondary {
        let s = l.span;
        out = out.secondary(s.line, s.col, width(text, s), l.message.clone());
    }
    if let Some(h) = &d.help {
        out = out.help(h.clone());
    }
    out
}

impl Compiler for Zones {
    fn name(&self) -> &'static str {
        "dns-zones"
    }

    fn compile(&self, input: &Input<'_>) -> Result<(Output, Vec<Diagnostic>), Vec<Diagnostic>> {
        let zones: Vec<ZoneFile<'_>> = input
            .files
            .iter()
            .map(|f| ZoneFile {
                path: &f.path,
                text: &f.text,
                origin: None,
            })
            .collect();
        let all = |ds: &[morgana_dns_zone::Diagnostic]| {
            ds.iter()
                .map(|d| convert(d, input.files))
                .collect::<Vec<_>>()
        };
        match morgana_dns_zone::compile(&zones) {
            Ok(c) => {
                let summary = c
                    .zones
                    .iter()
                    .map(|z| format!("{} ({} records)", z.origin, z.records))
                    .collect::<Vec<_>>()
                    .join(", ");
                let output = Output {
                    data: Data::Archive(c.archive),
                    summary,
                    read: Vec::new(),
                };
                Ok((output, all(&c.warnings)))
            }
            Err(ds) => Err(all(&ds)),
        }
    }
}

fn run(path: &str, text: &str) -> Result<(Output, Vec<Diagnostic>), Vec<Diagnostic>> {
    let files = [SourceText {
        path: path.into(),
        text: text.into(),
    }];
    let compiler: &dyn Compiler = &Zones;
    compiler.compile(&Input {
        device: "dns",
        files: &files,
        names: &[],
        dir: Path::new("."),
    })
}

const ZONE: &str = "\
$ORIGIN example.test.
$TTL 3600
@ SOA ns1 hostmaster 1 7200 3600 1209600 300
  NS ns1
ns1 A 192.0.2.1
www A 192.0.2.80
";

#[test]
fn a_zone_compiles_into_an_archive_the_server_opens() {
    let (out, warnings) = run("zones/example.test.zone", ZONE).expect("compiles");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(out.summary, "example.test. (4 records)");
    let Data::Archive(archive) = &out.data else {
        panic!("the zones are an archive: {:?}", out.data);
    };
    // As the generated code holds it: a static `morgana_archive::Aligned<[u8]>`.
    let mut buf = Box::new(Aligned([0u8; 8192]));
    assert!(archive.len() <= buf.0.len());
    buf.0[..archive.len()].copy_from_slice(archive);
    let held: &'static Aligned<[u8; 8192]> = Box::leak(buf);
    let bytes = &held.0[..archive.len()];
    morgana_dns::Zones::from_bytes(bytes).expect("the server opens it");
    // A corrupt one is refused.
    let mut bad = Box::new(Aligned([0u8; 8192]));
    bad.0[..archive.len()].copy_from_slice(archive);
    let n = archive.len();
    bad.0[n - 4..n].copy_from_slice(&u32::MAX.to_le_bytes());
    let bad: &'static Aligned<[u8; 8192]> = Box::leak(bad);
    assert!(morgana_dns::Zones::from_bytes(&bad.0[..n]).is_err());
}

#[test]
fn zone_errors_keep_their_places() {
    let text = format!("{ZONE}@ SOA ns2 hostmaster 2 7200 3600 1209600 300\n");
    let errs = run("zones/example.test.zone", &text).expect_err("two SOAs");
    let d = &errs[0];
    assert_eq!(
        (d.path.as_str(), d.line, d.col, d.len, d.warning),
        ("zones/example.test.zone", 7, 3, 3, false),
        "{d:?}"
    );
    assert_eq!(d.message, "a second SOA record");
    assert_eq!(d.label, "the zone already has one");
    assert_eq!(
        d.secondary
            .iter()
            .map(|p| (p.line, p.col, p.len, p.label.as_str()))
            .collect::<Vec<_>>(),
        [(3, 3, 3, "the first SOA")]
    );
    assert_eq!(d.help, ["a zone has exactly one SOA record: remove one"]);
}
