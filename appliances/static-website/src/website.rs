//! The job: announce the site, then serve it (its redirects first) until the listener
//! fails.

use alloc::format;
use core::fmt;
use morgana_http::{Server, StaticSite};
use morgana_redirects::{Redirecting, Table};
use morgana_signatures::{Console, KvRo, ShowAddr, Tcp, Timer};

/// The application, written against the signatures only: the same code serves from a Unix
/// process and from a kernel.
pub struct Website;

/// Why the website stopped.
pub struct Stopped<E>(morgana_http::Error<E>);

impl<E: fmt::Display> fmt::Display for Stopped<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the web server stopped: {}", self.0)
    }
}

impl Website {
    /// Serves `site` over `http`, answering the paths in `redirects` with their
    /// redirects; says on `console` where it listens first.
    pub async fn start<C, T, Tm, K>(
        console: C,
        http: Server<T, Tm>,
        site: K,
        redirects: &'static Table,
    ) -> Result<(), Stopped<T::Error>>
    where
        C: Console,
        T: Tcp,
        Tm: Timer,
        K: KvRo,
    {
        console.write_str(&format!(
            "{}: serving {} files and {} redirects on http://{}/\n",
            env!("CARGO_PKG_NAME"),
            site.len(),
            redirects.len(),
            ShowAddr(http.local_addr())
        ));
        http.serve(Redirecting::new(redirects, StaticSite::new(site)))
            .await
            .map_err(Stopped)
    }
}
