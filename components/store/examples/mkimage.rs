//! Prepares a read-only image from a directory: every file becomes a key (its path
//! relative to the directory, `/`-separated) holding the file's bytes, meta 0.
//!
//! ```sh
//! cargo run -p morgana-store --example mkimage -- <dir> <image> [--index-every BYTES]
//! ```
//!
//! The image is a whole number of 4096-byte blocks; attach it as a read-only disk and
//! mount it with `morgana_store::Image::open`. An existing output file is never
//! overwritten. An appliance can have its build make the image instead:
//! `Block(from: "dir/")` in appliance.ron (morgana-codegen calls the same
//! `image::build`; docs/storage.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use morgana_store::image::{BuildOptions, build};

fn walk(root: &Path, dir: &Path, out: &mut Vec<(Vec<u8>, Vec<u8>, u64)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).expect("under root");
            let key: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push((key.join("/").into_bytes(), std::fs::read(&path)?, 0));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = BuildOptions::default();
    let mut paths = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--index-every" {
            match it.next().and_then(|v| v.parse().ok()) {
                Some(n) => options.index_every = n,
                None => {
                    eprintln!("mkimage: --index-every takes a number of bytes");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            paths.push(PathBuf::from(a));
        }
    }
    let [dir, image] = &paths[..] else {
        eprintln!("usage: mkimage <dir> <image> [--index-every BYTES]");
        return ExitCode::FAILURE;
    };
    if image.exists() {
        eprintln!(
            "mkimage: {} exists; refusing to overwrite it",
            image.display()
        );
        return ExitCode::FAILURE;
    }
    let mut entries = Vec::new();
    if let Err(e) = walk(dir, dir, &mut entries) {
        eprintln!("mkimage: reading {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let count = entries.len();
    let bytes = match build(entries, options) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mkimage: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(image, &bytes) {
        eprintln!("mkimage: writing {}: {e}", image.display());
        return ExitCode::FAILURE;
    }
    println!("{}: {count} keys, {} bytes", image.display(), bytes.len());
    ExitCode::SUCCESS
}
