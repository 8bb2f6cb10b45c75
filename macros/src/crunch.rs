//! `crunch!`: directory -> `kv_crunch::Table` expression.
//!
//! [`expand`] is the macro (it reads `CARGO_MANIFEST_DIR`); everything below it is a plain
//! function of a path, so the tests drive it directly.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use proc_macro2::{Literal, TokenStream};
use quote::quote;
use syn::LitStr;
use syn::parse::{ParseStream, Parser};

use morgana_crunch_work::{content_reason, etag, gzip};

use crate::media;
use crate::secrets;

/// Names skipped wherever they appear: version-control metadata and desktop litter.
/// (`.git` is not skipped silently: [`generate`] refuses it unless `.crunch-allow` lists
/// it, see `secrets.rs`.)
pub const SKIPPED: &[&str] = &[".hg", ".svn", ".DS_Store"];

/// Git metadata (a `.git` directory, or a worktree's `.git` file): never listed or
/// descended into, but reported.
pub const GIT: &str = ".git";

/// A gzip variant is kept only when it saves at least this many bytes…
pub const MIN_SAVING_BYTES: usize = 64;
/// …and at least this percentage of the original size.
pub const MIN_SAVING_PERCENT: usize = 5;

/// Most worker threads used to hash and compress.
const MAX_THREADS: usize = 8;

/// Why a directory cannot be crunched; rendered as the compile error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "crunch!: {}", self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error(msg.into()))
}

/// The macro: parses `"dir"` (an optional trailing comma is allowed), resolves it
/// against the invoking crate's `CARGO_MANIFEST_DIR` and expands to the table, or to a
/// `compile_error!` at the literal.
pub fn expand(input: TokenStream) -> TokenStream {
    let parser = |input: ParseStream<'_>| {
        let lit: LitStr = input.parse()?;
        let _: Option<syn::Token![,]> = input.parse()?;
        Ok(lit)
    };
    let lit = match parser.parse2(input) {
        Ok(lit) => lit,
        Err(e) => {
            return syn::Error::new(
                e.span(),
                "crunch!: expected one string literal, the directory: `crunch!(\"htdocs\")`",
            )
            .to_compile_error();
        }
    };
    let base = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    match generate(base.as_deref(), &lit.value(), threads()) {
        Ok(tokens) => tokens,
        Err(e) => syn::Error::new(lit.span(), e).to_compile_error(),
    }
}

/// How many threads hash and compress: the machine's parallelism, at most
/// [`MAX_THREADS`].
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS)
}

/// The table expression for directory `dir`, relative to `base` unless absolute.
pub fn generate(base: Option<&Path>, dir: &str, threads: usize) -> Result<TokenStream, Error> {
    let root = resolve(base, dir)?;
    let scanned = scan_all(&root)?;
    let entries = process(&scanned.files, threads)?;
    check_secrets(&root, dir, &scanned, &entries)?;
    Ok(render(&entries))
}

/// Refuses files that look secret unless `.crunch-allow` lists them (`secrets.rs`).
pub fn check_secrets(
    root: &Path,
    dir: &str,
    scanned: &Scanned,
    entries: &[Processed],
) -> Result<(), Error> {
    let mut allow = secrets::Allow::load(root)?;
    let mut suspects = Vec::new();
    for key in &scanned.git {
        if !allow.allows(key) {
            suspects.push((
                key.clone(),
                secrets::name_reason(GIT).unwrap_or("Git metadata"),
            ));
        }
    }
    for e in entries {
        let allowed = allow.allows(&e.key);
        if let Some(why) = secrets::name_reason(&e.key).or(e.secret)
            && !allowed
        {
            suspects.push((e.key.clone(), why));
        }
    }
    match secrets::refusal(dir, &suspects, &allow) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `base/dir`, checked to be a directory.
pub fn resolve(base: Option<&Path>, dir: &str) -> Result<PathBuf, Error> {
    let dir_path = Path::new(dir);
    let (root, against) = if dir_path.is_absolute() {
        (dir_path.to_path_buf(), String::new())
    } else {
        match base {
            Some(b) => (
                b.join(dir_path),
                format!(
                    " (\"{dir}\" resolved against CARGO_MANIFEST_DIR {})",
                    b.display()
                ),
            ),
            None => {
                return err(format!(
                    "cannot resolve \"{dir}\": CARGO_MANIFEST_DIR is not set (use an absolute path)"
                ));
            }
        }
    };
    match fs::metadata(&root) {
        Ok(m) if m.is_dir() => Ok(root),
        Ok(_) => err(format!("{} is not a directory{against}", root.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            err(format!("directory {} not found{against}", root.display()))
        }
        Err(e) => err(format!("cannot read {}{against}: {e}", root.display())),
    }
}

/// A file found under the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `/`-separated path relative to the root.
    pub key: String,
    /// Absolute (if the root is) path, as `include_bytes!` will read it.
    pub path: String,
    /// Size when scanned, to schedule the big files first.
    pub len: u64,
}

/// What [`scan_all`] found.
#[derive(Debug, Default)]
pub struct Scanned {
    /// The files to serve, sorted by key.
    pub files: Vec<Found>,
    /// The keys of `.git` entries (left out of `files`).
    pub git: Vec<String>,
}

/// Every file under `root`, sorted by key, and where `.git` metadata was. Follows
/// symbolic links; skips [`SKIPPED`], `.git` and the top-level `.crunch-allow`.
pub fn scan_all(root: &Path) -> Result<Scanned, Error> {
    let canonical = fs::canonicalize(root)
        .or_else(|e| err(format!("cannot resolve {}: {e}", root.display())))?;
    let mut scanned = Scanned::default();
    let mut ancestors = vec![canonical];
    walk(root, "", &mut ancestors, &mut scanned)?;
    scanned.files.sort_by(|a, b| a.key.cmp(&b.key));
    scanned.git.sort();
    Ok(scanned)
}

fn walk(
    dir: &Path,
    prefix: &str,
    ancestors: &mut Vec<PathBuf>,
    scanned: &mut Scanned,
) -> Result<(), Error> {
    let read = fs::read_dir(dir).or_else(|e| err(format!("cannot list {}: {e}", dir.display())))?;
    let mut children = Vec::new();
    for entry in read {
        let entry = entry.or_else(|e| err(format!("cannot list {}: {e}", dir.display())))?;
        children.push(entry.path());
    }
    children.sort();
    for path in children {
        let Some(name) = path.file_name() else {
            continue;
        };
        let Some(name) = name.to_str() else {
            return err(format!(
                "file name {} is not UTF-8 (keys must be UTF-8)",
                path.display()
            ));
        };
        if SKIPPED.contains(&name) || (prefix.is_empty() && name == secrets::ALLOW_FILE) {
            continue;
        }
        let key = format!("{prefix}{name}");
        if name == GIT {
            scanned.git.push(key);
            continue;
        }
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                let link = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
                return if link {
                    err(format!(
                        "symbolic link {} is dangling or loops: {e}",
                        path.display()
                    ))
                } else {
                    err(format!("cannot read {}: {e}", path.display()))
                };
            }
        };
        if meta.is_dir() {
            let canonical = fs::canonicalize(&path)
                .or_else(|e| err(format!("cannot resolve {}: {e}", path.display())))?;
            if ancestors.contains(&canonical) {
                return err(format!(
                    "symbolic link loop: {} leads back to {}",
                    path.display(),
                    canonical.display()
                ));
            }
            ancestors.push(canonical);
            walk(&path, &format!("{key}/"), ancestors, scanned)?;
            ancestors.pop();
        } else if meta.is_file() {
            let Some(p) = path.to_str() else {
                return err(format!("path {} is not UTF-8", path.display()));
            };
            scanned.files.push(Found {
                key,
                path: p.to_owned(),
                len: meta.len(),
            });
        } else {
            return err(format!(
                "{} is neither a file nor a directory",
                path.display()
            ));
        }
    }
    Ok(())
}

/// What the table stores for one file, besides the contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// The key.
    pub key: String,
    /// Where `include_bytes!` reads the contents.
    pub path: String,
    /// The media type.
    pub media_type: &'static str,
    /// The strong entity tag, quotes included.
    pub etag: String,
    /// The gzip variant, if worth keeping.
    pub gzip: Option<Vec<u8>>,
    /// Why the contents look secret, if they do (`morgana_crunch_work::content_reason`).
    pub secret: Option<&'static str>,
}

/// Reads, hashes and compresses every file, on up to `threads` threads; the result is in
/// the order of `files` whatever the scheduling.
pub fn process(files: &[Found], threads: usize) -> Result<Vec<Processed>, Error> {
    // Biggest first, so that one large file does not start last and run alone.
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(files[i].len));
    let slots: Vec<OnceLock<Result<Processed, Error>>> =
        files.iter().map(|_| OnceLock::new()).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
            let _ = slots[i].set(process_one(&files[i]));
        }
    };
    let threads = threads.clamp(1, files.len().max(1));
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
    slots
        .into_iter()
        .map(|slot| match slot.into_inner() {
            Some(result) => result,
            None => err("internal error: a file was not processed"),
        })
        .collect()
}

fn process_one(file: &Found) -> Result<Processed, Error> {
    let data = fs::read(&file.path).or_else(|e| err(format!("cannot read {}: {e}", file.path)))?;
    let gzip = if media::is_precompressed(&file.key) || data.len() <= MIN_SAVING_BYTES {
        None
    } else {
        Some(gzip(&data)).filter(|gz| worth_keeping(data.len(), gz.len()))
    };
    Ok(Processed {
        key: file.key.clone(),
        path: file.path.clone(),
        media_type: media::media_type(&file.key),
        etag: etag(&data),
        gzip,
        secret: content_reason(&data),
    })
}

/// Whether a `compressed`-byte variant of an `original`-byte file is worth storing.
pub fn worth_keeping(original: usize, compressed: usize) -> bool {
    let saved = original.saturating_sub(compressed);
    saved >= MIN_SAVING_BYTES && saved * 100 >= original * MIN_SAVING_PERCENT
}

/// The `kv_crunch::Table` expression.
pub fn render(entries: &[Processed]) -> TokenStream {
    let rows = entries.iter().map(|e| {
        let key = Literal::string(&e.key);
        let path = Literal::string(&e.path);
        let media_type = Literal::string(e.media_type);
        let etag = Literal::string(&e.etag);
        let gzip = match &e.gzip {
            Some(gz) => {
                let lit = Literal::byte_string(gz);
                quote!(::core::option::Option::Some(#lit as &'static [u8]))
            }
            None => quote!(::core::option::Option::None),
        };
        quote! {
            ::kv_crunch::Entry {
                key: #key,
                data: ::core::include_bytes!(#path),
                media_type: #media_type,
                etag: #etag,
                gzip: #gzip,
            },
        }
    });
    // Every token has the call-site span (quote's default), so `::kv_crunch` resolves
    // in the invoking crate.
    quote!(::kv_crunch::Table::new(&[#(#rows)*]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "morgana-crunch-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn file(&self, rel: &str, data: &[u8]) -> &Self {
            let p = self.0.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, data).unwrap();
            self
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn keys(root: &Path) -> Vec<String> {
        scan_all(root)
            .unwrap()
            .files
            .into_iter()
            .map(|f| f.key)
            .collect()
    }

    fn compressible(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"the quick brown fox "[i % 20])
            .collect::<Vec<u8>>()
    }

    #[test]
    fn keys_are_relative_sorted_and_slash_separated() {
        let t = TempDir::new();
        t.file("index.html", b"<h1>")
            .file("a-b", b"1")
            .file("a/b", b"2")
            .file("a/c/d.txt", b"3")
            .file("a0", b"4");
        assert_eq!(keys(&t.0), ["a-b", "a/b", "a/c/d.txt", "a0", "index.html"]);
    }

    #[test]
    fn dotfiles_are_kept_but_vcs_metadata_is_skipped() {
        let t = TempDir::new();
        t.file(".well-known/security.txt", b"Contact: x")
            .file(".htaccess", b"x")
            .file(".git/HEAD", b"ref")
            .file("sub/.git", b"gitdir: ..")
            .file("sub/.svn/entries", b"")
            .file(".hg/store", b"")
            .file("img/.DS_Store", b"junk")
            .file("img/a.png", b"png");
        assert_eq!(
            keys(&t.0),
            [".htaccess", ".well-known/security.txt", "img/a.png"]
        );
    }

    /// The PEM armour of a private key, assembled at run time so that this file does not
    /// look like it holds one.
    fn private_key_pem() -> Vec<u8> {
        format!(
            "-----{} PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
            "BEGIN"
        )
        .into_bytes()
    }

    fn generate_err(t: &TempDir) -> String {
        generate(None, t.0.to_str().unwrap(), 2)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.0)
    }

    #[test]
    fn secret_looking_files_are_refused_with_their_names_and_the_fix() {
        let t = TempDir::new();
        t.file("index.html", b"<h1>")
            .file("tls/site.key", b"x")
            .file(".env", b"TOKEN=1")
            .file("notes.txt", &private_key_pem())
            .file("sub/.git", b"gitdir: ..")
            .file("id_ed25519.pub", b"ssh-ed25519 AAAA");
        let e = generate_err(&t);
        let dir = t.0.to_str().unwrap();
        for (key, why) in [
            ("tls/site.key", "a private key file (*.key)"),
            (".env", "an environment file"),
            ("notes.txt", "contains a PEM private key"),
            ("sub/.git", "Git metadata"),
        ] {
            assert!(
                e.contains(&format!("  {dir}/{key}: {why}")),
                "{key} in:\n{e}"
            );
        }
        assert!(!e.contains("id_ed25519.pub"), "{e}");
        assert!(e.contains(".crunch-allow"), "{e}");
    }

    #[test]
    fn an_allow_list_lets_files_through_and_leaves_git_out() {
        let t = TempDir::new();
        t.file("index.html", b"<h1>")
            .file("demo/test.key", b"public demo key")
            .file(".git/HEAD", b"ref")
            .file(
                ".crunch-allow",
                b"# published on purpose\ndemo/*.key\n.git/\n",
            );
        let out = generate(None, t.0.to_str().unwrap(), 1)
            .unwrap()
            .to_string();
        assert!(out.contains("\"demo/test.key\""), "{out}");
        assert!(
            !out.contains(".git") && !out.contains(".crunch-allow"),
            "{out}"
        );
        // A line that matches nothing is an error: a typo must not look like a permission.
        t.file(".crunch-allow", b"demo/*.key\n.git/\ndemo/old.key\n");
        let e = generate_err(&t);
        assert!(
            e.contains(".crunch-allow:3: `demo/old.key` matches no file"),
            "{e}"
        );
    }

    #[test]
    fn empty_directory_is_an_empty_table() {
        let t = TempDir::new();
        let out = generate(None, t.0.to_str().unwrap(), 1)
            .unwrap()
            .to_string();
        assert_eq!(out.replace(' ', ""), "::kv_crunch::Table::new(&[])");
    }

    #[test]
    fn missing_directory_names_path_and_base() {
        let base = Path::new("/nonexistent-base");
        let e = generate(Some(base), "htdocs", 1).unwrap_err().to_string();
        assert!(e.starts_with("crunch!: "), "{e}");
        assert!(e.contains("/nonexistent-base/htdocs"), "{e}");
        assert!(e.contains("CARGO_MANIFEST_DIR /nonexistent-base"), "{e}");
        assert!(e.contains("not found"), "{e}");
        let e = generate(None, "htdocs", 1).unwrap_err().to_string();
        assert!(e.contains("CARGO_MANIFEST_DIR is not set"), "{e}");
    }

    #[test]
    fn a_file_is_not_a_directory() {
        let t = TempDir::new();
        t.file("f", b"x");
        let e = generate(Some(&t.0), "f", 1).unwrap_err().to_string();
        assert!(e.contains("is not a directory"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed_and_bad_ones_named() {
        use std::os::unix::fs::symlink;
        let t = TempDir::new();
        t.file("real/a.txt", b"a").file("real/sub/b.txt", b"b");
        fs::create_dir(t.0.join("site")).unwrap();
        symlink(t.0.join("real/a.txt"), t.0.join("site/link.txt")).unwrap();
        symlink(t.0.join("real/sub"), t.0.join("site/dirlink")).unwrap();
        assert_eq!(keys(&t.0.join("site")), ["dirlink/b.txt", "link.txt"]);

        symlink(t.0.join("nowhere"), t.0.join("site/dangling")).unwrap();
        let e = scan_all(&t.0.join("site")).unwrap_err().to_string();
        assert!(e.contains("site/dangling") && e.contains("dangling"), "{e}");
        fs::remove_file(t.0.join("site/dangling")).unwrap();

        // A link to an ancestor directory.
        symlink(t.0.join("site"), t.0.join("site/up")).unwrap();
        let e = scan_all(&t.0.join("site")).unwrap_err().to_string();
        assert!(e.contains("loop") && e.contains("site/up"), "{e}");
        fs::remove_file(t.0.join("site/up")).unwrap();

        // Links pointing at each other.
        symlink(t.0.join("site/l2"), t.0.join("site/l1")).unwrap();
        symlink(t.0.join("site/l1"), t.0.join("site/l2")).unwrap();
        let e = scan_all(&t.0.join("site")).unwrap_err().to_string();
        assert!(e.contains("site/l1") && e.contains("loops"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_names_are_errors() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let t = TempDir::new();
        let name = OsStr::from_bytes(b"bad\xffname.txt");
        if fs::write(t.0.join(name), b"x").is_err() {
            return; // The file system refuses such names itself.
        }
        let e = scan_all(&t.0).unwrap_err().to_string();
        assert!(e.contains("not UTF-8") && e.contains("bad"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_errors() {
        let t = TempDir::new();
        let sock = t.0.join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = scan_all(&t.0).unwrap_err().to_string();
        assert!(e.contains("s.sock") && e.contains("neither"), "{e}");
    }

    #[test]
    fn gzip_threshold() {
        assert!(!worth_keeping(100, 40), "saves 60 < 64 bytes");
        assert!(worth_keeping(1000, 936));
        assert!(!worth_keeping(10_000, 9_600), "saves 4 %");
        assert!(worth_keeping(10_000, 9_500));
        assert!(!worth_keeping(10, 20));
    }

    #[test]
    fn processing_decides_gzip_per_file() {
        let t = TempDir::new();
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                // xorshift64*: incompressible enough for deflate.
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect();
        t.file("big.txt", &compressible(10_000))
            .file("tiny.txt", b"hello")
            .file("noise.bin", &noise)
            .file("pic.png", &compressible(10_000));
        let p = process(&scan_all(&t.0).unwrap().files, 2).unwrap();
        let by = |k: &str| p.iter().find(|e| e.key == k).unwrap();
        assert!(by("big.txt").gzip.as_ref().unwrap().len() < 10_000);
        assert_eq!(by("tiny.txt").gzip, None);
        assert_eq!(by("noise.bin").gzip, None);
        assert_eq!(by("pic.png").gzip, None, "png is not tried");
        assert_eq!(by("pic.png").etag, by("big.txt").etag, "same content");
        assert_eq!(by("noise.bin").media_type, media::DEFAULT);
    }

    #[test]
    fn expansion_is_reproducible_and_independent_of_threads() {
        let t = TempDir::new();
        for i in 0..40 {
            t.file(
                &format!("d{}/f{i}.html", i % 3),
                &compressible(500 + 97 * i),
            );
        }
        let dir = t.0.to_str().unwrap();
        let one = generate(None, dir, 1).unwrap().to_string();
        let again = generate(None, dir, 1).unwrap().to_string();
        let four = generate(None, dir, 4).unwrap().to_string();
        assert_eq!(one, again);
        assert_eq!(one, four);
        assert!(one.contains("include_bytes !"), "{one}");
        assert!(!one.contains("gzip : :: core :: option :: Option :: None"));
    }

    #[test]
    fn rendering() {
        let out = render(&[Processed {
            key: "a/\"q\".txt".into(),
            path: "/x/a/\"q\".txt".into(),
            media_type: "text/plain; charset=utf-8",
            etag: "\"00\"".into(),
            gzip: Some(vec![0, 255, b'"']),
            secret: None,
        }])
        .to_string();
        assert!(
            out.starts_with(":: kv_crunch :: Table :: new (& ["),
            "{out}"
        );
        assert!(out.contains(r#"key : "a/\"q\".txt""#), "{out}");
        assert!(
            out.contains(r#"data : :: core :: include_bytes ! ("/x/a/\"q\".txt")"#),
            "{out}"
        );
        assert!(out.contains(r#"etag : "\"00\"""#), "{out}");
        // Hex escapes are upper or lower case depending on the proc-macro backend.
        assert!(
            out.to_ascii_lowercase()
                .contains(r#"some (b"\0\xff\"" as & 'static [u8])"#),
            "{out}"
        );
    }

    /// Timing of scan + process on a big tree, e.g.
    /// `CRUNCH_BENCH_DIR=/tmp/tree cargo test -p morgana-macros --release -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_process() {
        let dir = std::env::var_os("CRUNCH_BENCH_DIR")
            .expect("set CRUNCH_BENCH_DIR to the tree to time (this benchmark runs only by hand)");
        let files = scan_all(Path::new(&dir)).unwrap().files;
        for threads in [1, 2] {
            let t0 = std::time::Instant::now();
            let p = process(&files, threads).unwrap();
            let gz: usize = p.iter().filter_map(|e| e.gzip.as_ref()).map(Vec::len).sum();
            let t1 = std::time::Instant::now();
            let s = render(&p).to_string();
            eprintln!(
                "{} files, {threads} thread(s): process {:?}, render+to_string {:?} ({} bytes of tokens), gzip bytes {gz}",
                files.len(),
                t1 - t0,
                t1.elapsed(),
                s.len(),
            );
        }
    }
}
