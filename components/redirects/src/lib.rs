//! HTTP redirects compiled into an appliance.
//!
//! A text file next to appliance.ron lists the redirects, one per line:
//!
//! ```text
//! # from          to                              status (default 301)
//! /old.html       /about.html
//! /docs/start     /docs/index.html                308
//! /blog           https://blog.example.org/       302
//! ```
//!
//! The build checks it (the compiler in `compiler/`, crate `morgana-redirects-compiler`,
//! run by morgana-codegen for the catalog's `Redirects` component: malformed lines, duplicate or looping redirects are errors
//! with file:line:column) and compiles it into an rkyv archive. At run time [`Table`]
//! reads that archive in place — validated once at start, then looked up by binary
//! search with no allocation — and [`Redirecting`] answers matching requests with the
//! redirect before another handler sees them.
#![no_std]
#![deny(unsafe_code)]

#[cfg(feature = "read")]
use morgana_archive::Aligned;

/// The statuses a redirect may have.
pub const STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// The table as the appliance reads it, in place: declared here rather than derived,
/// so that reading needs neither `alloc` nor rkyv's `alloc` feature in the appliance.
/// The compiler's host types write exactly this layout (`#[rkyv(as = ..)]`).
#[derive(rkyv::Portable, Debug)]
#[cfg_attr(
    feature = "read",
    derive(rkyv::bytecheck::CheckBytes),
    bytecheck(crate = rkyv::bytecheck)
)]
#[repr(C)]
pub struct ArchivedRedirects {
    /// The rules, sorted by `from`.
    pub rules: rkyv::vec::ArchivedVec<ArchivedRule>,
}

/// One redirect, archived.
#[derive(rkyv::Portable, Debug)]
#[cfg_attr(
    feature = "read",
    derive(rkyv::bytecheck::CheckBytes),
    bytecheck(crate = rkyv::bytecheck)
)]
#[repr(C)]
pub struct ArchivedRule {
    /// The request path it matches.
    pub from: rkyv::string::ArchivedString,
    /// Where it sends the client.
    pub to: rkyv::string::ArchivedString,
    /// The status.
    pub status: rkyv::Archived<u16>,
}

/// A redirect found for a path.
#[cfg(feature = "read")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Redirect<'a> {
    /// Where to.
    pub to: &'a str,
    /// The status.
    pub status: u16,
}

/// The compiled-in table, validated: a cheap `Copy` handle on the archive.
#[cfg(feature = "read")]
#[derive(Clone, Copy)]
pub struct Table {
    table: &'static ArchivedRedirects,
}

#[cfg(feature = "read")]
impl core::fmt::Debug for Table {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Table({} redirects)", self.len())
    }
}

#[cfg(feature = "read")]
impl Table {
    /// Validates the archive the build wrote and opens it; a corrupt archive is
    /// refused and never read.
    pub fn access(archive: &'static Aligned<[u8]>) -> Result<Table, morgana_archive::Error> {
        Self::access_bytes(&archive.0)
    }

    /// [`Table::access`] over bytes that are aligned as `include_aligned!` aligns them
    /// (checked: misaligned bytes are refused).
    pub fn access_bytes(bytes: &'static [u8]) -> Result<Table, morgana_archive::Error> {
        morgana_archive::access::<ArchivedRedirects>(bytes).map(|table| Table { table })
    }

    /// The redirect for request path `path`, if there is one.
    pub fn lookup(&self, path: &str) -> Option<Redirect<'static>> {
        let rules = self.table.rules.as_slice();
        let i = rules
            .binary_search_by(|r| r.from.as_str().as_bytes().cmp(path.as_bytes()))
            .ok()?;
        let r = &rules[i];
        Some(Redirect {
            to: r.to.as_str(),
            status: r.status.to_native(),
        })
    }

    /// How many redirects the table holds.
    pub fn len(&self) -> usize {
        self.table.rules.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(feature = "http")]
pub use self::http::Redirecting;

#[cfg(feature = "http")]
mod http {
    use morgana_http::{Handler, Headers, Request, Response, Status};

    use crate::Table;

    /// A handler that answers the requests the table redirects, and passes the others
    /// to `inner`.
    pub struct Redirecting<H> {
        table: Table,
        inner: H,
    }

    impl<H: Handler> Redirecting<H> {
        /// `table` in front of `inner`.
        pub fn new(table: Table, inner: H) -> Redirecting<H> {
            Redirecting { table, inner }
        }
    }

    fn status(code: u16) -> Status {
        match code {
            302 => Status::Found,
            303 => Status::SeeOther,
            307 => Status::TemporaryRedirect,
            308 => Status::PermanentRedirect,
            _ => Status::MovedPermanently,
        }
    }

    impl<H: Handler> Handler for Redirecting<H> {
        async fn handle<'a>(
            &'a self,
            request: &Request<'_>,
            headers: &mut Headers<'_>,
        ) -> Response<'a> {
            let Some(r) = self.table.lookup(request.path()) else {
                return self.inner.handle(request, headers).await;
            };
            // The query goes along unless the target has its own.
            let query = request.query().filter(|_| !r.to.contains('?')).filter(|q| {
                "Location: ".len() + r.to.len() + 1 + q.len() + 2 <= headers.remaining()
            });
            match query {
                Some(q) => headers.insert_fmt("Location", format_args!("{}?{q}", r.to)),
                None => headers.insert("Location", r.to),
            };
            let status = status(r.status);
            headers.insert("Content-Type", "text/html; charset=utf-8");
            Response::new(status, status.page().as_bytes())
        }
    }
}
