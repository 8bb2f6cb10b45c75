//! Makes a development certificate when `secrets/` has none (see `dev_cert`), then
//! compiles appliance.ron like every appliance.

mod dev_cert;

fn main() {
    dev_cert::ensure("secrets/tls.crt", "secrets/tls.key");
    morgana_codegen::build()
}
