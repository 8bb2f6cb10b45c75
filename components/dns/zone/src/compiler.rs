//! The zone compiler as a build step of the appliance compiler: morgana-codegen runs it
//! for a `DnsServer` device (`build: Build(compiler: "dns-zones", input: "zones")` in the
//! catalog), with the zone files its `zones` key names; the archive is what
//! `morgana_dns::Zones::from_bytes` reads in place.

use morgana_archive_build::{Compiler, Diagnostic, Input, Output, SourceText};

use crate::{Level, ZoneFile, compile};

/// The compiler, by the name the catalog gives: `dns-zones`.
pub struct ZoneCompiler;

/// The one instance.
pub static COMPILER: ZoneCompiler = ZoneCompiler;

impl Compiler for ZoneCompiler {
    fn name(&self) -> &'static str {
        "dns-zones"
    }

    fn compile(&self, input: &Input<'_>) -> Result<(Output, Vec<Diagnostic>), Vec<Diagnostic>> {
        // The zones' names from appliance.ron (`origins`), one per file, checked here so
        // that a bad one is shown at that key rather than in the zone file. As in NSD's
        // configuration, the final dot may be left out.
        let mut names = Vec::new();
        let mut bad = Vec::new();
        for name in input.names {
            let full = if name.ends_with('.') {
                name.clone()
            } else {
                format!("{name}.")
            };
            let checked = if name.is_empty() {
                Err((
                    "it is empty".to_string(),
                    "write the zone's name, e.g. `example.com.`",
                ))
            } else {
                crate::parse::parse_name(&full, None).map(|_| ())
            };
            match checked {
                Ok(()) => names.push(full),
                Err((why, help)) => bad.push(
                    Diagnostic::error("", 1, 1, 1, format!("`{name}` is not a zone name: {why}"))
                        .label("the zones' names")
                        .help(help),
                ),
            }
        }
        if !bad.is_empty() {
            return Err(bad);
        }
        let files: Vec<ZoneFile<'_>> = input
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| ZoneFile {
                path: &f.path,
                text: &f.text,
                origin: names.get(i).map(String::as_str),
            })
            .collect();
        match compile(&files) {
            Ok(c) => {
                let warnings = c.warnings.iter().map(|d| convert(d, input.files)).collect();
                let records: usize = c.zones.iter().map(|z| z.records).sum();
                let names: Vec<&str> = c.zones.iter().map(|z| z.origin.as_str()).collect();
                let summary = format!(
                    "{} zone{} ({}), {records} record{}",
                    c.zones.len(),
                    if c.zones.len() == 1 { "" } else { "s" },
                    names.join(", "),
                    if records == 1 { "" } else { "s" },
                );
                Ok((
                    Output {
                        data: morgana_archive_build::Data::Archive(c.archive),
                        summary,
                        read: Vec::new(),
                    },
                    warnings,
                ))
            }
            Err(diags) => Err(diags.iter().map(|d| convert(d, input.files)).collect()),
        }
    }
}

/// A zone diagnostic as the appliance compiler's: the primary label's place and width
/// (in characters, on its first line), the secondary labels as notes with their place.
fn convert(d: &crate::Diagnostic, files: &[SourceText]) -> Diagnostic {
    let text = files
        .iter()
        .find(|f| f.path == d.file)
        .map_or("", |f| f.text.as_str());
    let span = d.primary.span;
    let covered = text
        .get(span.lo..span.hi.max(span.lo))
        .map_or(1, |s| s.lines().next().unwrap_or("").chars().count());
    let len = u32::try_from(covered.max(1)).unwrap_or(1);
    let mut out = match d.level {
        Level::Error => Diagnostic::error(&d.file, span.line, span.col, len, d.message.clone()),
        Level::Warning => Diagnostic::warning(&d.file, span.line, span.col, len, d.message.clone()),
    };
    if !d.primary.message.is_empty() {
        out = out.label(d.primary.message.clone());
    }
    for s in &d.secondary {
        out = out.note(format!(
            "{}:{}:{}: {}",
            d.file, s.span.line, s.span.col, s.message
        ));
    }
    if let Some(h) = &d.help {
        out = out.help(h.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(files: &[SourceText]) -> Input<'_> {
        Input {
            device: "dns",
            files,
            names: &[],
            dir: std::path::Path::new("."),
        }
    }

    #[test]
    fn compiles_zones_and_reports_errors_at_their_line_and_column() {
        let good = SourceText {
            path: "zones/example.test.zone".into(),
            text: "$ORIGIN example.test.\n$TTL 300\n@ SOA ns1 host 1 7200 3600 1209600 300\n  NS ns1\nns1 A 192.0.2.1\nwww CNAME ns1\n".into(),
        };
        let (out, warnings) = COMPILER
            .compile(&input(std::slice::from_ref(&good)))
            .expect("compiles");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(out.summary, "1 zone (example.test.), 4 records");
        let morgana_archive_build::Data::Archive(archive) = &out.data else {
            panic!("zones are an archive: {:?}", out.data);
        };
        assert!(morgana_dns::Zones::from_bytes(&aligned(archive)).is_ok());

        let bad = SourceText {
            path: "zones/bad.zone".into(),
            text: "$ORIGIN bad.test.\n$TTL 300\n@ SOA ns1 host 1 7200 3600 1209600 300\n  NS ns1\nns1 A 192.0.2.300\n".into(),
        };
        let errs = COMPILER.compile(&input(&[bad])).expect_err("a bad address");
        assert_eq!(errs[0].path, "zones/bad.zone");
        assert_eq!((errs[0].line, errs[0].col), (5, 7), "{errs:?}");
        assert!(!errs[0].warning);
    }

    #[test]
    fn names_from_appliance_ron_name_files_without_origin() {
        // No `$ORIGIN`: the name comes from `origins`; `@` and relative names end in it.
        let file = SourceText {
            path: "zones/plain.zone".into(),
            text: "$TTL 300\n@ SOA ns1 host 1 7200 3600 1209600 300\n  NS ns1\nns1 A 192.0.2.1\n"
                .into(),
        };
        let files = std::slice::from_ref(&file);
        let names = ["Plain.Test".to_string()];
        let (out, _) = COMPILER
            .compile(&Input {
                names: &names,
                ..input(files)
            })
            .expect("compiles");
        assert_eq!(out.summary, "1 zone (plain.test.), 3 records");
        // Without a name it cannot tell the zone.
        let errs = COMPILER.compile(&input(files)).expect_err("no origin");
        assert_eq!(errs[0].message, "cannot tell which zone this file is");
        // A name given wins over the file's `$ORIGIN`, which then only sets the base of
        // relative names: here they fall outside the zone.
        let other = SourceText {
            path: "zones/other.zone".into(),
            text: format!("$ORIGIN other.test.\n{}", file.text),
        };
        let errs = COMPILER
            .compile(&Input {
                names: &names,
                ..input(std::slice::from_ref(&other))
            })
            .expect_err("out of zone");
        let outside = errs
            .iter()
            .find(|d| d.message.contains("is outside the zone `plain.test.`"))
            .expect("records outside the zone");
        assert_eq!((outside.line, outside.col), (3, 1), "{errs:?}");
        // A bad name is reported without a file (codegen shows it at the key).
        let long = "x".repeat(64);
        for bad in ["", "a..b", long.as_str()] {
            let names = [bad.to_string()];
            let errs = COMPILER
                .compile(&Input {
                    names: &names,
                    ..input(files)
                })
                .expect_err(bad);
            assert_eq!(errs.len(), 1);
            assert_eq!(errs[0].path, "", "{errs:?}");
            assert!(
                errs[0]
                    .message
                    .starts_with(&format!("`{bad}` is not a zone name: ")),
                "{errs:?}"
            );
            assert!(!errs[0].help.is_empty());
        }
    }

    /// The archive at a 16-byte aligned address, as the appliance embeds it.
    fn aligned(bytes: &[u8]) -> rkyv::util::AlignedVec<16> {
        let mut v = rkyv::util::AlignedVec::<16>::new();
        v.extend_from_slice(bytes);
        v
    }
}
