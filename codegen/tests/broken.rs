//! The broken corpus: each `tests/broken/<name>.ron` must fail with exactly the
//! diagnostics in `<name>.stderr`. Optional companions: `<name>.env` holds a value for
//! `MORGANA_TARGET`; `<name>.catalog.ron` extends the built-in catalog (for shapes the
//! real catalog cannot form yet, such as a cycle). `UPDATE_GOLDEN=1` re-blesses.

mod common;

use std::path::Path;

use morgana_codegen::catalog::BUILTIN_FILES;
use morgana_codegen::{Catalog, compile_with};

const DIR: &str = "tests/broken";

fn cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .expect("tests/broken")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".ron") && !n.ends_with(".catalog.ron"))
        .map(|n| n.trim_end_matches(".ron").to_string())
        .collect();
    names.sort();
    names
}

fn run(name: &str) -> Result<String, String> {
    let dir = Path::new(DIR);
    let path = format!("{DIR}/{name}.ron");
    let source = std::fs::read_to_string(&path).expect("read case");
    let env = std::fs::read_to_string(dir.join(format!("{name}.env")))
        .ok()
        .map(|s| s.trim().to_string());
    let ext_path = dir.join(format!("{name}.catalog.ron"));
    let catalog = match std::fs::read_to_string(&ext_path) {
        Ok(ext) => {
            let shown = ext_path.to_string_lossy().into_owned();
            let mut files = BUILTIN_FILES.to_vec();
            files.push((&shown, &ext));
            Catalog::from_sources(&files)
        }
        Err(_) => Catalog::builtin().cloned(),
    }
    .map_err(|d| format!("catalog does not load:\n{d}"))?;
    match compile_with(&catalog, &source, &path, dir, env.as_deref(), None) {
        Ok(_) => Err(format!("{path} compiled, but it is in the broken corpus")),
        Err(d) => Ok(d.to_string()),
    }
}

#[test]
fn broken_corpus_gives_the_expected_diagnostics() {
    let names = cases();
    assert!(names.len() >= 20, "the corpus has {} cases", names.len());
    let mut failures = Vec::new();
    for name in &names {
        match run(name) {
            Ok(stderr) => failures.extend(common::compare(
                &Path::new(DIR).join(format!("{name}.stderr")),
                &stderr,
            )),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_error_points_into_the_file_or_names_the_environment() {
    for name in cases() {
        let stderr = run(&name).unwrap_or_default();
        // Into the case's appliance.ron, or into a file it names (compiled data).
        let has_location = stderr.contains(&format!("--> {DIR}/"));
        let from_env = stderr.contains("MORGANA_TARGET");
        assert!(has_location || from_env, "{name}: no location in\n{stderr}");
    }
}
