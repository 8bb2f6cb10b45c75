//! Range requests (RFC 9110 §14) through the whole server and `StaticSite`, over the
//! in-memory TCP stack under virtual time: single and multiple ranges, suffixes, 416,
//! If-Range, HEAD, and ranges of the gzip representation with its own entity tag.

mod common;

use common::*;

fn get_with(path: &str, fields: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: example.test\r\n{fields}\r\n")
}

fn big() -> Vec<u8> {
    vec![b'x'; BIG_LEN]
}

#[test]
fn a_single_range_gets_206_with_content_range_and_the_connection_stays() {
    run(config(8), |env| async move {
        let (c, r) = exchange(&env, &get_with("/style.css", "Range: bytes=0-3\r\n")).await;
        assert_eq!(r.status_line, "HTTP/1.1 206 Partial Content");
        assert_eq!(
            r.header("Content-Range"),
            Some(format!("bytes 0-3/{}", CSS.len()).as_str())
        );
        assert_eq!(r.header("Content-Length"), Some("4"));
        assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
        assert_eq!(r.header("Content-Type"), Some("text/css; charset=utf-8"));
        assert_eq!(r.header("ETag"), Some("\"css-7\""));
        assert_eq!(r.body, &CSS.as_bytes()[..4]);

        // Suffix and open-ended ranges, on the same connection.
        c.send(get_with("/style.css", "Range: bytes=-5\r\n"));
        let r = c.response().await;
        assert_eq!(r.status(), 206);
        assert_eq!(r.body, &CSS.as_bytes()[CSS.len() - 5..]);
        let from = CSS.len() - 3;
        c.send(get_with("/style.css", &format!("Range: bytes={from}-\r\n")));
        let r = c.response().await;
        assert_eq!(r.body, &CSS.as_bytes()[from..]);
        assert_eq!(
            r.header("Content-Range"),
            Some(format!("bytes {from}-{}/{}", CSS.len() - 1, CSS.len()).as_str())
        );
        // A last position past the end is cut to the end.
        c.send(get_with("/big.bin", "Range: bytes=262000-999999999\r\n"));
        let r = c.response().await;
        assert_eq!(
            r.header("Content-Range"),
            Some("bytes 262000-262143/262144")
        );
        assert_eq!(r.body.len(), BIG_LEN - 262_000);
        assert!(!c.server_closed());
    });
}

#[test]
fn several_ranges_get_multipart_byteranges_sorted_and_coalesced() {
    run(config(8), |env| async move {
        let (_, r) = exchange(
            &env,
            &get_with("/big.bin", "Range: bytes=100-199, 0-9, 5-14, -10\r\n"),
        )
        .await;
        assert_eq!(r.status(), 206);
        let ct = r.header("Content-Type").unwrap().to_string();
        let boundary = ct
            .strip_prefix("multipart/byteranges; boundary=")
            .unwrap_or_else(|| panic!("{ct}"));
        assert_eq!(r.header("Content-Range"), None);
        let body = String::from_utf8(r.body.clone()).unwrap();
        let x = |n: usize| "x".repeat(n);
        let expected = format!(
            "\r\n--{b}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-14/262144\r\n\r\n{}\
             \r\n--{b}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 100-199/262144\r\n\r\n{}\
             \r\n--{b}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 262134-262143/262144\r\n\r\n{}\
             \r\n--{b}--\r\n",
            x(15),
            x(100),
            x(10),
            b = boundary
        );
        assert_eq!(body, expected);
        assert_eq!(
            r.header("Content-Length"),
            Some(expected.len().to_string().as_str())
        );
    });
}

#[test]
fn unsatisfiable_ranges_get_416_with_the_length() {
    run(config(8), |env| async move {
        let (c, r) = exchange(&env, &get_with("/style.css", "Range: bytes=5000-6000\r\n")).await;
        assert_eq!(r.status_line, "HTTP/1.1 416 Range Not Satisfiable");
        assert_eq!(
            r.header("Content-Range"),
            Some(format!("bytes */{}", CSS.len()).as_str())
        );
        assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
        assert!(r.body_str().contains("416"));
        // The connection stays usable.
        c.send(get_with("/empty.txt", "Range: bytes=0-0\r\n"));
        let r = c.response().await;
        assert_eq!(r.status(), 416);
        assert_eq!(r.header("Content-Range"), Some("bytes */0"));
        assert!(!c.server_closed());
    });
}

#[test]
fn ranges_not_understood_are_ignored_and_the_whole_file_is_sent() {
    run(config(8), |env| async move {
        for fields in [
            "Range: lines=1-2\r\n",
            "Range: bytes=9-1\r\n",
            "Range: bytes=a-\r\n",
            "Range: bytes=0-1\r\nRange: bytes=2-3\r\n",
        ] {
            let (_, r) = exchange(&env, &get_with("/style.css", fields)).await;
            assert_eq!(r.status(), 200, "{fields}");
            assert_eq!(r.body, CSS.as_bytes(), "{fields}");
            assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
        }
        // A flood of tiny ranges is answered with the file once.
        let flood: Vec<String> = (0..200).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
        let (_, r) = exchange(
            &env,
            &get_with("/big.bin", &format!("Range: bytes={}\r\n", flood.join(","))),
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.body, big());
    });
}

#[test]
fn if_range_applies_the_range_only_for_the_same_strong_tag() {
    run(config(8), |env| async move {
        let (_, r) = exchange(
            &env,
            &get_with("/style.css", "Range: bytes=0-1\r\nIf-Range: \"css-7\"\r\n"),
        )
        .await;
        assert_eq!((r.status(), r.body.as_slice()), (206, &CSS.as_bytes()[..2]));
        for cond in ["\"css-6\"", "W/\"css-7\"", "Tue, 01 Dec 2026 10:00:00 GMT"] {
            let (_, r) = exchange(
                &env,
                &get_with(
                    "/style.css",
                    &format!("Range: bytes=0-1\r\nIf-Range: {cond}\r\n"),
                ),
            )
            .await;
            assert_eq!(r.status(), 200, "If-Range {cond}");
            assert_eq!(r.body, CSS.as_bytes());
        }
    });
}

#[test]
fn ranges_count_in_the_gzip_representation_and_if_range_meets_its_tag() {
    run(config(8), |env| async move {
        let gz = "Accept-Encoding: gzip\r\n";
        let (_, r) = exchange(
            &env,
            &get_with("/style.css", &format!("{gz}Range: bytes=2-5\r\n")),
        )
        .await;
        assert_eq!(r.status(), 206);
        assert_eq!(r.header("Content-Encoding"), Some("gzip"));
        assert_eq!(r.header("ETag"), Some("\"css-7-gzip\""));
        assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
        assert_eq!(
            r.header("Content-Range"),
            Some(format!("bytes 2-5/{}", CSS_GZ.len()).as_str())
        );
        assert_eq!(r.body, &CSS_GZ[2..6]);
        // The identity tag does not validate the gzip representation.
        let (_, r) = exchange(
            &env,
            &get_with(
                "/style.css",
                &format!("{gz}Range: bytes=2-5\r\nIf-Range: \"css-7\"\r\n"),
            ),
        )
        .await;
        assert_eq!((r.status(), r.body.as_slice()), (200, CSS_GZ));
        let (_, r) = exchange(
            &env,
            &get_with(
                "/style.css",
                &format!("{gz}Range: bytes=2-5\r\nIf-Range: \"css-7-gzip\"\r\n"),
            ),
        )
        .await;
        assert_eq!((r.status(), r.body.as_slice()), (206, &CSS_GZ[2..6]));
        // Several ranges of an encoded representation: the whole of it, once.
        let (_, r) = exchange(
            &env,
            &get_with("/style.css", &format!("{gz}Range: bytes=0-1,4-5\r\n")),
        )
        .await;
        assert_eq!((r.status(), r.body.as_slice()), (200, CSS_GZ));
    });
}

#[test]
fn head_and_conditional_requests_take_precedence_over_range() {
    run(config(8), |env| async move {
        let c = env.connect();
        c.send("HEAD /style.css HTTP/1.1\r\nHost: example.test\r\nRange: bytes=0-3\r\n\r\n");
        let r = c.head_response().await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
        assert_eq!(
            r.header("Content-Length"),
            Some(CSS.len().to_string().as_str())
        );
        let (_, r) = exchange(
            &env,
            &get_with(
                "/style.css",
                "Range: bytes=0-3\r\nIf-None-Match: \"css-7\"\r\n",
            ),
        )
        .await;
        assert_eq!(r.status(), 304);
        // Error pages and redirects do not advertise ranges.
        let (_, r) = exchange(&env, &get_with("/nope", "Range: bytes=0-3\r\n")).await;
        assert_eq!(r.status(), 404);
        assert_eq!(r.header("Accept-Ranges"), None);
    });
}
