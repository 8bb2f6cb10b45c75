//! `schemas/README.md` is generated from the catalog; the checked-in file must be
//! exactly what the generator produces (`UPDATE_GOLDEN=1` rewrites it).

mod common;

use std::path::Path;

#[test]
fn schemas_readme_is_generated_from_the_catalog() {
    let catalog = morgana_codegen::Catalog::builtin().unwrap_or_else(|d| panic!("{d}"));
    let text = morgana_codegen::reference(catalog);
    for c in &catalog.components {
        assert!(
            text.contains(&format!("### `{}`", c.name)),
            "{} is documented",
            c.name
        );
        for k in &c.keys {
            assert!(
                text.contains(&format!("| `{}` |", k.name)),
                "{}.{} is documented",
                c.name,
                k.name
            );
        }
    }
    let path = Path::new("../schemas/README.md");
    if let Some(diff) = common::compare(path, &text) {
        panic!("{diff}");
    }
}
