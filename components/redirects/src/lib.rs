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
//! run by morgana-codegen for the catalog's `Redirects` component: malformed lines,
//! duplicate or looping redirects are errors with file:line:column) and compiles it into
//! plain Rust data: a [`Table`] of [`Rule`]s sorted by path, a `static` of the generated
//! code made of string and integer constants. At run time [`Table::lookup`] finds a path
//! by binary search, with no allocation and nothing to validate at start, and
//! [`Redirecting`] answers matching requests with the redirect before another handler
//! sees them.
//!
//! The table is not an rkyv archive (`morgana-archive`): a sorted list of string pairs
//! gains nothing from zero-copy reading that a static of constants does not already
//! have, and an archive would cost every appliance with redirects rkyv compiled twice
//! (for the build script and for the appliance) and its validation at start.
#![no_std]
#![deny(unsafe_code)]

/// The statuses a redirect may have.
pub const STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// One redirect, as the generated code writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The request path it matches (decoded, as `Request::path` gives it).
    pub from: &'static str,
    /// Where it sends the client (`Location`).
    pub to: &'static str,
    /// One of [`STATUSES`].
    pub status: u16,
}

impl Rule {
    /// A redirect from `from` to `to` with `status`.
    pub const fn new(from: &'static str, to: &'static str, status: u16) -> Rule {
        Rule { from, to, status }
    }
}

/// A redirect found for a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Redirect<'a> {
    /// Where to.
    pub to: &'a str,
    /// The status.
    pub status: u16,
}

/// The compiled-in table: rules sorted by `from` (byte-wise), each `from` once.
#[derive(Clone, Copy)]
pub struct Table {
    rules: &'static [Rule],
}

impl core::fmt::Debug for Table {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Table({} redirects)", self.len())
    }
}

/// `a` before `b`, byte-wise (`str`'s `Ord`, which is not `const`).
const fn before(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

impl Table {
    /// The table of `rules`. They must be sorted by `from`, each `from` once, each
    /// status one of [`STATUSES`] (the build's compiler writes them so): checked here,
    /// which in a `static`'s initialiser is at compile time, so a table that breaks
    /// the rule does not build.
    ///
    /// ```
    /// use morgana_redirects::{Rule, Table};
    /// static T: Table = Table::new(&[Rule::new("/a", "/b", 301), Rule::new("/c", "/d", 308)]);
    /// assert_eq!(T.lookup("/c").map(|r| r.to), Some("/d"));
    /// ```
    ///
    /// The same rules out of order:
    ///
    /// ```compile_fail
    /// use morgana_redirects::{Rule, Table};
    /// static T: Table = Table::new(&[Rule::new("/c", "/d", 308), Rule::new("/a", "/b", 301)]);
    /// ```
    pub const fn new(rules: &'static [Rule]) -> Table {
        let mut i = 0;
        while i < rules.len() {
            if i > 0 && !before(rules[i - 1].from, rules[i].from) {
                panic!("redirect rules must be sorted by `from`, each `from` once");
            }
            let mut ok = false;
            let mut s = 0;
            while s < STATUSES.len() {
                ok |= STATUSES[s] == rules[i].status;
                s += 1;
            }
            if !ok {
                panic!("a redirect's status must be 301, 302, 303, 307 or 308");
            }
            i += 1;
        }
        Table { rules }
    }

    /// The redirect for request path `path`, if there is one.
    pub fn lookup(&self, path: &str) -> Option<Redirect<'static>> {
        let i = self
            .rules
            .binary_search_by(|r| r.from.as_bytes().cmp(path.as_bytes()))
            .ok()?;
        let r = &self.rules[i];
        Some(Redirect {
            to: r.to,
            status: r.status,
        })
    }

    /// The rules, sorted by `from`.
    pub fn rules(&self) -> &'static [Rule] {
        self.rules
    }

    /// How many redirects the table holds.
    pub fn len(&self) -> usize {
        self.rules.len()
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
        table: &'static Table,
        inner: H,
    }

    impl<H: Handler> Redirecting<H> {
        /// `table` in front of `inner`.
        pub fn new(table: &'static Table, inner: H) -> Redirecting<H> {
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

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    static TABLE: Table = Table::new(&[
        Rule::new("/a", "/x", 301),
        Rule::new("/b", "/c", 302),
        Rule::new("/docs/", "/d/", 308),
        Rule::new("/\u{e9}t\u{e9}", "/summer", 307),
    ]);

    #[test]
    fn lookups_find_exact_paths_only() {
        assert_eq!(TABLE.len(), 4);
        assert_eq!(
            TABLE.lookup("/a"),
            Some(Redirect {
                to: "/x",
                status: 301
            })
        );
        assert_eq!(TABLE.lookup("/b").map(|r| r.status), Some(302));
        assert_eq!(TABLE.lookup("/docs/").map(|r| r.to), Some("/d/"));
        assert_eq!(TABLE.lookup("/\u{e9}t\u{e9}").map(|r| r.status), Some(307));
        assert_eq!(TABLE.lookup("/docs"), None);
        assert_eq!(TABLE.lookup("/"), None);
        assert_eq!(TABLE.lookup(""), None);
        static EMPTY: Table = Table::new(&[]);
        assert!(EMPTY.is_empty());
        assert_eq!(EMPTY.lookup("/a"), None);
    }

    #[test]
    fn byte_wise_order() {
        assert!(before("/a", "/b"));
        assert!(before("/a", "/a/"));
        assert!(before("/Z", "/a"));
        assert!(!before("/a", "/a"));
        assert!(!before("/b", "/a"));
        assert!(before("", "/"));
    }

    // `Table::new` at run time (in a static it is a compile error): the same checks.
    #[test]
    #[should_panic(expected = "sorted")]
    fn unsorted_rules_are_refused() {
        static RULES: [Rule; 2] = [Rule::new("/b", "/x", 301), Rule::new("/a", "/x", 301)];
        let _ = std::hint::black_box(Table::new(std::hint::black_box(&RULES)));
    }

    #[test]
    #[should_panic(expected = "sorted")]
    fn a_path_twice_is_refused() {
        static RULES: [Rule; 2] = [Rule::new("/a", "/x", 301), Rule::new("/a", "/y", 301)];
        let _ = std::hint::black_box(Table::new(std::hint::black_box(&RULES)));
    }

    #[test]
    #[should_panic(expected = "status")]
    fn a_status_that_is_not_a_redirect_is_refused() {
        static RULES: [Rule; 1] = [Rule::new("/a", "/x", 200)];
        let _ = std::hint::black_box(Table::new(std::hint::black_box(&RULES)));
    }
}
