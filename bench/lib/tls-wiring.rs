// The static website's wiring with HTTPS, written by hand the way the generated code will
// be (bench/tls.sh puts it in a scratch copy of appliances/static-website as
// src/wiring.rs): the HTTP server runs over morgana_tls::Tls over the target's network,
// and the certificate and key are compiled in with morgana_secrets::secret!, in the
// `.morgana.secrets` section. bench/tls.sh fills in TARGET (`unix` or `pvh`), NET_TYPE,
// NET_CONNECT and HTTP_ADDRESS.

/// `net`.
pub type Net = NET_TYPE;
/// `tls`: Tls(net: "net", secrets: "secrets", keys: Ecdsa): the certificate is ECDSA P-256,
/// so no RSA code is linked.
pub type Tls =
    morgana_tls::Tls<Net, morgana_TARGET::Clock, morgana_TARGET::Entropy, morgana_tls::Ecdsa>;
/// `https`: HttpServer(net: "tls", port: 8080).
pub type Http = morgana_http::Server<Tls, morgana_TARGET::Clock>;

/// The site.
pub static SITE: kv_crunch::Table = kv_crunch::crunch!("htdocs");

/// `redirects`: static-website's redirects (appliances/static-website/redirects), as the
/// generated code holds them: a static of constants. The build script still checks the
/// file, but the appliance.rs it writes is not used here, so the rules are repeated.
pub static REDIRECTS: morgana_redirects::Table = morgana_redirects::Table::new(&[
    morgana_redirects::Rule::new("/about", "/about.html", 301),
    morgana_redirects::Rule::new("/docs/ron", "/docs/appliance-ron.html", 308),
    morgana_redirects::Rule::new("/docs/targets.htm", "/docs/targets.html", 301),
    morgana_redirects::Rule::new("/source", "https://example.org/morgana/", 302),
]);

async fn connect_and_start(
    platform: &'static morgana_TARGET::Platform,
) -> Result<(), morgana_signatures::StartError> {
    use morgana_signatures::StartError;
    let console = platform.console();
    let clock = platform.clock();
    let entropy = platform.entropy();
    NET_CONNECT
    let chain = morgana_secrets::secret!(concat!(env!("CARGO_MANIFEST_DIR"), "/secrets/tls.crt"));
    let key = morgana_secrets::secret!(concat!(env!("CARGO_MANIFEST_DIR"), "/secrets/tls.key"));
    let identities = [morgana_tls::Identity {
        chain_pem: chain.expose(),
        key_pem: key.expose(),
    }];
    let tls = Tls::connect(net, clock, entropy, morgana_tls::Config::new(&identities))
        .await
        .map_err(|e| StartError::new("tls", &e))?;
    let http = Http::connect(
        tls,
        clock,
        morgana_http::Config {
            address: core::net::SocketAddr::from((HTTP_ADDRESS, 8080)),
            max_connections: 512,
            idle_timeout: core::time::Duration::from_secs(30),
        },
    )
    .await
    .map_err(|e| StartError::new("http", &e))?;
    crate::Website::start(console, http, &SITE, &REDIRECTS)
        .await
        .map_err(|e| StartError::new("main", &e))
}

morgana_TARGET::entry!(connect_and_start, heap_bytes = 16777216, log_level = Info);
