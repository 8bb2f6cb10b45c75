//! The job: announce both addresses, then serve the site over HTTPS (with HSTS) and
//! the redirect to HTTPS over HTTP, until either server fails.

use alloc::format;
use core::fmt;
use morgana_http::{Hsts, RedirectToHttps, Server, StaticSite};
use morgana_rt::{Either, select};
use morgana_signatures::{Console, KvRo, ShowAddr, Tcp, Timer};

/// How long browsers keep to HTTPS once they have seen the site (a year).
pub const HSTS_MAX_AGE: u32 = 31_536_000;

/// The application, written against the signatures only.
pub struct Website;

/// Why the website stopped.
pub enum Stopped<A, B> {
    /// The HTTPS server failed.
    Https(morgana_http::Error<A>),
    /// The plain-HTTP server failed.
    Http(morgana_http::Error<B>),
}

impl<A: fmt::Display, B: fmt::Display> fmt::Display for Stopped<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stopped::Https(e) => write!(f, "the HTTPS server stopped: {e}"),
            Stopped::Http(e) => write!(f, "the HTTP server stopped: {e}"),
        }
    }
}

impl Website {
    /// Serves `site` over `https`, and redirects every request on `http` to it.
    pub async fn start<C, S, T, Tm, K>(
        console: C,
        https: Server<S, Tm>,
        http: Server<T, Tm>,
        site: K,
    ) -> Result<(), Stopped<S::Error, T::Error>>
    where
        C: Console,
        S: Tcp,
        T: Tcp,
        Tm: Timer,
        K: KvRo,
    {
        let port = https.local_addr().port();
        console.write_str(&format!(
            "{}: serving {} files on https://{}/ (http://{}/ redirects there)\n",
            env!("CARGO_PKG_NAME"),
            site.len(),
            ShowAddr(https.local_addr()),
            ShowAddr(http.local_addr()),
        ));
        let secure = https.serve(Hsts::new(StaticSite::new(site), HSTS_MAX_AGE));
        let redirect = http.serve(RedirectToHttps::new(port));
        match select(secure, redirect).await {
            Either::Left(r) => r.map_err(Stopped::Https),
            Either::Right(r) => r.map_err(Stopped::Http),
        }
    }
}
