//! Media types by file extension, and which types are not worth gzipping.

/// What a file without a known extension is served as.
pub const DEFAULT: &str = "application/octet-stream";

/// Extension (lower case) -> media type. Textual `text/*` types carry
/// `; charset=utf-8`; JSON and XML types do not (JSON is UTF-8 by definition, XML
/// declares its own encoding). Kept in the order of the crate documentation's table.
pub const MEDIA_TYPES: &[(&str, &str)] = &[
    // Text and code.
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("cjs", "text/javascript; charset=utf-8"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("markdown", "text/markdown; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("tsv", "text/tab-separated-values; charset=utf-8"),
    ("ics", "text/calendar; charset=utf-8"),
    ("vtt", "text/vtt; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("jsonld", "application/ld+json"),
    ("webmanifest", "application/manifest+json"),
    ("xml", "application/xml"),
    ("xhtml", "application/xhtml+xml"),
    ("rss", "application/rss+xml"),
    ("atom", "application/atom+xml"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    // Images.
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("jxl", "image/jxl"),
    ("ico", "image/vnd.microsoft.icon"),
    ("bmp", "image/bmp"),
    // Fonts.
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    // Audio and video.
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("ogv", "video/ogg"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("oga", "audio/ogg"),
    ("opus", "audio/ogg"),
    ("m4a", "audio/mp4"),
    ("flac", "audio/flac"),
    ("wav", "audio/wav"),
    // Archives.
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("zst", "application/zstd"),
];

/// Extensions whose contents are already compressed: gzip is not even tried.
pub const PRECOMPRESSED: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "webp", "avif", "jxl", "woff", "woff2", "mp4", "webm", "ogv",
    "mp3", "ogg", "oga", "opus", "m4a", "flac", "zip", "gz", "zst", "br", "xz", "bz2", "7z",
];

/// The extension of the last path segment, if any (`a.tar.gz` -> `gz`; `.bashrc` has
/// none, being a hidden file without extension).
fn extension(key: &str) -> Option<&str> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let dot = name.rfind('.')?;
    if dot == 0 {
        return None;
    }
    Some(&name[dot + 1..])
}

/// The media type of `key`.
pub fn media_type(key: &str) -> &'static str {
    extension(key)
        .and_then(|ext| {
            MEDIA_TYPES
                .iter()
                .find(|(e, _)| e.eq_ignore_ascii_case(ext))
                .map(|&(_, t)| t)
        })
        .unwrap_or(DEFAULT)
}

/// Whether `key` names an already-compressed format.
pub fn is_precompressed(key: &str) -> bool {
    extension(key).is_some_and(|ext| PRECOMPRESSED.iter().any(|e| e.eq_ignore_ascii_case(ext)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_extension() {
        assert_eq!(media_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(media_type("a/B.HTML"), "text/html; charset=utf-8");
        assert_eq!(media_type("css/site.css"), "text/css; charset=utf-8");
        assert_eq!(media_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(media_type("img/logo.png"), "image/png");
        assert_eq!(media_type("f.woff2"), "font/woff2");
        assert_eq!(media_type("x.tar.gz"), "application/gzip");
        assert_eq!(media_type("README"), DEFAULT);
        assert_eq!(media_type(".htaccess"), DEFAULT);
        assert_eq!(media_type("dir.d/noext"), DEFAULT);
        assert_eq!(media_type("trailingdot."), DEFAULT);
        assert_eq!(media_type("x.unknown"), DEFAULT);
    }

    #[test]
    fn text_types_have_a_charset() {
        for (ext, t) in MEDIA_TYPES {
            assert_eq!(
                t.starts_with("text/"),
                t.ends_with("; charset=utf-8"),
                "{ext}"
            );
        }
    }

    #[test]
    fn no_duplicate_extensions() {
        for (i, (a, _)) in MEDIA_TYPES.iter().enumerate() {
            assert!(
                MEDIA_TYPES[i + 1..].iter().all(|(b, _)| a != b),
                "{a} twice"
            );
            assert_eq!(a.to_ascii_lowercase(), *a);
        }
    }

    #[test]
    fn precompressed() {
        assert!(is_precompressed("img/logo.PNG"));
        assert!(is_precompressed("f.woff2"));
        assert!(!is_precompressed("index.html"));
        assert!(!is_precompressed("noext"));
    }

    #[test]
    fn documented() {
        // Every row of the table appears in the crate documentation.
        let docs: String = include_str!("lib.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        for (ext, t) in MEDIA_TYPES {
            assert!(docs.contains(&format!("`{ext}`")), "{ext} undocumented");
            assert!(docs.contains(&format!("`{t}`")), "{t} undocumented");
        }
        for ext in PRECOMPRESSED {
            assert!(docs.contains(&format!("`{ext}`")), "{ext} undocumented");
        }
    }
}
