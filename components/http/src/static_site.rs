//! The static-site handler: serves a read-only key-value store.

use morgana_signatures::{KvRo, Object};

use crate::MAX_PATH;
use crate::negotiate;
use crate::request::Request;
use crate::response::{HTML, Headers, Response, Status};
use crate::server::Handler;

/// The file served for `/` and for `/dir/`.
const INDEX: &str = "index.html";

/// Inserted before the closing quote of the store's entity tag for the gzip variant.
const GZIP_ETAG_SUFFIX: &str = "-gzip";

/// A [`Handler`] serving the values of a [`KvRo`] store as a web site.
///
/// - `/a/b` is the key `a/b`; `/` and `/a/` are `index.html` and `a/index.html`.
/// - `/a`, when there is no key `a` but a directory `a/`, gets `301` to `/a/` (query kept
///   when it fits the response head).
/// - A path with an empty segment (`//`) is not found: no key has one, and it keeps
///   redirects from ever pointing at `//host`.
/// - Found: `200` with the store's media type and entity tag; the gzip variant (with
///   `Content-Encoding: gzip` and the tag suffixed `-gzip`) when
///   [`Request::accepts_gzip`]; `Vary: Accept-Encoding` whenever a gzip variant
///   exists. `304` (with `ETag` and `Vary`) when `If-None-Match` matches the selected
///   representation's tag. A store entry whose entity tag is malformed is served without
///   one.
/// - Not found: `404` with a small HTML page. A store error: `500`.
pub struct StaticSite<K: KvRo> {
    kv: K,
}

impl<K: KvRo> StaticSite<K> {
    /// A site serving `kv`.
    pub const fn new(kv: K) -> StaticSite<K> {
        StaticSite { kv }
    }

    /// The store.
    pub fn kv(&self) -> &K {
        &self.kv
    }

    /// The synchronous core of [`Handler::handle`]: store lookups never wait.
    pub fn respond<'a>(&'a self, request: &Request<'_>, headers: &mut Headers<'_>) -> Response<'a> {
        let Some(rel) = request.path().strip_prefix('/') else {
            return not_found(headers);
        };
        if rel.starts_with('/') || rel.contains("//") {
            return not_found(headers);
        }
        let mut key_buf = [0u8; MAX_PATH + INDEX.len()];
        let dir_form = rel.is_empty() || rel.ends_with('/');
        let key = if dir_form {
            match join(&mut key_buf, rel, INDEX) {
                Some(key) => key,
                None => return not_found(headers),
            }
        } else {
            rel
        };
        match self.kv.get(key) {
            Ok(Some(object)) => serve(request, headers, object),
            Ok(None) if dir_form => not_found(headers),
            Ok(None) => match self.kv.is_dir(rel) {
                Ok(true) => redirect_to_dir(request, headers),
                Ok(false) => not_found(headers),
                Err(e) => store_error(request, headers, &e),
            },
            Err(e) => store_error(request, headers, &e),
        }
    }
}

impl<K: KvRo> Handler for StaticSite<K> {
    async fn handle<'a>(
        &'a self,
        request: &Request<'_>,
        headers: &mut Headers<'_>,
    ) -> Response<'a> {
        self.respond(request, headers)
    }
}

fn serve<'a>(request: &Request<'_>, headers: &mut Headers<'_>, object: Object<'a>) -> Response<'a> {
    let gzip = object.gzip.filter(|_| request.accepts_gzip());
    let (body, suffix) = match gzip {
        Some(compressed) => (compressed, GZIP_ETAG_SUFFIX),
        None => (object.data, ""),
    };
    let etag = Some(object.etag).filter(|e| negotiate::valid_etag(e));
    let not_modified = etag
        .is_some_and(|e| negotiate::none_match(request.header_values("if-none-match"), e, suffix));
    if let Some(stem) = etag.and_then(|e| e.strip_suffix('"')) {
        headers.insert_fmt("ETag", format_args!("{stem}{suffix}\""));
    }
    if object.gzip.is_some() {
        headers.insert("Vary", "Accept-Encoding");
    }
    if not_modified {
        return Response::empty(Status::NotModified);
    }
    headers.insert("Content-Type", object.media_type);
    if gzip.is_some() {
        headers.insert("Content-Encoding", "gzip");
    }
    // Ranges count in the bytes of the representation chosen here (the gzip variant's
    // when that is what goes out), and If-Range meets the tag just written.
    Response::new(Status::Ok, body).with_ranges()
}

fn redirect_to_dir<'a>(request: &Request<'_>, headers: &mut Headers<'_>) -> Response<'a> {
    let path = request.raw_path();
    // `Location: <path>/?<query>\r\n`
    let with_query = request
        .query()
        .filter(|q| "Location: ".len() + path.len() + 2 + q.len() + 2 <= headers.remaining());
    match with_query {
        Some(query) => headers.insert_fmt("Location", format_args!("{path}/?{query}")),
        None => headers.insert_fmt("Location", format_args!("{path}/")),
    };
    html(headers, Status::MovedPermanently)
}

fn not_found<'a>(headers: &mut Headers<'_>) -> Response<'a> {
    html(headers, Status::NotFound)
}

fn store_error<'a>(
    request: &Request<'_>,
    headers: &mut Headers<'_>,
    e: &impl core::fmt::Display,
) -> Response<'a> {
    log::debug!(
        "{}: store: {}: {e}",
        morgana_signatures::ShowAddr(request.peer()),
        request.path()
    );
    html(headers, Status::InternalServerError)
}

fn html<'a>(headers: &mut Headers<'_>, status: Status) -> Response<'a> {
    headers.insert("Content-Type", HTML);
    Response::new(status, status.page().as_bytes())
}

/// `a ++ b` in `buf`.
fn join<'k>(buf: &'k mut [u8], a: &str, b: &str) -> Option<&'k str> {
    let len = a.len().checked_add(b.len())?;
    buf.get_mut(..a.len())?.copy_from_slice(a.as_bytes());
    buf.get_mut(a.len()..len)?.copy_from_slice(b.as_bytes());
    let buf: &'k [u8] = buf;
    core::str::from_utf8(buf.get(..len)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Method, Version};
    use core::net::{Ipv4Addr, SocketAddr};
    use std::vec;
    use std::vec::Vec;

    struct Kv(Vec<(&'static str, Object<'static>)>);

    impl KvRo for Kv {
        type Error = &'static str;
        fn get(&self, key: &str) -> Result<Option<Object<'_>>, &'static str> {
            if key == "broken" {
                return Err("disk on fire");
            }
            Ok(self.0.iter().find(|(k, _)| *k == key).map(|(_, o)| *o))
        }
        fn is_dir(&self, key: &str) -> Result<bool, &'static str> {
            Ok(self
                .0
                .iter()
                .any(|(k, _)| k.strip_prefix(key).is_some_and(|r| r.starts_with('/'))))
        }
        fn len(&self) -> usize {
            self.0.len()
        }
    }

    fn obj(
        data: &'static [u8],
        etag: &'static str,
        gzip: Option<&'static [u8]>,
    ) -> Object<'static> {
        Object {
            data,
            media_type: "text/plain",
            etag,
            gzip,
        }
    }

    fn site() -> StaticSite<Kv> {
        StaticSite::new(Kv(vec![
            ("index.html", obj(b"home", "\"h\"", None)),
            ("a/index.html", obj(b"a-home", "\"ah\"", None)),
            ("a/b.txt", obj(b"plain", "\"b\"", Some(b"GZ"))),
            ("bad-etag", obj(b"x", "no-quotes", None)),
        ]))
    }

    /// Runs the handler on `path` with `fields`; returns status, head fields and body.
    fn get(
        path: &str,
        query: Option<&str>,
        fields: &[(&str, &str)],
    ) -> (Status, std::string::String, Vec<u8>) {
        let site = site();
        let hdrs: Vec<httparse::Header<'_>> = fields
            .iter()
            .map(|(n, v)| httparse::Header {
                name: n,
                value: v.as_bytes(),
            })
            .collect();
        let req = Request {
            method: Method::Get,
            version: Version::Http11,
            path,
            raw_path: path,
            query,
            headers: &hdrs,
            peer: SocketAddr::from((Ipv4Addr::LOCALHOST, 1)),
        };
        let mut buf = vec![0u8; 1024];
        let mut h = Headers::new(&mut buf);
        let r = site.respond(&req, &mut h);
        assert_eq!(h.error(), None);
        let text = std::string::String::from_utf8(h.as_bytes().to_vec()).unwrap();
        (r.status, text, r.body.to_vec())
    }

    #[test]
    fn lookups_indexes_and_redirects() {
        let (s, h, b) = get("/", None, &[]);
        assert_eq!((s, b.as_slice()), (Status::Ok, &b"home"[..]));
        assert_eq!(h, "ETag: \"h\"\r\nContent-Type: text/plain\r\n");
        assert_eq!(get("/a/", None, &[]).2, b"a-home");
        assert_eq!(get("/a/index.html", None, &[]).2, b"a-home");
        let (s, h, _) = get("/a", None, &[]);
        assert_eq!(s, Status::MovedPermanently);
        assert!(h.contains("Location: /a/\r\n"));
        let (_, h, _) = get("/a", Some("x=1"), &[]);
        assert!(h.contains("Location: /a/?x=1\r\n"));
        assert_eq!(get("/nope", None, &[]).0, Status::NotFound);
        assert_eq!(get("/a/b.txt/", None, &[]).0, Status::NotFound);
        assert_eq!(get("//a", None, &[]).0, Status::NotFound);
        assert_eq!(get("/a//b.txt", None, &[]).0, Status::NotFound);
        assert_eq!(get("/broken", None, &[]).0, Status::InternalServerError);
    }

    #[test]
    fn gzip_variant_and_validators() {
        let (s, h, b) = get("/a/b.txt", None, &[]);
        assert_eq!((s, b.as_slice()), (Status::Ok, &b"plain"[..]));
        assert_eq!(
            h,
            "ETag: \"b\"\r\nVary: Accept-Encoding\r\nContent-Type: text/plain\r\n"
        );
        let (_, h, b) = get("/a/b.txt", None, &[("Accept-Encoding", "gzip")]);
        assert_eq!(b, b"GZ");
        assert_eq!(
            h,
            "ETag: \"b-gzip\"\r\nVary: Accept-Encoding\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n"
        );
        let (s, h, b) = get(
            "/a/b.txt",
            None,
            &[("Accept-Encoding", "gzip"), ("If-None-Match", "\"b-gzip\"")],
        );
        assert_eq!((s, b.len()), (Status::NotModified, 0));
        assert_eq!(h, "ETag: \"b-gzip\"\r\nVary: Accept-Encoding\r\n");
        // The identity tag does not validate the gzip variant.
        let (s, _, _) = get(
            "/a/b.txt",
            None,
            &[("Accept-Encoding", "gzip"), ("If-None-Match", "\"b\"")],
        );
        assert_eq!(s, Status::Ok);
        let (s, h, _) = get("/bad-etag", None, &[("If-None-Match", "*")]);
        assert_eq!(s, Status::Ok);
        assert!(!h.contains("ETag"));
    }

    #[test]
    fn join_concatenates_within_bounds() {
        let mut b = [0u8; 8];
        assert_eq!(join(&mut b, "ab/", "c"), Some("ab/c"));
        assert_eq!(join(&mut b, "abcde", "fghi"), None);
    }
}
