//! morgana-codegen: the appliance compiler.
//!
//! An appliance's `build.rs` is `fn main() { morgana_codegen::build() }`. [`build`] reads
//! `appliance.ron`, and the pipeline runs like a compiler's:
//!
//! 1. [`syntax`]: RON text to a value tree that keeps spans, read as the `ron` crate
//!    reads RON;
//! 2. [`check`]: the tree against the [`catalog`] (`schemas/catalog.ron`, decoded by
//!    serde and ron), into the typed [`model`]: unknown names with suggestions, types,
//!    ranges, required keys, names; then [`disk_image`]: the disks built from a
//!    directory (`Block(from: ..)`), whose `image` becomes the built file;
//! 3. [`wire`]: requirements bound to devices, cycles, what is included and why, the
//!    dependency order, and the implementation of each device on the target;
//! 4. [`archive`]: the build steps of the included devices (data compiled by the
//!    components' build-time compilers into rkyv archives or Rust constants);
//! 5. [`emit`]: Rust (type aliases, `config` constants, statics, one `connect_and_start`,
//!    the platform's entry macro) built with quote and laid out by prettyplease (then rustfmt), and the
//!    report and the target's deployment files rendered by minijinja ([`templates`]).
//!
//! Problems are [`Diagnostics`], rendered like rustc's; the build script hands them to
//! Cargo as its own `error:` lines ([`cargo::report`]), and Cargo stops the build before
//! rustc sees any generated code.

pub mod archive;
pub mod boot;
pub mod cargo;
pub mod catalog;
pub mod check;
pub mod diag;
pub mod disk_image;
pub mod emit;
pub mod model;
pub mod names;
pub mod reference;
pub mod secrets;
pub mod syntax;
pub mod targets;
pub mod templates;
pub mod wire;

use std::path::{Path, PathBuf};

pub use catalog::{Catalog, FileDir};
pub use diag::{Diagnostic, Diagnostics, Level, SourceFile, SourceMap, Span};
pub use emit::DeployFile;

/// What a successful compilation produces.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// The Rust source for `OUT_DIR/appliance.rs`.
    pub rust: String,
    /// The plain-text report for `OUT_DIR/report.txt`.
    pub report: String,
    /// Deployment files of the target.
    pub files: Vec<DeployFile>,
    /// Deployment files that other targets write and this one does not: the build
    /// script deletes them, so that nothing stale describes the new binary.
    pub stale_files: Vec<DeployFile>,
    /// The appliance's name.
    pub name: String,
    /// The chosen target (catalog name, e.g. `unix`).
    pub target: String,
    /// The targets appliance.ron lists (`target: [Unix, Xen]`), with where each is
    /// written: one binary each ([`targets`]); empty when `target` is not written.
    pub targets: Vec<(String, Span)>,
    /// Crates the generated code uses (package names).
    pub crates: Vec<String>,
    /// Cargo features of those crates that the appliance needs, and why.
    pub features: Vec<cargo::NeededFeature>,
    /// Linker arguments for the appliance's binaries, as the catalog writes them:
    /// `{{ env.VAR }}` stands for a build-time environment variable (see
    /// [`Generated::resolve_link_args`]).
    pub link_args: Vec<String>,
    /// The build-time environment variables of the target: (variable, the crate whose
    /// build script sets it).
    pub build_env: Vec<(String, String)>,
    /// Directories compiled in, relative to the manifest directory (for
    /// `cargo:rerun-if-changed`).
    pub watch: Vec<PathBuf>,
    /// Files compiled by build steps, relative to the manifest directory (for
    /// `cargo:rerun-if-changed`).
    pub watch_files: Vec<PathBuf>,
    /// Archives compiled by build steps, for `OUT_DIR`.
    pub archives: Vec<archive::Archive>,
    /// Disk images built from directories (`Block(from: ..)`), for the profile directory.
    pub disk_images: Vec<disk_image::DiskImage>,
    /// Rendered warnings.
    pub warnings: Vec<String>,
}

impl Generated {
    /// The linker arguments with `{{ env.VAR }}` replaced by the value `env` gives;
    /// an unset variable is an error that says which crate sets it.
    pub fn resolve_link_args(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, Diagnostic> {
        let engine = templates::environment();
        let mut values = std::collections::BTreeMap::new();
        let mut unset = Vec::new();
        for (var, _) in &self.build_env {
            match env(var) {
                Some(v) if !v.is_empty() => {
                    values.insert(var.clone(), v);
                }
                _ => {
                    unset.push(var.clone());
                    values.insert(var.clone(), String::new());
                }
            }
        }
        let mut out = Vec::new();
        for arg in &self.link_args {
            let ctx = minijinja::context! { env => values.clone() };
            let resolved =
                templates::render_inline(engine, "link argument", arg, ctx).map_err(|e| {
                    Diagnostic::error(format!("internal error in morgana-codegen: {e}"))
                        .note("this is a bug in the catalog or in codegen, not in appliance.ron")
                })?;
            let used_unset = unset.iter().find(|var| arg.contains(var.as_str()));
            if let Some(var) = used_unset {
                let krate = self
                    .build_env
                    .iter()
                    .find(|(v, _)| v == var)
                    .map_or("?", |(_, c)| c.as_str());
                let shown = reference::link_arg_shown(arg, &self.build_env);
                return Err(Diagnostic::error(format!(
                    "target {} links with `{shown}`, but the environment variable {var} is not set",
                    self.target
                ))
                .note(format!(
                    "the build script of `{krate}` sets it (Cargo's `links` metadata) for the build scripts of the packages that depend on `{krate}` directly"
                ))
                .help(format!(
                    "add `{krate}` under [dependencies] in the appliance's Cargo.toml, as a plain dependency (not optional, not renamed, not target-specific), e.g. `{krate}.workspace = true`"
                )));
            }
            out.push(resolved);
        }
        Ok(out)
    }
}

/// Reads an appliance description into the checked model, without wiring or emitting
/// anything: what the description says, value by value (for tests that compare the
/// reading with other readers of RON).
pub fn read(
    catalog: &Catalog,
    source: &str,
    path: &str,
    manifest_dir: &Path,
) -> Result<model::Appliance, Diagnostics> {
    let mut sources = SourceMap::default();
    let file = sources.add(SourceFile::new(path, source));
    let doc = match syntax::parse(source, file) {
        Ok(d) => d,
        Err(d) => {
            return Err(Diagnostics {
                sources,
                list: vec![d],
            });
        }
    };
    let cx = check::Context {
        catalog,
        manifest_dir,
        display_dir: "",
        target_override: None,
        target_of_list: None,
        extensions: doc.extensions,
    };
    let mut list = Vec::new();
    match check::check(&doc, &cx, &mut list) {
        Some(m) if list.is_empty() => Ok(m),
        _ => Err(Diagnostics { sources, list }),
    }
}

/// Compiles an appliance description with the built-in catalog.
///
/// `path` is the file name shown in messages; `manifest_dir` is where relative paths
/// (e.g. `Crunch(dir: ..)`) are resolved; `target_override` is the value of
/// `MORGANA_TARGET`, if set. Deployment files name the binary by its bare file name (see
/// [`compile_with`]).
pub fn compile(
    source: &str,
    path: &str,
    manifest_dir: &Path,
    target_override: Option<&str>,
) -> Result<Generated, Diagnostics> {
    let catalog = Catalog::builtin()?;
    compile_with(catalog, source, path, manifest_dir, target_override, None)
}

/// Compiles an appliance description against `catalog`. `profile_dir` is where Cargo
/// puts the binary (`target/<profile>`, see [`profile_dir`]): deployment files that name
/// the binary (`{{ binary }}`, e.g. the `kernel` of an xl config) get its absolute path
/// `<profile_dir>/<name>`, which works right after `cargo build`; without it they get
/// the bare name.
pub fn compile_with(
    catalog: &Catalog,
    source: &str,
    path: &str,
    manifest_dir: &Path,
    target_override: Option<&str>,
    profile_dir: Option<&Path>,
) -> Result<Generated, Diagnostics> {
    compile_target(
        catalog,
        source,
        path,
        manifest_dir,
        target_override,
        profile_dir,
        None,
    )
}

/// Which binary of the package a compilation is for: one target of a list
/// (`target: [Unix, Xen]`) other than the first ([`targets`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ForBin<'a> {
    /// The target's catalog name.
    pub target: &'a str,
    /// The binary's name: its deployment files are `<bin>.<suffix>` and name
    /// `<profile_dir>/<bin>`.
    pub bin: &'a str,
}

/// [`compile_with`], for one binary of a package that builds several targets.
pub(crate) fn compile_target(
    catalog: &Catalog,
    source: &str,
    path: &str,
    manifest_dir: &Path,
    target_override: Option<&str>,
    profile_dir: Option<&Path>,
    for_bin: Option<ForBin<'_>>,
) -> Result<Generated, Diagnostics> {
    let mut sources = SourceMap::default();
    let file = sources.add(SourceFile::new(path, source));
    let fail = |sources: SourceMap, mut list: Vec<Diagnostic>| {
        if !list.iter().any(|d| d.level == Level::Error) {
            // A phase gave up without saying why: never fail silently.
            list.push(
                Diagnostic::error(
                    "internal error in morgana-codegen: compilation failed without a diagnostic",
                )
                .note("this is a bug in the catalog or in codegen, not in appliance.ron"),
            );
        }
        Diagnostics { sources, list }
    };

    let doc = match syntax::parse(source, file) {
        Ok(d) => d,
        Err(d) => return Err(fail(sources, vec![d])),
    };

    let display_dir = Path::new(path)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cx = check::Context {
        catalog,
        manifest_dir,
        display_dir: &display_dir,
        target_override,
        target_of_list: for_bin.map(|b| b.target),
        extensions: doc.extensions,
    };
    let mut diags = Vec::new();
    let mut model = match check::check(&doc, &cx, &mut diags) {
        Some(m) if diags.is_empty() => m,
        _ => return Err(fail(sources, diags)),
    };
    let disk_steps: Vec<BuildStep> = disk_image::steps(&model, catalog)
        .into_iter()
        .map(|(d, at)| {
            let dev = &model.devices[d];
            BuildStep::new(
                "disk-image",
                format!(
                    "`{}.{}` is built into a disk image",
                    dev.name,
                    disk_image::FROM
                ),
                path,
                at,
            )
        })
        .collect();
    if let Some(d) = build_steps(&disk_steps, manifest_dir, &display_dir, &mut sources) {
        return Err(fail(sources, vec![d]));
    }
    // Before wiring: a built disk's `image` is the built file's path from here on.
    let disk_images = disk_image::run(
        &mut model,
        catalog,
        manifest_dir,
        &display_dir,
        profile_dir,
        &mut diags,
    );
    if !diags.is_empty() {
        return Err(fail(sources, diags));
    }
    let Some(wiring) = wire::wire(&model, catalog, &mut diags) else {
        return Err(fail(sources, diags));
    };
    diags.extend(check::v6_only::ipv6_on_ipv4_stacks(
        &model, catalog, &wiring,
    ));
    let boot_keys = boot::BootKeys::resolve(&model, catalog, &wiring);
    if wiring
        .target
        .boot_words
        .as_ref()
        .is_some_and(|b| b.source == crate::catalog::BootSource::KernelCommandLine)
        && let Err(d) = boot::check_cmdline(&model, &boot_keys)
    {
        diags.push(d);
    }
    diags.extend(check::v6_only::ipv4_on_v6_only_stacks(
        &model, catalog, &wiring,
    ));
    if !diags.is_empty() {
        return Err(fail(sources, diags));
    }
    let archive_steps: Vec<BuildStep> = archive::steps(&model, &wiring)
        .into_iter()
        .map(|(d, input, feature)| {
            let dev = &model.devices[d];
            let at = dev
                .setting(input)
                .and_then(|s| s.origin.span())
                .unwrap_or(dev.name_span);
            BuildStep::new(
                feature,
                format!("`{}.{input}` is compiled at build time", dev.name),
                path,
                at,
            )
        })
        .collect();
    if let Some(d) = build_steps(&archive_steps, manifest_dir, &display_dir, &mut sources) {
        return Err(fail(sources, vec![d]));
    }
    let mut warnings = unused_devices(&model, catalog, &wiring);
    let archives = archive::run(
        &model,
        &wiring,
        manifest_dir,
        &display_dir,
        &mut sources,
        &mut diags,
        &mut warnings,
    );
    let secret_files = secrets::check(&model, &wiring, manifest_dir, source, &mut diags);
    if !diags.is_empty() {
        diags.extend(warnings);
        return Err(fail(sources, diags));
    }

    let file_name = Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |f| f.to_string_lossy().into_owned());
    let bin = for_bin.map_or(model.name.as_str(), |b| b.bin);
    let binary = match profile_dir {
        Some(dir) => dir.join(bin).to_string_lossy().into_owned(),
        None => bin.to_string(),
    };
    let mut out = match emit::emit(&model, catalog, &wiring, &file_name, &binary, &archives) {
        Ok(o) => o,
        Err(d) => return Err(fail(sources, vec![d])),
    };
    if for_bin.is_some() {
        targets::rename_files(&mut out.files, &model.name, bin);
        targets::rename_files(&mut out.stale, &model.name, bin);
    }
    out.report.push_str(&secrets::report(&secret_files));
    out.report.push_str(&disk_image::report(&disk_images));
    let (watch, watch_files) = watched(&model, catalog, &wiring, &archives);
    let rendered: Vec<String> = warnings.iter().map(|w| w.render(&sources)).collect();
    Ok(Generated {
        rust: out.rust,
        report: out.report,
        files: out.files,
        stale_files: out.stale,
        name: model.name.clone(),
        target: wiring.target.name.clone(),
        targets: model.targets.clone(),
        crates: out.crates,
        features: needed_features(&model, catalog, &wiring, path),
        link_args: wiring.target.link_args.clone(),
        build_env: wiring.target.build_env.clone(),
        watch,
        watch_files,
        archives,
        disk_images,
        warnings: rendered,
    })
}

/// A build step of the appliance: the feature of morgana-codegen that compiles it in
/// (`redirects`, `dns`, `disk-image`) and the place in appliance.ron that asks for it.
struct BuildStep {
    need: cargo::NeededFeature,
    at: Span,
}

impl BuildStep {
    fn new(feature: &str, why: String, path: &str, at: Span) -> BuildStep {
        BuildStep {
            need: cargo::NeededFeature {
                krate: "morgana-codegen".into(),
                feature: feature.into(),
                why: format!("{why} ({path}:{}:{})", at.line, at.col),
            },
            at,
        }
    }
}

/// Whether this build of codegen has `feature` (one of its build steps).
fn compiled_in(feature: &str) -> bool {
    const FEATURES: [(&str, bool); 3] = [
        ("redirects", cfg!(feature = "redirects")),
        ("dns", cfg!(feature = "dns")),
        ("disk-image", cfg!(feature = "disk-image")),
    ];
    FEATURES.iter().any(|&(f, on)| f == feature && on)
}

/// Checks that the appliance turns on the feature of morgana-codegen each of its build
/// steps needs. The appliance's Cargo.toml (when `manifest_dir` has one) must name every
/// feature in its build-dependency on morgana-codegen, even when this build of codegen
/// has it: a workspace build unifies the features of every appliance it builds, a lone
/// `cargo build -p <appliance>` does not. Without the feature compiled in (and no
/// Cargo.toml to point at), the place in appliance.ron that needs it is shown.
fn build_steps(
    steps: &[BuildStep],
    manifest_dir: &Path,
    display_dir: &str,
    sources: &mut SourceMap,
) -> Option<Diagnostic> {
    if steps.is_empty() {
        return None;
    }
    let needed: Vec<cargo::NeededFeature> = steps.iter().map(|s| s.need.clone()).collect();
    let manifest = std::fs::read_to_string(manifest_dir.join("Cargo.toml")).ok();
    if let Some(text) = &manifest {
        let shown = if display_dir.is_empty() {
            "Cargo.toml".to_string()
        } else {
            format!("{}/Cargo.toml", display_dir.trim_end_matches('/'))
        };
        let file = sources.add(SourceFile::new(shown, text.clone()));
        if let Some(d) = cargo::check_build_features(sources.get(file), file, &needed) {
            return Some(d);
        }
    }
    let missing = steps.iter().find(|s| !compiled_in(&s.need.feature))?;
    let line = cargo::suggested_line(
        "morgana-codegen.workspace = true",
        "morgana-codegen",
        &[],
        &needed,
    );
    Some(
        Diagnostic::error(format!(
            "the appliance needs the `{}` feature of `morgana-codegen`, which this build of it does not have",
            missing.need.feature
        ))
        .primary(missing.at, "compiled at build time by that feature")
        .note("a build script cannot turn features on: Cargo resolves them before it runs")
        .help(format!(
            "in the appliance's Cargo.toml, under [build-dependencies], write: {line}"
        )),
    )
}

/// The cargo features the included devices' implementations need (catalog `features`):
/// for a signature another included device requires of them, an optional key set, or
/// (neither `used` nor `set`) whenever the implementation is chosen.
fn needed_features(
    model: &model::Appliance,
    catalog: &Catalog,
    wiring: &wire::Wiring<'_>,
    path: &str,
) -> Vec<cargo::NeededFeature> {
    let mut out: Vec<cargo::NeededFeature> = Vec::new();
    for &n in &wiring.order {
        let (wire::NodeKind::Declared(d), Some(wire::Chosen::Component(imp))) =
            (&wiring.nodes[n].kind, &wiring.chosen[n])
        else {
            continue;
        };
        let dev = &model.devices[*d];
        for f in &imp.features {
            let why = if let Some(sig) = &f.used {
                let user = wiring.order.iter().find_map(|&u| {
                    let wire::NodeKind::Declared(ud) = wiring.nodes[u].kind else {
                        return None;
                    };
                    let comp = catalog.component(&model.devices[ud].component)?;
                    wiring.nodes[u].deps.iter().find_map(|b| {
                        let r = comp.requires.iter().find(|r| r.name == b.key)?;
                        (b.node == n && &r.signature == sig).then(|| wiring.nodes[u].name.clone())
                    })
                });
                user.map(|u| format!("`{u}` uses `{}` as {sig}", dev.name))
            } else if let Some(key) = &f.set {
                dev.setting(key)
                    .filter(|s| s.value != model::Scalar::Absent)
                    .map(|s| format!("`{}.{key}` is {}", dev.name, s.value.ron()))
            } else {
                Some(format!(
                    "`{}` is a `{}` on this target",
                    dev.name, dev.component
                ))
            };
            let Some(why) = why else { continue };
            if out
                .iter()
                .any(|o| o.krate == f.krate && o.feature == f.feature)
            {
                continue;
            }
            out.push(cargo::NeededFeature {
                krate: f.krate.clone(),
                feature: f.feature.clone(),
                why: format!(
                    "{why} ({path}:{}:{})",
                    dev.name_span.line, dev.name_span.col
                ),
            });
        }
    }
    out
}

/// A warning for each declared device that nothing starts or requires, and for each key
/// written for another target.
fn unused_devices(
    model: &model::Appliance,
    catalog: &Catalog,
    wiring: &wire::Wiring<'_>,
) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    for (i, node) in wiring.nodes.iter().enumerate() {
        if let wire::NodeKind::Declared(d) = node.kind
            && !wiring.included(i)
        {
            warnings.push(
                Diagnostic::warning(format!("device `{}` is never used", node.name))
                    .primary(
                        model.devices[d].name_span,
                        "neither in `start` nor required by another device",
                    )
                    .note("it is left out of the build"),
            );
        }
    }
    // Keys of other targets: allowed, so that one appliance.ron serves every target,
    // but said, so that a key written for this target and ignored is not a surprise.
    for dev in &model.devices {
        for (key, span) in &dev.ignored {
            let only = catalog
                .component(&dev.component)
                .and_then(|c| c.keys.iter().find(|k| &k.name == key))
                .map(|k| k.targets.join(", "))
                .unwrap_or_default();
            warnings.push(
                Diagnostic::warning(format!(
                    "`{}.{key}` has no effect on target {}",
                    dev.name, wiring.target.name
                ))
                .primary(*span, format!("used on {only} only"))
                .note("it is ignored in this build"),
            );
        }
    }
    // Deprecated keys: they still work; the warning says what to write instead.
    for dev in &model.devices {
        for (key, span) in &dev.deprecated {
            let instead = catalog
                .component(&dev.component)
                .and_then(|c| c.keys.iter().find(|k| &k.name == key))
                .and_then(|k| k.deprecated.clone())
                .unwrap_or_default();
            warnings.push(
                Diagnostic::warning(format!("`{}.{key}` is deprecated", dev.name))
                    .primary(*span, "deprecated key")
                    .help(instead),
            );
        }
    }
    warnings.sort_by_key(|w| w.span().map(|s| s.lo));
    warnings
}

/// The directories and the files the included devices compile in (relative to the
/// manifest directory), for `cargo:rerun-if-changed`.
fn watched(
    model: &model::Appliance,
    catalog: &Catalog,
    wiring: &wire::Wiring<'_>,
    archives: &[archive::Archive],
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut dirs = Vec::new();
    let mut files: Vec<PathBuf> = archives
        .iter()
        .flat_map(|a| a.inputs.iter().cloned())
        .collect();
    for (i, node) in wiring.nodes.iter().enumerate() {
        let wire::NodeKind::Declared(d) = node.kind else {
            continue;
        };
        if !wiring.included(i) {
            continue;
        }
        let dev = &model.devices[d];
        let comp = catalog.component(&dev.component);
        for s in &dev.settings {
            let ty = comp
                .and_then(|c| c.keys.iter().find(|k| k.name == s.key))
                .map(|k| &k.ty);
            match (ty, &s.value) {
                // An empty default (`Block`'s `from`) names no directory.
                (Some(catalog::KeyType::Dir), model::Scalar::Str(dir)) if !dir.is_empty() => {
                    dirs.push(PathBuf::from(dir));
                }
                (Some(catalog::KeyType::File), model::Scalar::Str(f)) => {
                    files.push(PathBuf::from(f));
                }
                (Some(catalog::KeyType::Files), model::Scalar::List(fs)) => {
                    files.extend(fs.iter().map(PathBuf::from));
                }
                _ => {}
            }
        }
    }
    files.sort();
    files.dedup();
    (dirs, files)
}

/// The reference of the appliance.ron format for `catalog` (`schemas/README.md`).
pub fn reference(catalog: &Catalog) -> String {
    reference::reference(catalog)
}

/// Finds the workspace root above `dir`: the nearest directory whose Cargo.toml has a
/// `[workspace]` table.
fn workspace_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml"))
                .is_ok_and(|t| t.lines().any(|l| l.trim() == "[workspace]"))
        })
        .map(Path::to_path_buf)
}

pub(crate) fn shown(path: &Path, root: Option<&Path>) -> String {
    root.and_then(|r| path.strip_prefix(r).ok())
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// The build script: reads `$CARGO_MANIFEST_DIR/appliance.ron` (and `MORGANA_TARGET`),
/// writes `$OUT_DIR/appliance.rs`, `$OUT_DIR/report.txt` and the target's deployment
/// files, and tells Cargo what to watch and how to link. Problems reach the terminal as
/// Cargo's own `error:` and `warning:` lines ([`cargo::report`]); after an error it
/// writes nothing and Cargo stops the build before rustc sees any generated code.
pub fn build() {
    let env = |k: &str| match std::env::var_os(k) {
        Some(v) => PathBuf::from(v),
        None => {
            eprintln!("error: {k} is not set (morgana_codegen::build runs from a build script)");
            std::process::exit(1);
        }
    };
    let manifest_dir = env("CARGO_MANIFEST_DIR");
    let out_dir = env("OUT_DIR");
    match build_with_env(&manifest_dir, &out_dir, |k| std::env::var(k).ok()) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
        }
        Err(failure) => {
            for line in &failure.instructions {
                println!("{line}");
            }
            // Exit successfully: Cargo stops at the logged errors, without the dump
            // of a failed build script around them, before rustc compiles the package
            // (docs/errors.md). Should rustc ever run all the same, it must not find
            // the code of an earlier build.
            let _ = std::fs::remove_file(out_dir.join("appliance.rs"));
            for line in cargo::report(&failure.message) {
                println!("{line}");
            }
        }
    }
}

/// Why [`build_in`] failed.
#[derive(Clone, Debug)]
pub struct BuildFailure {
    /// Cargo instructions to print anyway (what to watch, so that fixing the input
    /// reruns the build script).
    pub instructions: Vec<String>,
    /// The rendered diagnostics.
    pub message: String,
}

/// The build script's work, without the process around it: compiles
/// `manifest_dir/appliance.ron` for `target_override` (`MORGANA_TARGET`; empty means
/// unset), checks `manifest_dir/Cargo.toml`, writes the outputs, and returns the
/// `cargo:` instructions to print. Other build-time variables (a target's
/// `build_env`) come from the process environment.
pub fn build_in(
    manifest_dir: &Path,
    out_dir: &Path,
    target_override: Option<&str>,
) -> Result<Vec<String>, BuildFailure> {
    build_with_env(manifest_dir, out_dir, |k| {
        if k == "MORGANA_TARGET" {
            target_override.map(str::to_string)
        } else {
            std::env::var(k).ok()
        }
    })
}

/// The profile directory (`<target-dir>/<profile>`, where Cargo puts the binary) of a
/// build script's `OUT_DIR`, which is `<target-dir>/<profile>/build/<package>-<hash>/out`
/// in Cargo's layout: three levels up, checked.
pub fn profile_dir(out_dir: &Path) -> Option<PathBuf> {
    let build = out_dir.ancestors().nth(2)?;
    (out_dir.file_name()? == "out" && build.file_name()? == "build")
        .then(|| build.parent().map(Path::to_path_buf))
        .flatten()
}

/// [`build_in`] with every environment variable read through `env` (`MORGANA_TARGET`,
/// the target's `build_env`, `CARGO_PKG_NAME`).
pub fn build_with_env(
    manifest_dir: &Path,
    out_dir: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, BuildFailure> {
    let mut lines = vec![
        "cargo:rerun-if-changed=appliance.ron".to_string(),
        "cargo:rerun-if-changed=Cargo.toml".to_string(),
        "cargo:rerun-if-env-changed=MORGANA_TARGET".to_string(),
    ];
    let fail = |lines: &Vec<String>, message: String| BuildFailure {
        instructions: lines.clone(),
        message,
    };
    let root = workspace_root(manifest_dir);
    let ron_path = manifest_dir.join("appliance.ron");
    let source = std::fs::read_to_string(&ron_path).map_err(|e| {
        fail(
            &lines,
            format!("error: cannot read {}: {e}\n", ron_path.display()),
        )
    })?;
    let target_env = env("MORGANA_TARGET");
    let target = target_env.as_deref().filter(|t| !t.trim().is_empty());
    let shown_ron = shown(&ron_path, root.as_deref());

    // The deployment files name the binary where Cargo puts it: an absolute path.
    let profile = profile_dir(out_dir).map(|p| std::path::absolute(&p).unwrap_or(p));
    let catalog = Catalog::builtin().map_err(|d| fail(&lines, d.to_string()))?;
    let builds = targets::compile(
        catalog,
        &source,
        &shown_ron,
        manifest_dir,
        target,
        profile.as_deref(),
    )
    .map_err(|d| fail(&lines, d.to_string()))?;
    let several = builds.len() > 1;
    if several && let Some(d) = targets::check_bins(manifest_dir, root.as_deref(), &builds) {
        return Err(fail(&lines, d));
    }
    let place = Place {
        manifest_dir,
        out_dir,
        profile: profile.as_deref(),
        root: root.as_deref(),
    };
    for b in &builds {
        // One target: `appliance.rs`, linked into every binary of the package. Several:
        // one file and one set of link arguments per binary.
        let to = if several {
            BinOutputs {
                rust: format!("appliance-{}.rs", b.bin),
                report: format!("report-{}.txt", b.bin),
                link: format!("cargo::rustc-link-arg-bin={}=", b.bin),
            }
        } else {
            BinOutputs {
                rust: "appliance.rs".into(),
                report: "report.txt".into(),
                link: "cargo:rustc-link-arg-bins=".into(),
            }
        };
        outputs(&b.generated, &to, &place, &env, &mut lines)?;
    }
    if several {
        let p = out_dir.join("appliance.rs");
        std::fs::write(&p, targets::dispatch(&builds)).map_err(|e| {
            fail(
                &lines,
                format!("error: cannot write {}: {e}\n", p.display()),
            )
        })?;
        // The same warning from each target's compilation is said once.
        let mut seen = std::collections::HashSet::new();
        lines.retain(|l| seen.insert(l.clone()));
    }
    Ok(lines)
}

/// Where a build script reads and writes.
struct Place<'a> {
    manifest_dir: &'a Path,
    out_dir: &'a Path,
    /// `target/<profile>`, where the binaries go, if it can be told from `OUT_DIR`.
    profile: Option<&'a Path>,
    /// The workspace root, for the paths shown in messages.
    root: Option<&'a Path>,
}

/// The names one binary's outputs take in `OUT_DIR`, and its link instruction.
struct BinOutputs {
    rust: String,
    report: String,
    /// The instruction each linker argument follows.
    link: String,
}

/// Checks Cargo.toml against one compilation, writes its outputs, and adds its
/// `cargo:` instructions to `lines`.
fn outputs(
    generated: &Generated,
    to: &BinOutputs,
    place: &Place<'_>,
    env: &impl Fn(&str) -> Option<String>,
    lines: &mut Vec<String>,
) -> Result<(), BuildFailure> {
    let fail = |lines: &Vec<String>, message: String| BuildFailure {
        instructions: lines.clone(),
        message,
    };
    let (manifest_dir, out_dir, root) = (place.manifest_dir, place.out_dir, place.root);
    let profile = place.profile.map(Path::to_path_buf);
    for w in &generated.warnings {
        lines.extend(cargo::report(w));
    }
    for path in generated.watch.iter().chain(&generated.watch_files) {
        lines.push(format!("cargo:rerun-if-changed={}", path.display()));
    }
    lines.extend(cargo::big_dirs(
        manifest_dir,
        &generated.watch,
        cargo::BIG_DIR,
    ));
    for (var, _) in &generated.build_env {
        lines.push(format!("cargo:rerun-if-env-changed={var}"));
    }

    let cargo_toml = manifest_dir.join("Cargo.toml");
    if let Ok(text) = std::fs::read_to_string(&cargo_toml) {
        let mut sources = SourceMap::default();
        let file = sources.add(SourceFile::new(shown(&cargo_toml, root), text));
        let ws = root.and_then(|r| std::fs::read_to_string(r.join("Cargo.toml")).ok());
        if let Some(d) =
            cargo::check_dependencies(sources.get(file), file, &generated.crates, ws.as_deref())
                .or_else(|| cargo::check_features(sources.get(file), file, &generated.features))
        {
            return Err(fail(
                lines,
                Diagnostics {
                    sources,
                    list: vec![d],
                }
                .to_string(),
            ));
        }
    }
    let link_args = generated.resolve_link_args(env).map_err(|d| {
        fail(
            lines,
            Diagnostics {
                sources: SourceMap::default(),
                list: vec![d],
            }
            .to_string(),
        )
    })?;

    let dir_of = |d: FileDir| match d {
        FileDir::OutDir => Some(out_dir.to_path_buf()),
        FileDir::Profile => profile.clone(),
    };
    let write = |dir: &Path, name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text)
            .map_err(|e| fail(lines, format!("error: cannot write {}: {e}\n", p.display())))
    };
    write(out_dir, &to.rust, &generated.rust)?;
    write(out_dir, &to.report, &generated.report)?;
    for (file_name, bytes) in generated.archives.iter().filter_map(|a| a.archive()) {
        let p = out_dir.join(file_name);
        std::fs::write(&p, bytes)
            .map_err(|e| fail(lines, format!("error: cannot write {}: {e}\n", p.display())))?;
    }
    let mut notes = Vec::new();
    for image in &generated.disk_images {
        if image.path.is_absolute() {
            write_image(&image.path, &image.bytes).map_err(|message| fail(lines, message))?;
        } else {
            notes.push(format!(
                "cargo::warning=cannot tell where the binary goes from OUT_DIR={}: the disk image {} is not written",
                out_dir.display(),
                image.path.display()
            ));
        }
    }
    for f in &generated.files {
        match dir_of(f.dir) {
            Some(dir) => write(&dir, &f.name, &f.text)?,
            None => notes.push(format!(
                "cargo::warning=cannot tell where the binary goes from OUT_DIR={} (expected <target-dir>/<profile>/build/<package>-<hash>/out): {} is not written",
                out_dir.display(),
                f.name
            )),
        }
        if f.dir == FileDir::Profile
            && let Some(pkg) = env("CARGO_PKG_NAME")
            && pkg != generated.name
        {
            notes.push(format!(
                "cargo::warning=appliance `{}` is built by package `{pkg}`: {} will not sit next to the binary `{pkg}`; give the appliance its package's name",
                generated.name, f.name
            ));
        }
    }
    for f in &generated.stale_files {
        if let Some(dir) = dir_of(f.dir) {
            let p = dir.join(&f.name);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => notes.push(format!(
                    "cargo::warning=cannot remove the stale {}: {e}",
                    p.display()
                )),
            }
        }
    }
    lines.extend(notes);
    for arg in &link_args {
        lines.push(format!("{}{arg}", to.link));
    }
    Ok(())
}

/// Writes a built disk image unless the file already holds these bytes: through a
/// temporary file renamed over the old one, so a machine still running on the old
/// image keeps reading the old file, never a half-written one.
fn write_image(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let tmp = path.with_extension("img.tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            format!(
                "error: cannot write the disk image {}: {e}\n",
                path.display()
            )
        })
}
