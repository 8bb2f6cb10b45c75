//! The master-file syntax that must compile, checked record by record through the
//! compiled zone.

use morgana_dns::zones::{NONE, Zone};
use morgana_dns_zone::{ZoneFile, build, compile, name_text};

fn zone(text: &str) -> Zone {
    let files = [ZoneFile {
        path: "t.zone",
        text,
        origin: None,
    }];
    let (mut set, _, diags) = build(&files);
    let errors: Vec<_> = diags.iter().map(|d| d.render(text)).collect();
    assert!(
        diags
            .iter()
            .all(|d| d.level == morgana_dns_zone::Level::Warning),
        "{}",
        errors.join("\n")
    );
    set.zones.remove(0)
}

fn rdata(z: &Zone, owner: &str, rtype: u16) -> Vec<(u32, Vec<u8>)> {
    let n = z
        .nodes
        .iter()
        .find(|n| name_text(&n.name) == owner)
        .unwrap_or_else(|| panic!("no node {owner}"));
    n.rrsets
        .iter()
        .find(|s| s.rtype == rtype)
        .map(|s| s.rrs.iter().map(|r| (r.ttl, r.rdata.clone())).collect())
        .unwrap_or_default()
}

const HEAD: &str = "$ORIGIN example.test.\n$TTL 1h\n@ IN SOA ns1 hostmaster ( 1 2h 1h 2w ; comment inside\n  5m )\n  NS ns1\n";

#[test]
fn parentheses_units_comments_and_omitted_owner() {
    let z = zone(&format!("{HEAD}ns1 A 192.0.2.1\n"));
    let soa = rdata(&z, "example.test.", 6);
    assert_eq!(soa[0].0, 3600);
    assert_eq!(
        &soa[0].1[soa[0].1.len() - 16..],
        &[
            0, 0, 0x1c, 0x20, 0, 0, 0x0e, 0x10, 0, 0x12, 0x75, 0, 0, 0, 1, 0x2c
        ]
    );
    assert_eq!(z.negative_ttl, 300);
    assert_eq!(rdata(&z, "example.test.", 2).len(), 1);
}

#[test]
fn escapes_quotes_and_character_strings() {
    let z = zone(&format!(
        "{HEAD}t TXT \"a\\\"b\" plain \"semi;colon\" \"\\065\\066\" \"\"\nw\\.dot A 192.0.2.2\n"
    ));
    let txt = &rdata(&z, "t.example.test.", 16)[0].1;
    assert_eq!(txt, b"\x03a\"b\x05plain\x0asemi;colon\x02AB\x00");
    // `w\.dot` is one label holding a dot.
    assert!(
        z.nodes
            .iter()
            .any(|n| n.name == b"\x05w.dot\x07example\x04test\x00")
    );
}

#[test]
fn ttl_class_order_and_the_last_ttl_rule() {
    let text = "$ORIGIN example.test.\n@ 600 IN SOA ns1 h 1 1 1 1 1\n@ IN 700 NS ns1\nns1 A 192.0.2.1\nns2 1d A 192.0.2.2\nns3 A 192.0.2.3\n";
    let z = zone(text);
    assert_eq!(rdata(&z, "example.test.", 2)[0].0, 700);
    // Without $TTL a record takes the last TTL written (RFC 1035 §5.1).
    assert_eq!(rdata(&z, "ns1.example.test.", 1)[0].0, 700);
    assert_eq!(rdata(&z, "ns3.example.test.", 1)[0].0, 86_400);
}

#[test]
fn relative_origin_at_sign_and_absolute_names() {
    let z = zone(&format!(
        "{HEAD}ns1 A 192.0.2.1\n$ORIGIN sub\n@ MX 10 mail\nwww CNAME www.example.org.\n$ORIGIN example.test.\nptr PTR @\n"
    ));
    assert_eq!(
        rdata(&z, "sub.example.test.", 15)[0].1,
        b"\x00\x0a\x04mail\x03sub\x07example\x04test\x00"
    );
    assert_eq!(
        rdata(&z, "www.sub.example.test.", 5)[0].1,
        b"\x03www\x07example\x03org\x00"
    );
    assert_eq!(
        rdata(&z, "ptr.example.test.", 12)[0].1,
        b"\x07example\x04test\x00"
    );
}

#[test]
fn every_supported_type_and_the_generic_form() {
    let z = zone(&format!(
        "{HEAD}ns1 A 192.0.2.1\nv6 AAAA 2001:db8::1\nsrv SRV 1 2 3 target\ncaa CAA 128 issue \"ca.example; x=1\"\nx TYPE99 \\# 3 abCDef\ny TYPE1 \\# 4 c0000201\n"
    ));
    assert_eq!(rdata(&z, "v6.example.test.", 28)[0].1.len(), 16);
    assert_eq!(
        rdata(&z, "srv.example.test.", 33)[0].1,
        b"\x00\x01\x00\x02\x00\x03\x06target\x07example\x04test\x00"
    );
    assert_eq!(
        rdata(&z, "caa.example.test.", 257)[0].1,
        b"\x80\x05issueca.example; x=1"
    );
    assert_eq!(rdata(&z, "x.example.test.", 99)[0].1, [0xab, 0xcd, 0xef]);
    assert_eq!(rdata(&z, "y.example.test.", 1)[0].1, [192, 0, 2, 1]);
}

#[test]
fn nodes_cuts_wildcards_and_additional_targets() {
    let z = zone(&format!(
        "{HEAD}ns1 A 192.0.2.1\nsub NS ns.sub\nns.sub A 192.0.2.9\na.b.c TXT x\n*.w A 192.0.2.5\n@ MX 1 host.w\n@ MX 2 ns.sub\n"
    ));
    let idx = |name: &str| {
        z.nodes
            .iter()
            .position(|n| name_text(&n.name) == name)
            .unwrap() as u32
    };
    // Empty non-terminals exist.
    idx("b.c.example.test.");
    idx("c.example.test.");
    let nssub = &z.nodes[idx("ns.sub.example.test.") as usize];
    assert_eq!(nssub.cut, idx("sub.example.test."));
    assert_eq!(
        z.nodes[idx("w.example.test.") as usize].wildcard,
        idx("*.w.example.test.")
    );
    let apex = &z.nodes[0];
    let mx = apex.rrsets.iter().find(|s| s.rtype == 15).unwrap();
    // host.w matches the wildcard; ns.sub is glue, never an MX's additional data.
    assert_eq!(mx.targets, vec![idx("*.w.example.test."), NONE]);
    let sub_ns = z.nodes[idx("sub.example.test.") as usize].rrsets[0]
        .targets
        .clone();
    assert_eq!(sub_ns, vec![idx("ns.sub.example.test.")]);
}

#[test]
fn the_archive_opens_and_finds_every_node() {
    let text = format!("{HEAD}ns1 A 192.0.2.1\nwww A 192.0.2.2\n");
    let c = compile(&[ZoneFile {
        path: "t.zone",
        text: &text,
        origin: Some("example.test."),
    }])
    .unwrap();
    let mut aligned = vec![0u8; c.archive.len() + 16];
    let off = aligned.as_ptr().align_offset(16);
    aligned[off..off + c.archive.len()].copy_from_slice(&c.archive);
    let zones = morgana_dns::Zones::from_bytes(&aligned[off..off + c.archive.len()]).unwrap();
    assert_eq!(zones.record_count(), 4);
    let z = &zones.zones()[0];
    assert!(z.find(b"\x03WWW\x07Example\x04TEST\x00").is_some());
    assert!(z.find(b"\x03xyz\x07example\x04test\x00").is_none());
    assert_eq!(
        zones.find_zone(b"\x01a\x03www\x07example\x04test\x00"),
        Some((0, 6))
    );
    assert_eq!(zones.find_zone(b"\x07example\x03org\x00"), None);
    // A corrupted archive is refused, never trusted.
    let mut bad = aligned.clone();
    let n = off + c.archive.len();
    bad[n - 4] ^= 0xff;
    assert!(morgana_dns::Zones::from_bytes(&bad[off..n]).is_err());
}
