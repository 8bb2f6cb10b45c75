//! Disks built at build time: a `Block` with `from: "<dir>"` is a read-only key-value
//! image (morgana-store's [`Image`](morgana_store::Image) format, mounted by a
//! `KvImage`) of that directory, written by the build script next to the binary as
//! `<profile dir>/<appliance>-<device>.img`.
//!
//! Every regular file below the directory is a key: its path relative to the
//! directory with `/` between the parts (`users/alice` for `seed/users/alice`), and
//! its bytes are the value (meta 0). Files and directories whose name starts with `.`
//! are left out (`.gitkeep`, editors' swap files). Refused, each at `from`'s place in
//! appliance.ron with the file named: a name that is not UTF-8, a key longer than the
//! store's 4096 bytes, a value over the store's 1 MiB (`KvSeed` copies every key into
//! a `KvStore`, whose limits these are), something that is neither a file nor a
//! directory, and an image larger than the device's `size_mib`.
//!
//! The image is made by `morgana_store::image::build`, the writer `mkimage` uses: one
//! format writer. Once built, the device's `image` is the image's path and `read_only`
//! is true, so every target's code and deployment files attach it as they attach any
//! read-only disk (the Unix process opens it, the `.qemu` has its `-drive
//! file=...,readonly=on`, the `.xl` its `access=ro`). The directory is a `Dir` key:
//! Cargo reruns the build script when anything below it changes.
//!
//! A component takes part by having a `from` key of type `Dir` next to its `image`
//! and `read_only` keys (`Block` in `schemas/catalog/storage.ron`).

use std::path::{Path, PathBuf};

use crate::catalog::{Catalog, KeyType};
use crate::diag::Diagnostic;
use crate::model::{Appliance, Origin, Scalar, Setting};

/// The key naming the directory.
pub const FROM: &str = "from";
const IMAGE: &str = "image";
const READ_ONLY: &str = "read_only";
const SIZE_MIB: &str = "size_mib";

/// The longest key: the store's (`KvSeed` copies the image into a `KvStore`).
pub const MAX_KEY: usize = 4096;
/// The largest value: the store's (1 MiB).
pub const MAX_VALUE: u64 = 1 << 20;
// The store's own limits, checked where the store is compiled in (the `disk-image`
// feature; always in codegen's tests).
#[cfg(feature = "disk-image")]
const _: () = assert!(
    MAX_KEY == morgana_store::DEFAULT_MAX_KEY_LEN as usize
        && MAX_VALUE == morgana_store::DEFAULT_MAX_VALUE_LEN as u64
);

/// At most this many problems with the directory's files are reported.
const MAX_REPORTED: usize = 10;

/// An image built for a device.
#[derive(Clone, Debug, PartialEq)]
pub struct DiskImage {
    /// The device.
    pub device: String,
    /// Where it goes: `<profile dir>/<appliance>-<device>.img` (absolute), or the
    /// bare file name when the profile directory is unknown.
    pub path: PathBuf,
    /// The directory it was built from, relative to the manifest directory.
    pub from: String,
    /// How many keys it holds.
    pub keys: usize,
    /// The image.
    pub bytes: Vec<u8>,
}

/// The file name of `device`'s image.
pub fn file_name(appliance: &str, device: &str) -> String {
    format!("{appliance}-{device}.img")
}

/// Builds the images of the devices with a `from` key, and points their `image` at
/// the result (read-only). Problems go to `diags`.
pub fn run(
    a: &mut Appliance,
    catalog: &Catalog,
    manifest_dir: &Path,
    display_dir: &str,
    profile_dir: Option<&Path>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<DiskImage> {
    let mut out = Vec::new();
    let name = a.name.clone();
    for dev in &mut a.devices {
        let Some(comp) = catalog.component(&dev.component) else {
            continue;
        };
        let takes_part = comp
            .keys
            .iter()
            .any(|k| k.name == FROM && matches!(k.ty, KeyType::Dir))
            && comp.keys.iter().any(|k| k.name == IMAGE);
        if !takes_part {
            continue;
        }
        let image = dev.setting(IMAGE).cloned();
        let written_image = image.as_ref().and_then(|s| s.origin.span());
        let from = match dev.setting(FROM).map(|s| (&s.value, s.origin)) {
            Some((Scalar::Str(dir), Origin::Source(span))) => (dir.clone(), span),
            _ => {
                if written_image.is_none() {
                    diags.push(
                        Diagnostic::error(format!("`{}` names no disk image", dev.name))
                            .primary(dev.name_span, "neither `image` nor `from` is given")
                            .help(format!(
                                "give `image: \"{}.img\"` (a file the appliance opens, created if missing) or `from: \"{}/\"` (a read-only key-value image built from that directory)",
                                dev.name, dev.name
                            )),
                    );
                }
                continue;
            }
        };
        let (dir, span) = from;
        if let Some(image_span) = written_image {
            diags.push(
                Diagnostic::error(format!("`{}` has both `image` and `from`", dev.name))
                    .primary(span, "the disk is built from this directory")
                    .secondary(image_span, "and also named here")
                    .help(format!(
                        "leave `image` out: the build writes the image to target/<profile>/{}",
                        file_name(&name, &dev.name)
                    )),
            );
            continue;
        }
        if let Some(Setting {
            value: Scalar::Bool(false),
            origin: Origin::Source(ro_span),
            ..
        }) = dev.setting(READ_ONLY)
        {
            diags.push(
                Diagnostic::error(format!(
                    "`{}` is built from `{dir}`, so it is read-only",
                    dev.name
                ))
                .primary(*ro_span, "`read_only: false` here")
                .secondary(span, "a built image")
                .help(
                    "remove `read_only: false`; for data clients change, wire a `KvSeed` that copies the image into a `KvStore` on another `Block`",
                ),
            );
            continue;
        }
        let shown = if display_dir.is_empty() {
            dir.clone()
        } else {
            format!("{}/{dir}", display_dir.trim_end_matches('/'))
        };
        let what = format!("`{}.{FROM}`", dev.name);
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        walk(
            &manifest_dir.join(&dir),
            shown.trim_end_matches('/'),
            "",
            &mut entries,
            &mut problems,
        );
        let failed = !problems.is_empty();
        let count = problems.len();
        for (i, (message, help)) in problems.into_iter().enumerate() {
            if i == MAX_REPORTED {
                diags.push(
                    Diagnostic::error(format!(
                        "{} more problems in `{shown}`",
                        count - MAX_REPORTED
                    ))
                    .primary(span, format!("{what} names it")),
                );
                break;
            }
            diags.push(
                Diagnostic::error(message)
                    .primary(span, format!("{what} names it"))
                    .help(help),
            );
        }
        if failed {
            continue;
        }
        let keys = entries.len();
        let bytes = match build_image(entries) {
            Ok(b) => b,
            Err(e) => {
                // The walk refuses what `build` would: this is a bug if it shows.
                diags.push(
                    Diagnostic::error(format!("cannot build the image of `{shown}`: {e}"))
                        .primary(span, format!("{what} names it")),
                );
                continue;
            }
        };
        let size = dev.setting(SIZE_MIB);
        let size_mib = match size.map(|s| &s.value) {
            Some(Scalar::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        };
        if bytes.len() as u64 > size_mib << 20 {
            let need = (bytes.len() as u64).div_ceil(1 << 20);
            let mut d = Diagnostic::error(format!(
                "the image of `{shown}` is {} bytes, more than `{}.{SIZE_MIB}` ({size_mib} MiB) allows",
                bytes.len(),
                dev.name
            ));
            d = match size.and_then(|s| s.origin.span()) {
                Some(size_span) => d
                    .primary(size_span, format!("{size_mib} MiB"))
                    .secondary(span, format!("{keys} keys from here")),
                None => d.primary(
                    span,
                    format!("{keys} keys from here; `{SIZE_MIB}` is {size_mib} MiB by default"),
                ),
            };
            diags.push(d.help(format!(
                "give `{}` `{SIZE_MIB}: {need}` or more, or take files out of `{shown}`",
                dev.name
            )));
            continue;
        }
        let file = file_name(&name, &dev.name);
        let path = profile_dir.map_or_else(|| PathBuf::from(&file), |p| p.join(&file));
        // Both set by `from`: the generated code's comments point there.
        for s in &mut dev.settings {
            if s.key == IMAGE {
                s.value = Scalar::Str(path.to_string_lossy().into_owned());
                s.origin = Origin::Source(span);
            } else if s.key == READ_ONLY {
                s.value = Scalar::Bool(true);
                s.origin = Origin::Source(span);
            }
        }
        out.push(DiskImage {
            device: dev.name.clone(),
            path,
            from: dir,
            keys,
            bytes,
        });
    }
    out
}

/// The image of `entries` (key, value, meta), by the store's writer.
#[cfg(feature = "disk-image")]
fn build_image(entries: Vec<(Vec<u8>, Vec<u8>, u64)>) -> Result<Vec<u8>, String> {
    morgana_store::image::build(entries, morgana_store::image::BuildOptions::default())
        .map_err(|e| e.to_string())
}

/// Without the store's writer: `crate::build_steps` stopped every compilation that
/// builds an image before this point.
#[cfg(not(feature = "disk-image"))]
fn build_image(_: Vec<(Vec<u8>, Vec<u8>, u64)>) -> Result<Vec<u8>, String> {
    Err("morgana-codegen was built without its `disk-image` feature".into())
}

/// The devices whose disk is built from a directory (`from` given), with `from`'s
/// place: each needs morgana-codegen's `disk-image` feature.
pub fn steps(a: &Appliance, catalog: &Catalog) -> Vec<(usize, crate::diag::Span)> {
    a.devices
        .iter()
        .enumerate()
        .filter(|(_, dev)| {
            catalog.component(&dev.component).is_some_and(|comp| {
                comp.keys
                    .iter()
                    .any(|k| k.name == FROM && matches!(k.ty, KeyType::Dir))
                    && comp.keys.iter().any(|k| k.name == IMAGE)
            })
        })
        .filter_map(
            |(i, dev)| match dev.setting(FROM).map(|s| (&s.value, s.origin)) {
                Some((Scalar::Str(_), Origin::Source(span))) => Some((i, span)),
                _ => None,
            },
        )
        .collect()
}

/// One entry per regular file below `dir` (sorted), keys prefixed with `prefix`;
/// problems as (message, help).
fn walk(
    dir: &Path,
    shown: &str,
    prefix: &str,
    out: &mut Vec<(Vec<u8>, Vec<u8>, u64)>,
    problems: &mut Vec<(String, String)>,
) {
    let mut names = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect::<Vec<_>>(),
        Err(e) => {
            problems.push((
                format!("cannot read the directory `{shown}`: {e}"),
                "make it readable by the user running cargo".into(),
            ));
            return;
        }
    };
    names.sort();
    for os in names {
        let path = dir.join(&os);
        let Some(part) = os.to_str() else {
            problems.push((
                format!(
                    "`{shown}/{}` has a name that is not UTF-8: it cannot be a key",
                    os.to_string_lossy()
                ),
                "rename it: keys are the files' paths, in UTF-8".into(),
            ));
            continue;
        };
        if part.starts_with('.') {
            continue;
        }
        let key = format!("{prefix}{part}");
        let at = format!("{shown}/{part}");
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                problems.push((
                    format!("cannot read `{at}`: {e}"),
                    "remove it or fix it (a broken symbolic link?)".into(),
                ));
                continue;
            }
        };
        if meta.is_dir() {
            walk(&path, &at, &format!("{key}/"), out, problems);
            continue;
        }
        if !meta.is_file() {
            problems.push((
                format!("`{at}` is neither a file nor a directory"),
                "every file below the directory is a key; move this out".into(),
            ));
            continue;
        }
        if key.len() > MAX_KEY {
            problems.push((
                format!(
                    "`{at}` would be a key of {} bytes, longer than the store's {MAX_KEY}",
                    key.len()
                ),
                "shorten its path".into(),
            ));
            continue;
        }
        if meta.len() > MAX_VALUE {
            problems.push((
                format!(
                    "`{at}` is {} bytes, larger than a value may be ({MAX_VALUE} bytes, 1 MiB)",
                    meta.len()
                ),
                "split it, or compile large files into the appliance with `Crunch`".into(),
            ));
            continue;
        }
        match std::fs::read(&path) {
            Ok(value) => out.push((key.into_bytes(), value, 0)),
            Err(e) => problems.push((
                format!("cannot read `{at}`: {e}"),
                "make it readable by the user running cargo".into(),
            )),
        }
    }
}

/// The report's lines about the built images.
pub fn report(images: &[DiskImage]) -> String {
    let mut out = String::new();
    for i in images {
        out.push_str(&format!(
            "disk image `{}`: {} key{} from {}, {} bytes, read-only: {}\n",
            i.device,
            i.keys,
            if i.keys == 1 { "" } else { "s" },
            i.from,
            i.bytes.len(),
            i.path.display()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("morgana-disk-image-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    #[test]
    fn files_become_keys_by_path_and_hidden_ones_are_left_out() {
        let dir = scratch("keys");
        std::fs::create_dir_all(dir.join("a/b")).expect("mkdir");
        std::fs::create_dir_all(dir.join(".git")).expect("mkdir");
        std::fs::write(dir.join("top"), b"1").expect("write");
        std::fs::write(dir.join("a/b/deep"), b"22").expect("write");
        std::fs::write(dir.join("a/empty"), b"").expect("write");
        std::fs::write(dir.join(".gitkeep"), b"").expect("write");
        std::fs::write(dir.join(".git/HEAD"), b"x").expect("write");
        let (mut entries, mut problems) = (Vec::new(), Vec::new());
        walk(&dir, "seed", "", &mut entries, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let keys: Vec<(&[u8], &[u8])> = entries
            .iter()
            .map(|(k, v, _)| (k.as_slice(), v.as_slice()))
            .collect();
        assert_eq!(
            keys,
            [
                (&b"a/b/deep"[..], &b"22"[..]),
                (b"a/empty", b""),
                (b"top", b"1")
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_that_cannot_be_keys_are_refused_with_the_file_named() {
        use std::os::unix::ffi::OsStrExt;
        let dir = scratch("refused");
        std::fs::write(dir.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), b"x").expect("write");
        std::fs::write(dir.join("v"), b"x").expect("write");
        let (mut entries, mut problems) = (Vec::new(), Vec::new());
        walk(&dir, "seed", "", &mut entries, &mut problems);
        assert_eq!(entries.len(), 1, "{entries:?}");
        // A key of more than 4096 bytes: the path of a file 21 directories of 200
        // bytes down (longer than Linux's PATH_MAX to create in a test; the walk
        // builds the key as this prefix).
        let deep = format!("{}/", vec!["d".repeat(200); 21].join("/"));
        let mut entries = Vec::new();
        walk(&dir, "seed", &deep, &mut entries, &mut problems);
        assert!(entries.is_empty(), "{entries:?}");
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|(m, _)| m.contains("seed/caf\u{fffd}") && m.contains("not UTF-8")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|(m, _)| m
                    .contains("would be a key of 4222 bytes, longer than the store's 4096")),
            "{problems:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
