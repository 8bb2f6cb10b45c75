//! Morgana's procedural macros. Use them through the crates that re-export them
//! (`kv_crunch::crunch!`), which also provide the types the expansions name.
//!
//! # `crunch!`
//!
//! `crunch!("htdocs")` expands to a `kv_crunch::Table` constant expression holding every
//! file under `htdocs`, relative to the `CARGO_MANIFEST_DIR` of the invoking crate (an
//! absolute path is used as it is). The `kv_crunch` crate documents the table; this
//! page documents how the macro builds it.
//!
//! ## Expansion
//!
//! ```text
//! ::kv_crunch::Table::new(&[
//!     ::kv_crunch::Entry {
//!         key: "css/site.css",
//!         data: ::core::include_bytes!("/abs/path/htdocs/css/site.css"),
//!         media_type: "text/css; charset=utf-8",
//!         etag: "\"1f0c…(32 hex digits)\"",
//!         gzip: ::core::option::Option::Some(b"\x1f\x8b…" as &'static [u8]),
//!     },
//!     …
//! ])
//! ```
//!
//! - Contents go through `include_bytes!` with an absolute path: no giant token arrays,
//!   and rustc tracks each file, so editing one rebuilds the crate.
//! - A gzip variant is one byte-string literal. Decision: literals rather than files
//!   written to the invoking crate's `OUT_DIR` and `include_bytes!`d. A macro that
//!   writes files has side effects that rust-analyzer and concurrent `check`/`build`
//!   runs repeat, leaves stale files behind, and `OUT_DIR` exists only for crates with
//!   a build script. Measured on a 5,000-file, 50 MB site (14 MB of gzip variants,
//!   41 MB of escaped literal text), the literals cost about 1 s of a 6 s crate
//!   rebuild compared with `OUT_DIR` files (5 s); hashing and compressing (1.4 s) and
//!   const-evaluating the 64 MB `static` (2 s) stay either way.
//! - Entries are sorted by key (byte order); `Table::new` re-checks that in const
//!   evaluation.
//!
//! ## Which files
//!
//! All regular files, recursively, dotfiles included (`.well-known/` matters to sites),
//! except entries named `.git`, `.hg`, `.svn` or `.DS_Store`. Symbolic links are
//! followed. Compile errors, each naming the path: the directory is missing or not a
//! directory (the message also names the `CARGO_MANIFEST_DIR` it was resolved against),
//! a file name is not UTF-8, a link is dangling or loops, an entry is neither file nor
//! directory (FIFO, socket, device).
//!
//! ## Media types
//!
//! By extension, case-insensitively, of the last path segment (`.htaccess` has no
//! extension). `text/*` types carry `; charset=utf-8`; JSON and XML types carry no
//! charset (JSON is UTF-8 by definition, XML declares its encoding). Unknown or no
//! extension: `application/octet-stream`.
//!
//! | extensions | media type |
//! |---|---|
//! | `html`, `htm` | `text/html; charset=utf-8` |
//! | `css` | `text/css; charset=utf-8` |
//! | `js`, `mjs`, `cjs` | `text/javascript; charset=utf-8` |
//! | `txt` | `text/plain; charset=utf-8` |
//! | `md`, `markdown` | `text/markdown; charset=utf-8` |
//! | `csv` | `text/csv; charset=utf-8` |
//! | `tsv` | `text/tab-separated-values; charset=utf-8` |
//! | `ics` | `text/calendar; charset=utf-8` |
//! | `vtt` | `text/vtt; charset=utf-8` |
//! | `json`, `map` | `application/json` |
//! | `jsonld` | `application/ld+json` |
//! | `webmanifest` | `application/manifest+json` |
//! | `xml` | `application/xml` |
//! | `xhtml` | `application/xhtml+xml` |
//! | `rss` | `application/rss+xml` |
//! | `atom` | `application/atom+xml` |
//! | `wasm` | `application/wasm` |
//! | `pdf` | `application/pdf` |
//! | `svg` | `image/svg+xml` |
//! | `png` | `image/png` |
//! | `jpg`, `jpeg` | `image/jpeg` |
//! | `gif` | `image/gif` |
//! | `webp` | `image/webp` |
//! | `avif` | `image/avif` |
//! | `jxl` | `image/jxl` |
//! | `ico` | `image/vnd.microsoft.icon` |
//! | `bmp` | `image/bmp` |
//! | `woff` | `font/woff` |
//! | `woff2` | `font/woff2` |
//! | `ttf` | `font/ttf` |
//! | `otf` | `font/otf` |
//! | `mp4` | `video/mp4` |
//! | `webm` | `video/webm` |
//! | `ogv` | `video/ogg` |
//! | `mp3` | `audio/mpeg` |
//! | `ogg`, `oga`, `opus` | `audio/ogg` |
//! | `m4a` | `audio/mp4` |
//! | `flac` | `audio/flac` |
//! | `wav` | `audio/wav` |
//! | `zip` | `application/zip` |
//! | `gz` | `application/gzip` |
//! | `zst` | `application/zstd` |
//!
//! ## ETag
//!
//! Strong, quotes included: `"` + the first 16 bytes (128 bits) of the SHA-256 of the
//! contents in lower-case hex + `"`. Equal contents have equal tags.
//!
//! ## gzip
//!
//! Level 9 (best), header with mtime 0, no name, OS byte 255: reproducible. Kept only
//! when it saves at least 64 bytes and at least 5 % of the original — below that the
//! `Content-Encoding`/`Vary` headers and the image space cost more than they save.
//! Not tried at all for files of 64 bytes or less and for already-compressed formats:
//! `png`, `jpg`, `jpeg`, `gif`, `webp`, `avif`, `jxl`, `woff`, `woff2`, `mp4`, `webm`,
//! `ogv`, `mp3`, `ogg`, `oga`, `opus`, `m4a`, `flac`, `zip`, `gz`, `zst`, `br`, `xz`,
//! `bz2`, `7z`. Hashing and compression run on one thread per core (at most 8), biggest
//! files first; the output does not depend on the scheduling (50 MB: 1.6 s on one
//! thread, 0.9 s on two, optimised).
//!
//! The work is done by optimised code only if the build profile says so: Cargo builds
//! proc macros and their dependencies at `opt-level = 0` by default, which makes
//! `flate2`'s compressor about four times and SHA-256 about ten times slower (50 MB:
//! 6.3 s instead of 0.9 s on two threads), and the secret-content scan some 80 times. The
//! per-byte work is in its own crate, `morgana-crunch-work`, so that a workspace with big
//! sites can optimise it and the crates it calls without the macro around it (this
//! workspace's root Cargo.toml does):
//!
//! ```toml
//! [profile.release.package]
//! morgana-crunch-work.opt-level = 3
//! "sha2@0.11".opt-level = 3
//! flate2.opt-level = 3
//! miniz_oxide.opt-level = 3
//! ```
//!
//! ## Rebuilding
//!
//! Edits are tracked (through `include_bytes!`). Added and removed files are not: a proc
//! macro cannot make rustc track a directory listing on stable Rust. The invoking
//! crate's build script must print `cargo:rerun-if-changed=<dir>` for each crunched
//! directory (`kv_crunch::build::RerunIfChanged` renders that line); without a build
//! script, touch the file that invokes the macro.

use proc_macro::TokenStream;

mod crunch;
mod media;
mod secrets;

/// Turns a directory into a `kv_crunch::Table`: `crunch!("htdocs")`. See the
/// [crate documentation](crate).
#[proc_macro]
pub fn crunch(input: TokenStream) -> TokenStream {
    crunch::expand(input.into()).into()
}
