//! End to end: build `static-website` for Unix, run it, and drive it with curl and raw TCP.
//!
//! One process serves every check (it listens on the port from its appliance.ron,
//! 127.0.0.1:8080), so the checks run in sequence inside one test.

use morgana_tests::{
    Reply, Running, build_appliance, curl, files_below, raw_exchange, wait_for_port,
};
use std::net::SocketAddr;
use std::time::Duration;

const ADDR: &str = "127.0.0.1:8080";

fn url(path: &str) -> String {
    format!("http://{ADDR}{path}")
}

fn addr() -> SocketAddr {
    ADDR.parse().expect("address")
}

#[test]
fn static_website_on_unix() {
    let binary = build_appliance("static-website", &[]);
    let mut server = Running::start(&binary, &[]);
    wait_for_port(addr(), Duration::from_secs(10));

    every_file_byte_for_byte();
    index_for_root_and_directories();
    head_has_headers_and_no_body();
    etag_gives_304();
    gzip_when_accepted();
    not_found();
    redirects();
    method_not_allowed();
    bad_requests_get_400_and_server_survives();
    keep_alive_and_pipelining();
    assert!(server.is_running(), "the appliance died during the checks");
}

fn htdocs() -> std::path::PathBuf {
    morgana_tests::workspace_root().join("appliances/static-website/htdocs")
}

fn every_file_byte_for_byte() {
    let files = files_below(&htdocs());
    assert!(
        files.len() >= 8,
        "the site has several pages, CSS and images"
    );
    for (key, path) in files {
        let want = std::fs::read(&path).expect("read fixture");
        let got = curl(&url(&format!("/{key}")), &[]);
        assert_eq!(got.status, 200, "GET /{key}");
        assert_eq!(got.body, want, "GET /{key}: bytes differ");
        assert_eq!(
            got.header("content-length"),
            Some(want.len().to_string().as_str()),
            "GET /{key}: Content-Length"
        );
        let ct = got.header("content-type").unwrap_or("");
        let expected = match key.rsplit('.').next() {
            Some("html") => "text/html",
            Some("css") => "text/css",
            Some("png") => "image/png",
            Some("svg") => "image/svg+xml",
            Some("txt") => "text/plain",
            _ => "",
        };
        assert!(ct.starts_with(expected), "GET /{key}: Content-Type {ct:?}");
    }
}

fn index_for_root_and_directories() {
    let index = std::fs::read(htdocs().join("index.html")).expect("index");
    let root = curl(&url("/"), &[]);
    assert_eq!(root.status, 200);
    assert_eq!(root.body, index);

    let docs_index = std::fs::read(htdocs().join("docs/index.html")).expect("docs index");
    let docs = curl(&url("/docs/"), &[]);
    assert_eq!(docs.status, 200);
    assert_eq!(docs.body, docs_index);

    let redirect = curl(&url("/docs"), &[]);
    assert_eq!(
        redirect.status, 301,
        "a directory without its slash redirects"
    );
    assert_eq!(redirect.header("location"), Some("/docs/"));

    let query = curl(&url("/about.html?utm=x"), &[]);
    assert_eq!(query.status, 200, "the query string is not part of the key");
}

fn head_has_headers_and_no_body() {
    // Raw bytes: curl -I writes the head into its output file, which hides a stray body.
    let get = curl(&url("/css/site.css"), &[]);
    let head = raw_exchange(
        addr(),
        b"HEAD /css/site.css HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&head);
    let (head_part, rest) = text.split_once("\r\n\r\n").expect("a complete head");
    assert!(head_part.starts_with("HTTP/1.1 200"), "{head_part}");
    assert!(
        rest.is_empty(),
        "HEAD has no body, got {} bytes",
        rest.len()
    );
    let header = |name: &str| {
        head_part
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    for name in ["content-length", "etag", "content-type"] {
        assert_eq!(header(name).as_deref(), get.header(name), "{name}");
    }
}

fn etag_gives_304() {
    let first = curl(&url("/index.html"), &[]);
    let etag = first.header("etag").expect("an ETag").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag: {etag}"
    );
    let again = curl(
        &url("/index.html"),
        &["-H", &format!("If-None-Match: {etag}")],
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let list = curl(
        &url("/index.html"),
        &["-H", &format!("If-None-Match: \"nope\", {etag}")],
    );
    assert_eq!(list.status, 304, "If-None-Match with a list");
    let other = curl(&url("/index.html"), &["-H", "If-None-Match: \"other\""]);
    assert_eq!(other.status, 200);
}

fn gzip_when_accepted() {
    let path = "/docs/appliance-ron.html";
    let want = std::fs::read(htdocs().join("docs/appliance-ron.html")).expect("page");
    let raw: Reply = curl(&url(path), &["-H", "Accept-Encoding: gzip"]);
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-encoding"), Some("gzip"));
    assert!(
        raw.header("vary")
            .is_some_and(|v| v.eq_ignore_ascii_case("accept-encoding")),
        "Vary: Accept-Encoding"
    );
    assert!(raw.body.len() < want.len(), "the gzip variant is smaller");
    assert_eq!(&raw.body[..2], &[0x1f, 0x8b], "a gzip stream");
    let decoded = curl(&url(path), &["--compressed"]);
    assert_eq!(decoded.header("content-encoding"), Some("gzip"));
    assert_eq!(decoded.body, want, "gzip decodes to the original bytes");
    let refused = curl(&url(path), &["-H", "Accept-Encoding: gzip;q=0"]);
    assert_eq!(refused.header("content-encoding"), None, "q=0 refuses gzip");
    assert_eq!(refused.body, want);
}

fn not_found() {
    let r = curl(&url("/no/such/page.html"), &[]);
    assert_eq!(r.status, 404);
    let r = curl(&url("/../../etc/passwd"), &["--path-as-is"]);
    assert!(
        r.status == 400 || r.status == 404,
        "traversal: {}",
        r.status
    );
}

/// The redirects compiled in from appliances/static-website/redirects.
fn redirects() {
    let r = curl(&url("/about"), &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/about.html"));
    let r = curl(&url("/docs/ron?section=syntax"), &[]);
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some("/docs/appliance-ron.html?section=syntax"),
        "the query goes along"
    );
    let r = curl(&url("/source"), &[]);
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("https://example.org/morgana/"));
    // Followed (-L stays on this server), the redirect reaches the page.
    let want = std::fs::read(htdocs().join("about.html")).expect("about.html");
    let r = curl(&url("/about"), &["-L"]);
    assert_eq!((r.status, r.body), (200, want));
    // Only exact paths redirect.
    assert_eq!(curl(&url("/about/"), &[]).status, 404);
}

fn method_not_allowed() {
    for method in ["POST", "PUT", "DELETE"] {
        let r = curl(&url("/index.html"), &["-X", method, "--data", "x=1"]);
        assert_eq!(r.status, 405, "{method}");
        let allow = r.header("allow").unwrap_or("");
        assert!(
            allow.contains("GET") && allow.contains("HEAD"),
            "Allow: {allow}"
        );
    }
}

fn status_of(reply: &[u8]) -> &str {
    let text = std::str::from_utf8(reply).unwrap_or("");
    text.split("\r\n").next().unwrap_or("")
}

fn bad_requests_get_400_and_server_survives() {
    let limit = Duration::from_secs(5);
    let cases: &[(&[u8], &str)] = &[
        (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
        (b"GARBAGE\r\n\r\n", "HTTP/1.1 400"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "HTTP/1.1 400",
        ),
    ];
    for (request, want) in cases {
        let got = raw_exchange(addr(), request, limit);
        assert!(
            status_of(&got).starts_with(want),
            "{:?} -> {:?}",
            String::from_utf8_lossy(request),
            status_of(&got)
        );
    }
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(20_000));
    let got = raw_exchange(addr(), long_line.as_bytes(), limit);
    assert!(
        status_of(&got).starts_with("HTTP/1.1 414"),
        "{:?}",
        status_of(&got)
    );
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
        "X-Filler: 0123456789abcdef0123456789abcdef\r\n".repeat(400)
    );
    let got = raw_exchange(addr(), many_headers.as_bytes(), limit);
    assert!(
        status_of(&got).starts_with("HTTP/1.1 431"),
        "{:?}",
        status_of(&got)
    );
    // Still serving after all of that.
    assert_eq!(curl(&url("/"), &[]).status, 200);
}

fn keep_alive_and_pipelining() {
    let two = b"GET /robots.txt HTTP/1.1\r\nHost: a\r\n\r\nGET /robots.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let got = raw_exchange(addr(), two, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&got);
    assert_eq!(
        text.matches("HTTP/1.1 200").count(),
        2,
        "two pipelined responses: {text}"
    );
    assert_eq!(text.matches("Allow: /").count(), 2, "both bodies");

    let http10 = raw_exchange(
        addr(),
        b"GET /robots.txt HTTP/1.0\r\n\r\n",
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&http10);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "HTTP/1.0 request served: {text}"
    );
    assert!(
        text.ends_with("Allow: /\n"),
        "and the connection closed after it"
    );
}
