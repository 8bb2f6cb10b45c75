//! The job of `two-targets`: the same code in both binaries; it knows only the
//! signatures.

use alloc::format;
use morgana_http::{Server, StaticSite};
use morgana_signatures::{Console, KvRo, ShowAddr, Tcp, Timer};

/// The job: say where it listens, then serve the compiled-in files until the listener
/// fails. The same code on both targets: it knows only the signatures.
pub struct Pages;

impl Pages {
    /// Serves `site` over `http`.
    pub async fn start<C: Console, T: Tcp, Tm: Timer, K: KvRo>(
        console: C,
        http: Server<T, Tm>,
        site: K,
    ) -> Result<(), morgana_http::Error<T::Error>> {
        console.write_str(&format!(
            "{}: serving {} files on http://{}/\n",
            env!("CARGO_BIN_NAME"),
            site.len(),
            ShowAddr(http.local_addr())
        ));
        http.serve(StaticSite::new(site)).await
    }
}
