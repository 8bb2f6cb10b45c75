//! Property test: thousands of random and mutated requests, delivered in random read
//! sizes over concurrent connections. Whatever arrives, the server must not panic, every
//! response it sends must be a well-framed `HTTP/1.1` response, every connection must
//! end, and the server must still serve afterwards.

mod common;

use common::*;

/// xorshift64*: deterministic, no dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SEEDS: &[&str] = &[
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "HEAD /style.css HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n",
    "GET /style.css HTTP/1.1\r\nHost: a\r\nAccept-Encoding: br;q=1, gzip;q=0.5, *;q=0\r\nIf-None-Match: \"x\", W/\"css-7-gzip\"\r\n\r\n",
    "GET /docs HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /docs/?q=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    "GET /a%20b/%C3%BC.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /docs/guide.txt HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
    "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\n\r\n",
    "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nx=yz",
    "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "GET http://a/style.css HTTP/1.1\r\nHost: a\r\nIf-None-Match: *\r\n\r\n",
    "GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /../../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
];

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b" ",
    b"\t",
    b":",
    b"%",
    b"%2e%2e/",
    b"%00",
    b"%ff",
    b"..",
    b"/",
    b"//",
    b"?",
    b"#",
    b"\0",
    b"\xff\xfe",
    b"\xc3\xbc",
    b"Content-Length: 5\r\n",
    b"Content-Length: 70000\r\n",
    b"Content-Length: 99999999999999999999999\r\n",
    b"Content-Length: -1\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Host: x\r\n",
    b"Host: \r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"Expect: 100-continue\r\n",
    b"If-None-Match: \"home-1\", *\r\n",
    b"Accept-Encoding: gzip;q=0.001\r\n",
    b"HTTP/1.0",
    b"HTTP/1.1",
    b"HTTP/2.0",
    b"HTTP/1.",
    b"GET ",
    b"HEAD ",
    b"OPTIONS ",
    b"W/\"",
    b"\"",
    b",",
    b";q=",
    b"*",
    b"http://",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    let len = input.len();
    match rng.below(9) {
        0 => {
            if len > 0 {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
        }
        1 => {
            let i = rng.below(len + 1);
            let t = rng.pick(TOKENS);
            input.splice(i..i, t.iter().copied());
        }
        2 => {
            if len > 0 {
                let i = rng.below(len);
                let n = rng.below(len - i + 1).min(16);
                input.drain(i..i + n);
            }
        }
        3 => {
            if len > 0 {
                let i = rng.below(len);
                let n = rng.below(len - i + 1);
                let copy: Vec<u8> = input[i..i + n].to_vec();
                let at = rng.below(input.len() + 1);
                input.splice(at..at, copy);
            }
        }
        4 => {
            let at = rng.below(len + 1);
            input.truncate(at);
        }
        5 => input.extend_from_slice(rng.pick(SEEDS).as_bytes()),
        6 => {
            // A long run: pushes at the head, line and path limits.
            let i = rng.below(len + 1);
            let byte = *rng.pick(b"a/% \nx");
            let n = *rng.pick(&[100, 2047, 2048, 2049, 4000, 8190, 8192, 9000]);
            input.splice(i..i, std::iter::repeat_n(byte, n));
        }
        7 => {
            if len > 0 {
                let i = rng.below(len);
                let n = rng.below(len - i + 1).min(32);
                for b in &mut input[i..i + n] {
                    b.make_ascii_uppercase();
                }
            }
        }
        _ => {
            // Random bytes.
            let n = rng.below(64);
            let i = rng.below(len + 1);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            input.splice(i..i, bytes);
        }
    }
}

fn case(rng: &mut Rng) -> Vec<u8> {
    if rng.below(10) == 0 {
        let n = rng.below(300);
        return (0..n).map(|_| rng.next() as u8).collect();
    }
    let mut input = rng.pick(SEEDS).as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        mutate(rng, &mut input);
    }
    input
}

const STATUSES: &[u16] = &[
    100, 200, 204, 301, 304, 400, 404, 405, 408, 411, 413, 414, 417, 431, 500, 503, 505,
];

/// Checks that `out` is a sequence of well-framed responses; returns their statuses.
fn check_responses(out: &[u8], input: &[u8]) -> Vec<u16> {
    let show = || {
        format!(
            "input {:?}\noutput {:?}",
            String::from_utf8_lossy(input),
            String::from_utf8_lossy(out)
        )
    };
    let mut rest = out;
    let mut statuses = Vec::new();
    while !rest.is_empty() {
        assert!(rest.starts_with(b"HTTP/1.1 "), "not a response\n{}", show());
        let end =
            find(rest.iter(), b"\r\n\r\n").unwrap_or_else(|| panic!("cut head\n{}", show())) + 4;
        let head = std::str::from_utf8(&rest[..end])
            .unwrap_or_else(|_| panic!("non-UTF-8 head\n{}", show()));
        let status: u16 = head[9..12].parse().unwrap();
        assert!(STATUSES.contains(&status), "status {status}\n{}", show());
        rest = &rest[end..];
        statuses.push(status);
        if status == 100 {
            assert_eq!(head, "HTTP/1.1 100 Continue\r\n\r\n");
            continue;
        }
        assert!(head.contains("\r\nServer: morgana\r\n"), "{}", show());
        let length = head
            .split("\r\n")
            .filter_map(|l| l.strip_prefix("Content-Length: "))
            .map(|v| v.parse::<usize>().unwrap())
            .collect::<Vec<_>>();
        match status {
            304 | 204 => assert!(length.is_empty(), "{}", show()),
            _ => assert_eq!(length.len(), 1, "{}", show()),
        }
        // HEAD responses and 304s carry no body: the next response (or the end) follows.
        if rest.is_empty() || rest.starts_with(b"HTTP/1.1 ") {
            continue;
        }
        let n = length.first().copied().unwrap_or(0);
        assert!(rest.len() >= n, "cut body\n{}", show());
        rest = &rest[n..];
    }
    statuses
}

#[test]
fn random_and_mutated_requests_never_break_the_server() {
    const CASES: usize = 6000;
    const BATCH: usize = 6;
    // One slot fewer than a batch: some connections meet the cap.
    run(config(BATCH - 1), |env| async move {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut seen = std::collections::BTreeMap::<u16, usize>::new();
        let mut done = 0;
        while done < CASES {
            let mut batch = Vec::new();
            for _ in 0..BATCH {
                let input = case(&mut rng);
                let c = env.connect();
                c.set_read_chunk(*rng.pick(&[1, 2, 3, 7, 64, 1500, usize::MAX]));
                batch.push((c, input, rng.below(2) == 0));
            }
            // Deliver in random pieces, letting the server run in between.
            for (c, input, _) in &batch {
                let mut at = 0;
                while at < input.len() {
                    let n = (1 + rng.below(600)).min(input.len() - at);
                    c.send(&input[at..at + n]);
                    at += n;
                    if rng.below(3) == 0 {
                        yield_now().await;
                    }
                }
            }
            for (c, _, close) in &batch {
                if *close {
                    c.shutdown();
                }
            }
            for (c, input, _) in &batch {
                let out = c.read_to_end().await;
                for status in check_responses(&out, input) {
                    *seen.entry(status).or_default() += 1;
                }
            }
            done += BATCH;
        }
        // Every connection ended, and the server still works.
        assert_eq!(env.net.live_streams(), 0);
        // The inputs reached every corner they were meant to reach.
        for status in [
            200, 301, 304, 400, 404, 405, 408, 411, 413, 414, 431, 503, 505,
        ] {
            assert!(seen.contains_key(&status), "no {status} among {seen:?}");
        }
        let responses: usize = seen.values().sum();
        assert!(
            responses > CASES / 2,
            "only {responses} responses: {seen:?}"
        );
        let (_, r) = exchange(&env, "GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(r.body_str(), HOME);
    });
}

#[test]
fn every_prefix_and_every_split_of_valid_requests_is_handled() {
    run(config(8), |env| async move {
        for seed in SEEDS {
            let bytes = seed.as_bytes();
            // Every prefix, then the client closes.
            for cut in 0..bytes.len() {
                let c = env.connect();
                c.send(&bytes[..cut]);
                c.shutdown();
                let out = c.read_to_end().await;
                check_responses(&out, &bytes[..cut]);
            }
            // Every two-piece split answers exactly like the whole.
            let whole = {
                let c = env.connect();
                c.send(bytes);
                c.shutdown();
                c.read_to_end().await
            };
            for cut in 1..bytes.len() {
                let c = env.connect();
                c.send(&bytes[..cut]);
                yield_now().await;
                c.send(&bytes[cut..]);
                c.shutdown();
                let out = c.read_to_end().await;
                // Only an interim `100 Continue` may differ: it is sent when the body is
                // not there yet.
                let final_only = |b: &[u8]| {
                    String::from_utf8_lossy(b).replace("HTTP/1.1 100 Continue\r\n\r\n", "")
                };
                assert_eq!(
                    final_only(&out),
                    final_only(&whole),
                    "{seed:?} split at {cut}"
                );
            }
        }
        assert_eq!(env.net.live_streams(), 0);
    });
}
