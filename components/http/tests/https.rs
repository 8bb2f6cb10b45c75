//! The HTTPS companions through the whole server, over the in-memory TCP stack: the
//! plain-HTTP redirect to HTTPS (host, port, path and query kept; a missing or hostile
//! Host refused with 400) and HSTS on every response of the HTTPS side.

mod common;

use common::*;
use morgana_http::{Hsts, RedirectToHttps, StaticSite};

#[test]
fn plain_http_is_sent_to_https_with_path_and_query() {
    run_with(config(8), RedirectToHttps::new(443), |env| async move {
        let (_, r) = exchange(
            &env,
            "GET /docs/a%20b.html?x=1 HTTP/1.1\r\nHost: example.test:8080\r\n\r\n",
        )
        .await;
        assert_eq!(r.status_line, "HTTP/1.1 301 Moved Permanently");
        assert_eq!(
            r.header("Location"),
            Some("https://example.test/docs/a%20b.html?x=1")
        );
        assert_eq!(r.header("Strict-Transport-Security"), None);
        let (_, r) = exchange(&env, "HEAD / HTTP/1.1\r\nHost: [::1]\r\n\r\n").await;
        assert_eq!(r.status(), 301);
        assert_eq!(r.header("Location"), Some("https://[::1]/"));
    });
    run_with(config(8), RedirectToHttps::new(8443), |env| async move {
        let (_, r) = exchange(&env, "GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n").await;
        assert_eq!(r.header("Location"), Some("https://127.0.0.1:8443/x"));
    });
}

#[test]
fn a_redirect_without_a_usable_host_is_a_400() {
    run_with(config(8), RedirectToHttps::new(443), |env| async move {
        let (_, r) = exchange(&env, "GET / HTTP/1.0\r\n\r\n").await;
        assert_eq!(r.status(), 400);
        assert_eq!(r.header("Location"), None);
        let (_, r) = exchange(&env, "GET / HTTP/1.1\r\nHost: evil.org/phish\r\n\r\n").await;
        assert_eq!(r.status(), 400);
        assert_eq!(r.header("Location"), None);
    });
}

#[test]
fn hsts_goes_on_every_response_of_the_https_side() {
    run_with(
        config(8),
        Hsts::new(StaticSite::new(FakeKv::new()), 31_536_000),
        |env| async move {
            let (_, r) = exchange(&env, "GET /style.css HTTP/1.1\r\nHost: a\r\n\r\n").await;
            assert_eq!(r.status(), 200);
            assert_eq!(
                r.header("Strict-Transport-Security"),
                Some("max-age=31536000")
            );
            assert_eq!(r.body, CSS.as_bytes());
            let (_, r) = exchange(&env, "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n").await;
            assert_eq!(r.status(), 404);
            assert_eq!(
                r.header("Strict-Transport-Security"),
                Some("max-age=31536000")
            );
        },
    );
}
