//! Compiles zone files into an archive, as the appliance build will:
//!
//!     cargo run --release -p morgana-dns-zone --example zone-compile -- OUT.rkyv a.zone [b.zone ...]
//!
//! Prints the diagnostics (rendered like the appliance compiler's), one line per zone,
//! the archive's size and the time taken. Exits 1 when a zone has an error.
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().expect("usage: zone-compile OUT ZONE-FILE...");
    let paths: Vec<String> = args.collect();
    let texts: Vec<String> = paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}")))
        .collect();
    let files: Vec<morgana_dns_zone::ZoneFile<'_>> = paths
        .iter()
        .zip(&texts)
        .map(|(p, t)| morgana_dns_zone::ZoneFile {
            path: p,
            text: t,
            origin: None,
        })
        .collect();
    let start = Instant::now();
    let result = morgana_dns_zone::compile(&files);
    let took = start.elapsed();
    let show = |d: &morgana_dns_zone::Diagnostic| {
        let text = paths
            .iter()
            .position(|p| *p == d.file)
            .map_or("", |i| texts[i].as_str());
        eprint!("{}", d.render(text));
    };
    match result {
        Ok(c) => {
            c.warnings.iter().for_each(show);
            std::fs::write(&out, &c.archive).expect("write the archive");
            for z in &c.zones {
                println!(
                    "zone {}: {} records, {} names",
                    z.origin, z.records, z.nodes
                );
            }
            println!(
                "archive {} bytes, compiled in {:.3} s",
                c.archive.len(),
                took.as_secs_f64()
            );
        }
        Err(diags) => {
            diags.iter().for_each(show);
            std::process::exit(1);
        }
    }
}
