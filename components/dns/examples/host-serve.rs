//! Serves zone files with Morgana's DNS server through the test-only host adapter
//! (`std::net` sockets in an epoll loop through mio), for `dig` by hand and for `bench/dns.sh`
//! until a platform's own UDP runs the appliance:
//!
//!     cargo run --release -p morgana-dns --example host-serve -- 127.0.0.1:5353 a.zone b.zone
#[path = "../tests/support/hostnet.rs"]
mod hostnet;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .expect("usage: host-serve ADDRESS:PORT ZONE-FILE...");
    let paths: Vec<String> = args.collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let zones = hostnet::compile_zones(&paths);
    let mut net = hostnet::HostNet::default();
    let (udp, tcp, clock) = (net.clone(), net.clone(), net.clone());
    let config = morgana_dns::Config::new(addr.parse().expect("ADDRESS:PORT"));
    let run = async move {
        let server = morgana_dns::Server::connect(udp, tcp, clock, zones, config).await?;
        eprintln!(
            "serving {} records on {}",
            zones.record_count(),
            server.local_addr()
        );
        server.serve().await
    };
    if let Err(e) = morgana_rt::block_on(run, &mut net) {
        eprintln!("host-serve: {e}");
        std::process::exit(1);
    }
}
