//! Behaviour of the server and of `StaticSite`, driven over the in-memory TCP stack with
//! `morgana_rt::block_on` under virtual time.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::*;
use morgana_http::{
    Config, Error, Handler, Headers, LINGER_TIMEOUT, MAX_DISCARDED_BODY, MAX_HEADERS, MAX_PATH,
    MAX_REQUEST_HEAD, MIN_SEND_RATE, Method, REJECT_SLOTS, Request, Response, Server, StaticSite,
    Status, Version,
};
use morgana_rt::block_on;
use morgana_signatures::{TcpErrorKind, Timer};

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: example.test\r\n\r\n")
}

fn get_with(path: &str, fields: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: example.test\r\n{fields}\r\n")
}

const HTML: &str = "text/html; charset=utf-8";

#[test]
fn get_serves_the_index_with_exact_head_and_keeps_the_connection() {
    run(config(8), |env| async move {
        let (c, r) = exchange(&env, &get("/")).await;
        assert_eq!(
            r.raw_head,
            format!(
                "HTTP/1.1 200 OK\r\nETag: \"home-1\"\r\nContent-Type: {HTML}\r\n\
                 Accept-Ranges: bytes\r\nServer: morgana\r\nContent-Length: {}\r\n\r\n",
                HOME.len()
            )
        );
        assert_eq!(r.body_str(), HOME);
        assert_eq!(r.header("Date"), None);
        assert_eq!(r.header("Vary"), None);

        c.send(get("/docs/guide.txt"));
        let r = c.response().await;
        assert_eq!(r.status_line, "HTTP/1.1 200 OK");
        assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.header("Content-Length"), Some("16"));
        assert_eq!(r.body_str(), GUIDE);
        assert!(!c.server_closed());
        // Each response went out as one gather write, never as separate writes.
        assert_eq!(c.write_calls(), (0, 2));
        assert_eq!(env.net.live_streams(), 1);
    });
}

#[test]
fn empty_object_has_content_length_zero() {
    run(config(8), |env| async move {
        let (c, r) = exchange(&env, &get("/empty.txt")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.header("Content-Length"), Some("0"));
        assert!(r.body.is_empty());
        c.send(get("/"));
        assert_eq!(c.response().await.body_str(), HOME);
    });
}

#[test]
fn head_gets_the_get_headers_and_no_body() {
    run(config(8), |env| async move {
        let c = env.connect();
        c.send(format!(
            "HEAD /style.css HTTP/1.1\r\nHost: x\r\n\r\n{}",
            get("/style.css")
        ));
        let head = c.head_response().await;
        let full = c.response().await;
        assert_eq!(head.status_line, "HTTP/1.1 200 OK");
        assert_eq!(head.headers, full.headers);
        assert_eq!(
            head.header("Content-Length"),
            Some(CSS.len().to_string().as_str())
        );
        assert!(head.body.is_empty());
        assert_eq!(full.body_str(), CSS);
        assert_eq!(c.available(), 0);

        // HEAD of a missing resource: the 404 head with the page's length, no page.
        c.send("HEAD /missing HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.head_response().await;
        assert_eq!(r.status_line, "HTTP/1.1 404 Not Found");
        let len: usize = r.header("Content-Length").unwrap().parse().unwrap();
        assert_eq!(len, Status::NotFound.page().len());
        c.send(get("/"));
        assert_eq!(c.response().await.body_str(), HOME);
    });
}

#[test]
fn pipelined_requests_in_one_write_are_answered_in_order() {
    run(config(8), |env| async move {
        let c = env.connect();
        c.send(get("/") + &get("/docs/guide.txt") + &get("/missing") + &get("/style.css"));
        let a = c.response().await;
        let b = c.response().await;
        let m = c.response().await;
        let s = c.response().await;
        assert_eq!((a.status(), a.body_str()), (200, HOME));
        assert_eq!((b.status(), b.body_str()), (200, GUIDE));
        assert_eq!(m.status_line, "HTTP/1.1 404 Not Found");
        assert_eq!((s.status(), s.body_str()), (200, CSS));
        assert_eq!(c.available(), 0);
        assert!(!c.server_closed());
    });
}

#[test]
fn leftover_bytes_of_a_partial_next_request_are_kept() {
    run(config(8), |env| async move {
        let c = env.connect();
        let second = get("/docs/guide.txt");
        let (first_half, second_half) = second.split_at(10);
        c.send(get("/") + first_half);
        assert_eq!(c.response().await.body_str(), HOME);
        yield_now().await;
        assert_eq!(c.available(), 0);
        c.send(second_half);
        assert_eq!(c.response().await.body_str(), GUIDE);
    });
}

#[test]
fn requests_arriving_one_byte_per_read_are_served() {
    run(config(8), |env| async move {
        let c = env.connect();
        c.set_read_chunk(1);
        c.send(get_with("/style.css", "Accept-Encoding: gzip\r\n") + &get("/"));
        let r = c.response().await;
        assert_eq!(r.body, CSS_GZ);
        assert_eq!(c.response().await.body_str(), HOME);

        // And byte by byte from the client side, with the server running in between.
        let c = env.connect();
        for b in get("/docs/").bytes() {
            c.send([b]);
            yield_now().await;
            yield_now().await;
        }
        assert_eq!(c.response().await.body_str(), DOCS);
    });
}

#[test]
fn empty_lines_before_a_request_line_are_ignored() {
    run(config(8), |env| async move {
        let (_, r) = exchange(&env, &format!("\r\n\r\n{}", get("/"))).await;
        assert_eq!(r.body_str(), HOME);
    });
}

#[test]
fn http10_closes_unless_keep_alive_is_asked_for() {
    run(config(8), |env| async move {
        let (c, r) = exchange(&env, "GET / HTTP/1.0\r\n\r\n").await;
        assert_eq!(r.status_line, "HTTP/1.1 200 OK");
        assert_eq!(r.header("Connection"), Some("close"));
        assert_eq!(r.body_str(), HOME);
        c.closed().await;
        c.dropped().await;
        assert_eq!(c.available(), 0);

        let c = env.connect();
        c.send("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        let r = c.response().await;
        assert_eq!(r.header("Connection"), Some("keep-alive"));
        c.send("GET /docs/ HTTP/1.0\r\nconnection: keep-alive\r\n\r\n");
        let r = c.response().await;
        assert_eq!(r.header("Connection"), Some("keep-alive"));
        assert_eq!(r.body_str(), DOCS);
        assert!(!c.server_closed());
        c.send("GET / HTTP/1.0\r\n\r\n");
        let r = c.response().await;
        assert_eq!(r.header("Connection"), Some("close"));
        c.dropped().await;
    });
}

#[test]
fn connection_close_is_honoured_and_later_pipelined_requests_are_not_answered() {
    run(config(8), |env| async move {
        let c = env.connect();
        c.send(get("/") + &get_with("/docs/", "Connection: close\r\n") + &get("/style.css"));
        assert_eq!(c.response().await.header("Connection"), None);
        let r = c.response().await;
        assert_eq!(r.header("Connection"), Some("close"));
        assert_eq!(r.body_str(), DOCS);
        let rest = c.read_to_end().await;
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
        assert_eq!(c.shutdowns(), 1);
    });
}

#[test]
fn directories_redirect_to_the_slash_form_and_serve_their_index() {
    run(config(8), |env| async move {
        let c = env.connect();
        c.send(get("/docs"));
        let r = c.response().await;
        assert_eq!(r.status_line, "HTTP/1.1 301 Moved Permanently");
        assert_eq!(r.header("Location"), Some("/docs/"));
        assert_eq!(r.header("Content-Type"), Some(HTML));
        assert_eq!(r.body_str(), Status::MovedPermanently.page());
        // The connection stays usable.
        c.send(get("/docs?lang=en&x"));
        let r = c.response().await;
        assert_eq!(r.header("Location"), Some("/docs/?lang=en&x"));
        c.send(get("/docs/"));
        assert_eq!(c.response().await.body_str(), DOCS);
        c.send(get("/docs/index.html"));
        assert_eq!(c.response().await.body_str(), DOCS);
        c.send(get("/docs/guide.txt/"));
        assert_eq!(c.response().await.status(), 404);
        c.send(get("/nodir/"));
        assert_eq!(c.response().await.status(), 404);
        // Never a redirect to another host.
        c.send(get("//docs"));
        assert_eq!(c.response().await.status(), 404);
        c.send(get("/%2Fdocs"));
        assert_eq!(c.response().await.status(), 404);
    });
}

#[test]
fn not_found_and_store_errors_keep_the_connection() {
    run(config(8), |env| async move {
        let (c, r) = exchange(&env, &get("/missing.html")).await;
        assert_eq!(r.status_line, "HTTP/1.1 404 Not Found");
        assert_eq!(r.header("Content-Type"), Some(HTML));
        assert_eq!(r.header("Connection"), None);
        assert!(r.body_str().contains("<h1>404 Not Found</h1>"));
        c.send(get("/broken/thing"));
        let r = c.response().await;
        assert_eq!(r.status_line, "HTTP/1.1 500 Internal Server Error");
        assert!(r.body_str().contains("500"));
        c.send(get("/"));
        assert_eq!(c.response().await.status(), 200);
    });
}

#[test]
fn query_strings_are_ignored_for_lookup() {
    run(config(8), |env| async move {
        let (_, r) = exchange(&env, &get("/style.css?v=3&x=%zz")).await;
        assert_eq!(r.body_str(), CSS);
        let (_, r) = exchange(&env, &get("/?")).await;
        assert_eq!(r.body_str(), HOME);
    });
}

#[test]
fn absolute_form_targets_are_accepted() {
    run(config(8), |env| async move {
        let (_, r) = exchange(
            &env,
            "GET http://example.test/docs/guide.txt HTTP/1.1\r\nHost: example.test\r\n\r\n",
        )
        .await;
        assert_eq!(r.body_str(), GUIDE);
        let (_, r) = exchange(&env, "GET HTTP://example.test HTTP/1.1\r\nHost: e\r\n\r\n").await;
        assert_eq!(r.body_str(), HOME);
    });
}

#[test]
fn paths_are_percent_decoded() {
    run(config(8), |env| async move {
        let (_, r) = exchange(&env, &get("/a%20b/%C3%BC.txt")).await;
        assert_eq!(r.body_str(), UMLAUT);
        let (_, r) = exchange(&env, &get("/docs/guide%2etxt")).await;
        assert_eq!(r.body_str(), GUIDE);
        let (_, r) = exchange(&env, &get("/a%20b/ü.txt")).await;
        assert_eq!(r.body_str(), UMLAUT);
    });
}

#[test]
fn if_none_match_gives_304_for_lists_star_and_weak_tags() {
    run(config(8), |env| async move {
        let c = env.connect();
        for inm in [
            "\"home-1\"",
            "W/\"home-1\"",
            "\"other\", \"home-1\"",
            "\"a\",W/\"b\" , W/\"home-1\"",
            "*",
        ] {
            c.send(get_with("/", &format!("If-None-Match: {inm}\r\n")));
            let r = c.head_response().await;
            assert_eq!(
                r.raw_head,
                "HTTP/1.1 304 Not Modified\r\nETag: \"home-1\"\r\nServer: morgana\r\n\r\n",
                "If-None-Match: {inm}"
            );
        }
        // Two fields are one list.
        c.send(get_with(
            "/",
            "If-None-Match: \"x\"\r\nIf-None-Match: \"home-1\"\r\n",
        ));
        assert_eq!(c.head_response().await.status(), 304);
        // No body was sent with any 304: the next response parses cleanly.
        for inm in ["\"home-2\"", "\"home-1", "home-1", "\"home\""] {
            c.send(get_with("/", &format!("If-None-Match: {inm}\r\n")));
            let r = c.response().await;
            assert_eq!(
                (r.status(), r.body_str()),
                (200, HOME),
                "If-None-Match: {inm}"
            );
        }
        // HEAD too.
        c.send("HEAD / HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"home-1\"\r\n\r\n");
        assert_eq!(c.head_response().await.status(), 304);
        c.send(get("/"));
        assert_eq!(c.response().await.body_str(), HOME);
    });
}

#[test]
fn gzip_is_negotiated_with_q_values() {
    run(config(8), |env| async move {
        let c = env.connect();
        let gz_len = CSS_GZ.len().to_string();
        let css_len = CSS.len().to_string();
        for (accept, gzip) in [
            ("gzip", true),
            ("gzip, deflate, br", true),
            ("br;q=1.0, GZIP;q=0.9", true),
            ("*", true),
            ("x-gzip", true),
            ("gzip;q=0", false),
            ("gzip;q=0.0, *", false),
            ("identity, gzip;q=0.5", false),
            ("*;q=0.5, identity", false),
            ("deflate, br", false),
            ("", false),
        ] {
            c.send(get_with(
                "/style.css",
                &format!("Accept-Encoding: {accept}\r\n"),
            ));
            let r = c.response().await;
            assert_eq!(r.status(), 200, "{accept}");
            assert_eq!(r.header("Vary"), Some("Accept-Encoding"), "{accept}");
            assert_eq!(r.header("Content-Type"), Some("text/css; charset=utf-8"));
            if gzip {
                assert_eq!(r.header("Content-Encoding"), Some("gzip"), "{accept}");
                assert_eq!(r.header("Content-Length"), Some(gz_len.as_str()));
                assert_eq!(r.header("ETag"), Some("\"css-7-gzip\""));
                assert_eq!(r.body, CSS_GZ);
            } else {
                assert_eq!(r.header("Content-Encoding"), None, "{accept}");
                assert_eq!(r.header("Content-Length"), Some(css_len.as_str()));
                assert_eq!(r.header("ETag"), Some("\"css-7\""));
                assert_eq!(r.body_str(), CSS);
            }
        }
        // Without Accept-Encoding: identity, still with Vary.
        c.send(get("/style.css"));
        let r = c.response().await;
        assert_eq!(
            (r.header("Vary"), r.body_str()),
            (Some("Accept-Encoding"), CSS)
        );
        // HEAD: the gzip variant's length, no body.
        c.send("HEAD /style.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n");
        let r = c.head_response().await;
        assert_eq!(r.header("Content-Encoding"), Some("gzip"));
        assert_eq!(r.header("Content-Length"), Some(gz_len.as_str()));
        // A resource without a gzip variant: no Vary, no coding.
        c.send(get_with("/", "Accept-Encoding: gzip\r\n"));
        let r = c.response().await;
        assert_eq!(
            (r.header("Vary"), r.header("Content-Encoding")),
            (None, None)
        );
        assert_eq!(r.body_str(), HOME);
    });
}

#[test]
fn conditional_requests_compare_against_the_selected_variant() {
    run(config(8), |env| async move {
        let c = env.connect();
        c.send(get_with(
            "/style.css",
            "Accept-Encoding: gzip\r\nIf-None-Match: \"css-7-gzip\"\r\n",
        ));
        let r = c.head_response().await;
        assert_eq!(
            r.raw_head,
            "HTTP/1.1 304 Not Modified\r\nETag: \"css-7-gzip\"\r\nVary: Accept-Encoding\r\n\
             Server: morgana\r\n\r\n"
        );
        // The identity tag does not validate the gzip variant, nor the reverse.
        c.send(get_with(
            "/style.css",
            "Accept-Encoding: gzip\r\nIf-None-Match: \"css-7\"\r\n",
        ));
        let r = c.response().await;
        assert_eq!((r.status(), r.body.as_slice()), (200, CSS_GZ));
        c.send(get_with("/style.css", "If-None-Match: \"css-7-gzip\"\r\n"));
        let r = c.response().await;
        assert_eq!((r.status(), r.body_str()), (200, CSS));
        c.send(get_with("/style.css", "If-None-Match: \"css-7\"\r\n"));
        let r = c.head_response().await;
        assert_eq!(r.status(), 304);
        assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    });
}

/// Sends `request` on a new connection and checks the server's own error response:
/// exact status line, HTML page, `Connection: close`, and the connection closed.
async fn refused(env: &Env, request: impl AsRef<[u8]>, status_line: &str) -> Resp {
    let c = env.connect();
    c.send(request);
    let r = c.response().await;
    assert_eq!(r.status_line, status_line);
    assert_eq!(r.header("Connection"), Some("close"), "{status_line}");
    assert_eq!(r.header("Server"), Some("morgana"));
    assert_eq!(r.header("Content-Type"), Some(HTML));
    let code = &status_line["HTTP/1.1 ".len()..];
    assert!(r.body_str().contains(code), "{code}: {}", r.body_str());
    c.closed().await;
    c.dropped().await;
    let rest = c.take_all();
    assert!(
        rest.is_empty(),
        "{status_line}: more after the error response"
    );
    r
}

const BAD: &str = "HTTP/1.1 400 Bad Request";

#[test]
fn malformed_heads_get_400_and_close() {
    run(config(8), |env| async move {
        for req in [
            // HTTP/1.1 without Host, with two, with a bad one.
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            // Framing.
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            // Syntax.
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
            "GET / FOO/1.1\r\nHost: a\r\n\r\n",
            "GET /\r\n\r\n",
            "G\x01T / HTTP/1.1\r\nHost: a\r\n\r\n",
            "\x00\x01\x02\x03\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nNo-Colon\r\n\r\n",
            // Targets.
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET index.html HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            refused(&env, req, BAD).await;
        }
        // A HEAD request refused: the head only.
        let c = env.connect();
        c.send("HEAD / HTTP/1.1\r\n\r\n");
        let r = c.head_response().await;
        assert_eq!(r.status_line, BAD);
        c.dropped().await;
        assert_eq!(c.take_all(), b"");
    });
}

#[test]
fn traversal_nul_and_invalid_utf8_in_paths_get_400() {
    run(config(8), |env| async move {
        for path in [
            "/..",
            "/../etc/passwd",
            "/docs/../index.html",
            "/docs/./guide.txt",
            "/%2e%2e/secret",
            "/docs/%2E%2E/%2e%2e/etc/passwd",
            "/docs/..%2f..%2fetc",
            "/docs%2f..%2f..",
            "/%00",
            "/index.html%00.txt",
            "/%0d%0aSet-Cookie:%20x",
            "/%ff",
            "/%C3",
            "/%zz",
            "/%",
            "/%2",
        ] {
            refused(&env, get(path), BAD).await;
        }
    });
}

#[test]
fn other_methods_get_405_with_allow() {
    run(config(8), |env| async move {
        for method in [
            "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "get",
        ] {
            let r = refused(
                &env,
                format!("{method} / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"),
                "HTTP/1.1 405 Method Not Allowed",
            )
            .await;
            assert_eq!(r.header("Allow"), Some("GET, HEAD"), "{method}");
        }
    });
}

#[test]
fn unsupported_versions_get_505() {
    run(config(8), |env| async move {
        for v in ["HTTP/2.0", "HTTP/1.2", "HTTP/3.0", "HTTP/0.9"] {
            refused(
                &env,
                format!("GET / {v}\r\nHost: a\r\n\r\n"),
                "HTTP/1.1 505 HTTP Version Not Supported",
            )
            .await;
        }
    });
}

#[test]
fn oversize_request_lines_get_414() {
    run(config(8), |env| async move {
        // A request line that does not fit in the head buffer.
        let long = format!("GET /{}", "a".repeat(MAX_REQUEST_HEAD));
        refused(&env, long, "HTTP/1.1 414 URI Too Long").await;
        // A path longer than MAX_PATH in a head that fits.
        let long_path = format!("/{}", "b".repeat(MAX_PATH));
        refused(&env, get(&long_path), "HTTP/1.1 414 URI Too Long").await;
        // The longest path that is accepted.
        let ok_path = format!("/{}", "b".repeat(MAX_PATH - 1));
        let (_, r) = exchange(&env, &get(&ok_path)).await;
        assert_eq!(r.status(), 404);
        // A long query is fine: it is not decoded.
        let long_query = format!("/style.css?{}", "q".repeat(MAX_REQUEST_HEAD / 2));
        let (_, r) = exchange(&env, &get(&long_query)).await;
        assert_eq!(r.body_str(), CSS);
    });
}

#[test]
fn oversize_heads_get_431() {
    run(config(8), |env| async move {
        let mut big = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        while big.len() <= MAX_REQUEST_HEAD {
            big.push_str("X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        big.push_str("\r\n");
        refused(&env, &big, "HTTP/1.1 431 Request Header Fields Too Large").await;

        let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..MAX_HEADERS {
            many.push_str(&format!("X-{i}: y\r\n"));
        }
        many.push_str("\r\n");
        assert!(many.len() < MAX_REQUEST_HEAD);
        refused(&env, &many, "HTTP/1.1 431 Request Header Fields Too Large").await;

        // Exactly MAX_HEADERS fields are fine.
        let mut most = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 1..MAX_HEADERS {
            most.push_str(&format!("X-{i}: y\r\n"));
        }
        most.push_str("\r\n");
        let (_, r) = exchange(&env, &most).await;
        assert_eq!(r.body_str(), HOME);
    });
}

#[test]
fn request_bodies_are_discarded_or_refused() {
    run(config(8), |env| async move {
        // A small body on GET, in the same write as the next request.
        let c = env.connect();
        c.send(get_with("/", "Content-Length: 5\r\n") + "hello" + &get("/docs/guide.txt"));
        assert_eq!(c.response().await.body_str(), HOME);
        assert_eq!(c.response().await.body_str(), GUIDE);

        // A body arriving in pieces, the next request right behind its last piece.
        c.send(get_with("/docs/", "Content-Length: 10\r\n") + "123");
        yield_now().await;
        c.send("4567");
        yield_now().await;
        c.send("890".to_string() + &get("/style.css"));
        assert_eq!(c.response().await.body_str(), DOCS);
        assert_eq!(c.response().await.body_str(), CSS);

        // The largest body that is discarded, read a few bytes at a time.
        let body = "z".repeat(MAX_DISCARDED_BODY as usize);
        c.set_read_chunk(7);
        c.send(get_with("/", &format!("Content-Length: {}\r\n", body.len())) + &body + &get("/"));
        assert_eq!(c.response().await.body_str(), HOME);
        assert_eq!(c.response().await.body_str(), HOME);
        assert!(!c.server_closed());

        // Too large.
        refused(
            &env,
            get_with(
                "/",
                &format!("Content-Length: {}\r\n", MAX_DISCARDED_BODY + 1),
            ),
            "HTTP/1.1 413 Content Too Large",
        )
        .await;
        // Chunked: not decoded, a length is required.
        refused(
            &env,
            get_with("/", "Transfer-Encoding: chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n",
            "HTTP/1.1 411 Length Required",
        )
        .await;
        refused(
            &env,
            get_with("/", "Transfer-Encoding: gzip, chunked\r\n"),
            "HTTP/1.1 411 Length Required",
        )
        .await;
    });
}

#[test]
fn expect_100_continue_gets_an_interim_response() {
    run(config(8), |env| async move {
        let c = env.connect();
        c.send(get_with(
            "/",
            "Content-Length: 4\r\nExpect: 100-continue\r\n",
        ));
        let interim = c.head_response().await;
        assert_eq!(interim.raw_head, "HTTP/1.1 100 Continue\r\n\r\n");
        c.send("body");
        assert_eq!(c.response().await.body_str(), HOME);

        // The body already sent: no interim response.
        c.send(get_with("/", "Content-Length: 2\r\nExpect: 100-continue\r\n") + "ok");
        let r = c.response().await;
        assert_eq!((r.status(), r.body_str()), (200, HOME));

        refused(
            &env,
            get_with("/", "Expect: the-unexpected\r\n"),
            "HTTP/1.1 417 Expectation Failed",
        )
        .await;
        // HTTP/1.0 ignores Expect.
        let (_, r) = exchange(&env, "GET / HTTP/1.0\r\nExpect: whatever\r\n\r\n").await;
        assert_eq!(r.status(), 200);
    });
}

#[test]
fn idle_connections_close_after_the_idle_timeout() {
    run(config(8), |env| async move {
        // Nothing ever sent: closed silently, exactly at the timeout.
        let t0 = env.clock.elapsed();
        let c = env.connect();
        c.closed().await;
        assert_eq!(env.clock.elapsed() - t0, IDLE);
        assert_eq!(c.take_all(), b"");
        c.dropped().await;
        assert!(env.clock.elapsed() - t0 <= IDLE + LINGER_TIMEOUT);

        // Between keep-alive requests: counted from the end of the last response.
        let c = env.connect();
        env.clock.sleep(Duration::from_secs(20)).await;
        c.send(get("/"));
        assert_eq!(c.response().await.status(), 200);
        let t1 = env.clock.elapsed();
        c.closed().await;
        assert_eq!(env.clock.elapsed() - t1, IDLE);
        assert_eq!(c.take_all(), b"");
    });
}

#[test]
fn an_incomplete_head_times_out_with_408_even_when_it_trickles() {
    run(config(8), |env| async move {
        let t0 = env.clock.elapsed();
        let c = env.connect();
        c.send("GET / HTTP/1.1\r\nHost: a\r\n");
        // A byte every 10 s does not extend the deadline.
        for _ in 0..5 {
            env.clock.sleep(Duration::from_secs(10)).await;
            if c.server_closed() {
                break;
            }
            c.send("X");
        }
        let r = c.response().await;
        assert_eq!(r.status_line, "HTTP/1.1 408 Request Timeout");
        assert_eq!(r.header("Connection"), Some("close"));
        assert!(env.clock.elapsed() - t0 <= IDLE + Duration::from_secs(10));
        c.dropped().await;
    });
}

#[test]
fn a_client_that_does_not_read_is_dropped() {
    run(config(8), |env| async move {
        let t0 = env.clock.elapsed();
        let c = env.connect();
        c.set_receive_window(1024);
        c.send(get("/big.bin"));
        c.dropped().await;
        let budget = IDLE + Duration::from_secs(BIG_LEN as u64 / MIN_SEND_RATE);
        assert_eq!(env.clock.elapsed() - t0, budget);
        assert!(c.take_all().len() <= 1024);
        // A reader that keeps up gets all of it.
        let (_, r) = exchange(&env, &get("/big.bin")).await;
        assert_eq!(r.body.len(), BIG_LEN);
    });
}

#[test]
fn broken_connections_are_dropped_without_harm() {
    run(config(8), |env| async move {
        // Reset while idle.
        let c = env.connect();
        yield_now().await;
        c.fail(TcpErrorKind::Reset);
        c.dropped().await;
        // Closed in the middle of a head: no response.
        let c = env.connect();
        c.send("GET / HTT");
        c.shutdown();
        assert_eq!(c.read_to_end().await, b"");
        // Closed in the middle of a body.
        let c = env.connect();
        c.send(get_with("/", "Content-Length: 100\r\n") + "abc");
        c.shutdown();
        assert_eq!(c.read_to_end().await, b"");
        // Closed after a complete request: it is still answered.
        let c = env.connect();
        c.send(get("/"));
        c.shutdown();
        let out = c.read_to_end().await;
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(out.ends_with(HOME.as_bytes()));
        // The server is fine.
        let (_, r) = exchange(&env, &get("/")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(env.net.live_streams(), 1);
    });
}

#[test]
fn the_connection_cap_answers_503_and_frees_slots() {
    run(config(2), |env| async move {
        let a = env.connect();
        let b = env.connect();
        a.send(get("/"));
        b.send(get("/"));
        assert_eq!(a.response().await.status(), 200);
        assert_eq!(b.response().await.status(), 200);

        // Both slots taken by idle keep-alive connections.
        let c = env.connect();
        let r = c.response().await;
        assert_eq!(r.status_line, "HTTP/1.1 503 Service Unavailable");
        assert_eq!(r.header("Retry-After"), Some("1"));
        assert_eq!(r.header("Connection"), Some("close"));
        assert_eq!(r.body_str(), Status::ServiceUnavailable.page());
        c.dropped().await;

        // Closing one frees its slot.
        a.shutdown();
        a.dropped().await;
        let (d, r) = exchange(&env, &get("/docs/")).await;
        assert_eq!(r.body_str(), DOCS);
        assert!(!d.server_closed());
        assert_eq!(env.net.live_streams(), 2);
        assert_eq!(env.net.accepted(), 4);
    });
}

#[test]
fn refusals_beyond_the_cap_are_bounded_too() {
    run(config(1), |env| async move {
        let a = env.connect();
        a.send(get("/"));
        assert_eq!(a.response().await.status(), 200);
        let extra: Vec<Client> = (0..REJECT_SLOTS + 3).map(|_| env.connect()).collect();
        for c in &extra {
            c.closed().await;
        }
        let mut answered = 0;
        for c in &extra {
            let out = c.take_all();
            if out.is_empty() {
                assert!(c.server_dropped());
            } else {
                assert!(out.starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
                answered += 1;
            }
        }
        assert_eq!(answered, REJECT_SLOTS);
        for c in &extra {
            c.dropped().await;
        }
        assert_eq!(env.net.live_streams(), 1);
        a.send(get("/"));
        assert_eq!(a.response().await.status(), 200);
    });
}

#[test]
fn many_concurrent_connections_interleave() {
    run(config(64), |env| async move {
        let clients: Vec<Client> = (0..50).map(|_| env.connect()).collect();
        for (i, c) in clients.iter().enumerate() {
            c.set_read_chunk(1 + i % 5);
            c.send(get(if i % 2 == 0 { "/" } else { "/style.css" }));
        }
        for (i, c) in clients.iter().enumerate() {
            let r = c.response().await;
            assert_eq!(r.body_str(), if i % 2 == 0 { HOME } else { CSS });
        }
        assert_eq!(env.net.live_streams(), 50);
    });
}

#[test]
fn transient_accept_errors_are_survived() {
    run(config(8), |env| async move {
        env.net.fail_next_accept(TcpErrorKind::Reset);
        let (_, r) = exchange(&env, &get("/")).await;
        assert_eq!(r.status(), 200);
        let t0 = env.clock.elapsed();
        env.net.fail_next_accept(TcpErrorKind::Exhausted);
        let (_, r) = exchange(&env, &get("/")).await;
        assert_eq!(r.status(), 200);
        assert!(env.clock.elapsed() - t0 >= morgana_http::ACCEPT_BACKOFF);
    });
}

fn start_error(net: FakeNet, config: Config) -> Error<FakeError> {
    let clock = FakeClock::default();
    let mut idle = TestIdle {
        clock: clock.clone(),
    };
    block_on(Server::connect(net, clock, config), &mut idle).unwrap_err()
}

#[test]
fn fatal_accept_errors_end_serve() {
    let net = FakeNet::default();
    let clock = FakeClock::default();
    let mut idle = TestIdle {
        clock: clock.clone(),
    };
    let client = net.connect();
    client.send(get("/"));
    net.fail_next_accept(TcpErrorKind::Other);
    let err = block_on(
        async {
            let server = Server::connect(net.clone(), clock.clone(), config(4))
                .await
                .unwrap();
            server.serve(StaticSite::new(FakeKv::new())).await
        },
        &mut idle,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Accept(FakeError(TcpErrorKind::Other))));
    assert_eq!(err.to_string(), "cannot accept connections: fake Other");
    assert_eq!(net.live_streams(), 0);
}

#[test]
fn start_errors_are_typed_and_displayed() {
    let net = FakeNet::default();
    net.fail_listen(TcpErrorKind::AddrInUse);
    let e = start_error(net, config(4));
    assert!(matches!(
        e,
        Error::Listen {
            error: FakeError(TcpErrorKind::AddrInUse),
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "cannot listen on 127.0.0.1:0: fake AddrInUse"
    );

    let e = start_error(FakeNet::default(), config(0));
    assert_eq!(
        e.to_string(),
        "invalid configuration: max_connections must be at least 1"
    );
    let mut c = config(4);
    c.idle_timeout = Duration::ZERO;
    assert!(matches!(
        start_error(FakeNet::default(), c),
        Error::InvalidConfig(_)
    ));

    let c = Config::new(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 80)));
    assert_eq!(c.max_connections, morgana_http::DEFAULT_MAX_CONNECTIONS);
    assert_eq!(c.idle_timeout, morgana_http::DEFAULT_IDLE_TIMEOUT);
}

/// A handler that shows what it was given and tries the header rules.
struct Probe;

static PROBE_OK: &[u8] = b"probe";

impl Handler for Probe {
    async fn handle<'a>(&'a self, req: &Request<'_>, headers: &mut Headers<'_>) -> Response<'a> {
        match req.path() {
            "/inject" => {
                headers.insert("X-Bad", "a\r\nSet-Cookie: evil=1");
                Response::new(Status::Ok, PROBE_OK)
            }
            "/reserved" => {
                headers.insert("Content-Length", "1");
                Response::new(Status::Ok, PROBE_OK)
            }
            "/overflow" => {
                let big = "v".repeat(900);
                for _ in 0..8 {
                    headers.insert("X-Big", &big);
                }
                Response::new(Status::Ok, PROBE_OK)
            }
            "/no-content" => Response::new(Status::NoContent, PROBE_OK),
            "/not-allowed" => Response::empty(Status::MethodNotAllowed),
            "/echo ü" => {
                // Everything the handler can see, as headers.
                headers
                    .insert_fmt("X-Method", format_args!("{:?}", req.method()))
                    .insert_fmt("X-Version", format_args!("{:?}", req.version()))
                    .insert("X-Raw-Path", req.raw_path())
                    .insert("X-Query", req.query().unwrap_or("-"))
                    .insert_fmt("X-Peer-Ip", format_args!("{}", req.peer().ip()))
                    .insert_fmt("X-Fields", format_args!("{}", req.headers().count()))
                    .insert(
                        "X-Tokens",
                        std::str::from_utf8(req.header("x-token").unwrap_or(b"-")).unwrap(),
                    )
                    .insert_fmt("X-Gzip", format_args!("{}", req.accepts_gzip()))
                    .insert_fmt("X-Inm", format_args!("{}", req.if_none_match("\"t\"")));
                assert_eq!(req.header_values("X-TOKEN").count(), 2);
                assert!(matches!(req.method(), Method::Get | Method::Head));
                assert!(req.version() >= Version::Http10);
                Response::new(Status::Ok, PROBE_OK)
            }
            _ => Response::empty(Status::NotFound),
        }
    }
}

#[test]
fn handlers_see_the_request_and_cannot_break_the_head() {
    run_with(config(8), Probe, |env| async move {
        let c = env.connect();
        c.send(
            "GET /echo%20%C3%BC?a=1 HTTP/1.1\r\nHost: x\r\nX-Token: one\r\n\
             x-token: two\r\nAccept-Encoding: gzip;q=1\r\nIf-None-Match: W/\"t\"\r\n\r\n",
        );
        let r = c.response().await;
        assert_eq!(r.header("X-Method"), Some("Get"));
        assert_eq!(r.header("X-Version"), Some("Http11"));
        assert_eq!(r.header("X-Raw-Path"), Some("/echo%20%C3%BC"));
        assert_eq!(r.header("X-Query"), Some("a=1"));
        assert_eq!(r.header("X-Peer-Ip"), Some("127.0.0.1"));
        assert_eq!(r.header("X-Fields"), Some("5"));
        assert_eq!(r.header("X-Tokens"), Some("one"));
        assert_eq!(r.header("X-Gzip"), Some("true"));
        assert_eq!(r.header("X-Inm"), Some("true"));
        assert_eq!(r.body, PROBE_OK);

        for path in ["/inject", "/reserved", "/overflow"] {
            c.send(get(path));
            let r = c.response().await;
            assert_eq!(
                r.status_line, "HTTP/1.1 500 Internal Server Error",
                "{path}"
            );
            assert_eq!(r.header("Set-Cookie"), None);
            assert_eq!(r.header("X-Bad"), None);
            assert_eq!(r.header("X-Big"), None);
            assert_eq!(r.header("Content-Type"), Some(HTML));
            let len: usize = r.header("Content-Length").unwrap().parse().unwrap();
            assert_eq!(len, r.body.len());
        }

        c.send(get("/no-content"));
        let r = c.head_response().await;
        assert_eq!(
            r.raw_head,
            "HTTP/1.1 204 No Content\r\nServer: morgana\r\n\r\n"
        );
        c.send(get("/not-allowed"));
        let r = c.response().await;
        assert_eq!(r.status(), 405);
        assert_eq!(r.header("Allow"), Some("GET, HEAD"));
        assert_eq!(r.header("Content-Length"), Some("0"));
        // Still the same connection, still in sync.
        c.send(get("/other"));
        assert_eq!(c.response().await.status(), 404);
        assert_eq!(c.available(), 0);
    });
}

#[test]
fn static_site_can_be_shared_by_reference() {
    let site = StaticSite::new(FakeKv::new());
    assert_eq!(morgana_signatures::KvRo::len(site.kv()), 7);
    run_with(config(4), &site, |env| async move {
        let (_, r) = exchange(&env, &get("/")).await;
        assert_eq!(r.body_str(), HOME);
    });
}
