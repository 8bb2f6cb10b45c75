//! What the server answers, path by path, without NSD at hand (the differential test
//! holds every answer to NSD's; this one pins the rules themselves).

mod support;

use morgana_dns::{AnswerConfig, Transport, Zones, respond};
use support::hostnet::compile_zones;
use support::msg::{Msg, parse, query};

fn zones() -> Zones<'static> {
    let base = env!("CARGO_MANIFEST_DIR");
    compile_zones(&[
        &format!("{base}/tests/zones/example.test.zone"),
        &format!("{base}/tests/zones/second.test.zone"),
    ])
}

fn ask(z: &Zones<'_>, name: &str, qtype: u16, edns: Option<(u16, u8, bool)>, t: Transport) -> Msg {
    let q = query(0x5151, name, qtype, 1, edns);
    let mut out = vec![0u8; 65_535];
    let n = respond(z, &q, &mut out, t, &AnswerConfig::default()).expect("an answer");
    let m = parse(&out[..n]).expect("well-formed");
    assert_eq!(
        &m.question[..],
        &q[12..12 + m.question.len()],
        "the question as sent"
    );
    m
}

const UDP: Transport = Transport::Udp { ipv6: false };
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const RA: u16 = 0x0080;

fn types(rrs: &[support::msg::Rr]) -> Vec<(String, u16)> {
    rrs.iter().map(|r| (r.owner.clone(), r.rtype)).collect()
}

#[test]
fn positive_answers_carry_the_zone_ns_and_their_addresses() {
    let z = zones();
    let m = ask(&z, "WeB.example.TEST.", 1, None, UDP);
    assert_eq!(m.rcode, 0);
    assert_eq!(m.flags & (AA | RD | RA), AA | RD, "AA, RD copied, no RA");
    assert_eq!(m.answer.len(), 3);
    assert_eq!(types(&m.authority), vec![("example.test.".into(), 2); 2]);
    assert_eq!(m.additional.len(), 3, "ns1 A, ns2 A, ns1 AAAA");
}

#[test]
fn negative_answers_carry_the_soa_with_the_negative_ttl() {
    let z = zones();
    let nx = ask(&z, "nothing.example.test.", 1, None, UDP);
    assert_eq!((nx.rcode, nx.answer.len()), (3, 0));
    assert_eq!(types(&nx.authority), vec![("example.test.".into(), 6)]);
    assert_eq!(nx.authority[0].ttl, 300, "min(SOA TTL 3600, MINIMUM 300)");
    let nodata = ask(&z, "web.example.test.", 15, None, UDP);
    assert_eq!(
        (nodata.rcode, nodata.answer.len(), nodata.authority.len()),
        (0, 0, 1)
    );
    // An empty non-terminal exists: NODATA, not NXDOMAIN.
    let ent = ask(&z, "a.b.example.test.", 1, None, UDP);
    assert_eq!((ent.rcode, ent.authority[0].rtype), (0, 6));
}

#[test]
fn referrals_wildcards_and_cname_chains() {
    let z = zones();
    let r = ask(&z, "deep.host.sub.example.test.", 1, None, UDP);
    assert_eq!((r.rcode, r.flags & AA, r.answer.len()), (0, 0, 0));
    assert_eq!(
        types(&r.authority),
        vec![("sub.example.test.".into(), 2); 3]
    );
    assert_eq!(
        types(&r.additional),
        vec![
            ("ns.sub.example.test.".into(), 1),
            ("ns2.sub.example.test.".into(), 28)
        ],
        "glue"
    );
    let w = ask(&z, "any.thing.wild.example.test.", 16, None, UDP);
    assert_eq!(
        types(&w.answer),
        vec![("any.thing.wild.example.test.".into(), 16)]
    );
    // The explicit name beside the wildcard is not matched by it.
    let x = ask(&z, "sub.wild.example.test.", 16, None, UDP);
    assert_eq!((x.rcode, x.answer.len()), (0, 0));
    let c = ask(&z, "alias1.example.test.", 1, None, UDP);
    let mut chain: Vec<u16> = c.answer.iter().map(|r| r.rtype).collect();
    chain.sort();
    assert_eq!(
        chain,
        vec![1, 1, 1, 5, 5, 5],
        "alias1 -> alias2 -> alias3 -> web"
    );
    let l = ask(&z, "loop1.example.test.", 1, None, UDP);
    assert_eq!(
        l.answer.len(),
        2,
        "a loop ends when a CNAME comes round again"
    );
    let x = ask(&z, "cross.second.test.", 1, None, UDP);
    assert_eq!(
        x.answer.len(),
        5,
        "a chain into the other zone: cross, www, 3 x web"
    );
}

#[test]
fn any_refused_formerr_notimp_and_badvers() {
    let z = zones();
    let any = ask(&z, "example.test.", 255, None, UDP);
    assert_eq!(
        types(&any.answer),
        vec![("example.test.".into(), 6)],
        "one RRset (RFC 8482)"
    );
    let out = ask(&z, "example.org.", 1, Some((1232, 0, false)), UDP);
    assert_eq!((out.rcode, out.flags & AA), (5, 0));
    assert_eq!(
        out.opt.as_ref().unwrap().3,
        "000f00020014",
        "EDE 20, not authoritative"
    );
    let bad = ask(&z, "web.example.test.", 1, Some((1232, 1, true)), UDP);
    assert_eq!(bad.rcode, 16, "BADVERS");
    assert_eq!((bad.answer.len(), bad.opt.as_ref().unwrap().2), (0, true));
    let mut q = query(1, "web.example.test.", 1, 1, None);
    q[2] |= 4 << 3; // NOTIFY
    let mut o = [0u8; 512];
    let n = respond(&z, &q, &mut o, UDP, &AnswerConfig::default()).unwrap();
    assert_eq!(parse(&o[..n]).unwrap().rcode, 4);
    q[2] &= !(4 << 3);
    q[5] = 2;
    let n = respond(&z, &q, &mut o, UDP, &AnswerConfig::default()).unwrap();
    assert_eq!(
        (n, parse(&o[..n]).unwrap().rcode),
        (12, 1),
        "FORMERR, header only"
    );
}

#[test]
fn truncation_follows_the_payload_size_and_tcp_never_truncates() {
    let z = zones();
    let small = ask(&z, "big.example.test.", 1, None, UDP);
    assert_eq!(
        (small.flags & TC, small.answer.len(), small.len),
        (TC, 0, 34)
    );
    let edns = ask(&z, "big.example.test.", 1, Some((1232, 0, false)), UDP);
    assert_eq!((edns.flags & TC, edns.answer.len()), (0, 40));
    assert!(edns.len <= 1232);
    let opt = edns.opt.unwrap();
    assert_eq!(
        (opt.0, opt.1, opt.2),
        (1232, 0, false),
        "our OPT: 1232, version 0"
    );
    // 700 bytes: the answer fits, the optional NS and addresses do not (no TC).
    let mid = ask(&z, "big.example.test.", 1, Some((700, 0, false)), UDP);
    assert_eq!(
        (mid.flags & TC, mid.answer.len(), mid.authority.len()),
        (0, 40, 0)
    );
    let tcp = ask(&z, "big.example.test.", 1, None, Transport::Tcp);
    assert_eq!(
        (tcp.flags & TC, tcp.answer.len(), tcp.authority.len()),
        (0, 40, 2)
    );
}
