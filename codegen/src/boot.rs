//! Boot-time configuration: the keys an appliance's `boot: [..]` names, as read on the
//! target built, and the generated `boot` module that reads them (with
//! morgana-boot-args) from the kernel command line or from argv.
//!
//! A key is read at boot when its device is included, the key exists for the device's
//! choices (`net.ipv4` needs `stack: Direct`) and it means something on the target;
//! otherwise the report says why it is not. The value in appliance.ron is the default.
//! Each key becomes `--<word>=<value>`: the catalog's `boot_name` or the key with `-`
//! for `_`, and `--<device>-<word>` where two included devices would share a word.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::catalog::{Catalog, KeySpec, KeyType};
use crate::diag::{Diagnostic, Span};
use crate::emit::context::literal;
use crate::model::{Appliance, Origin, Scalar};
use crate::wire::{NodeKind, Wiring};

/// Whether `word` can follow `--` on a command line: lower-case letters, digits and
/// single `-`, starting with a letter.
pub fn is_word(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_lowercase())
        && !word.ends_with('-')
        && !word.contains("--")
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A key read at boot on this target.
#[derive(Clone, Debug)]
pub struct BootKey {
    /// The device's node in the wiring.
    pub node: usize,
    /// The device.
    pub device: String,
    /// The key.
    pub key: String,
    /// Its catalog entry.
    pub spec: KeySpec,
    /// The value compiled in (the default at boot).
    pub value: Scalar,
    /// Where that value comes from.
    pub origin: Origin,
    /// The word after `--`.
    pub word: String,
    /// The field of `Boot` (`net_ipv4`).
    pub field: String,
}

/// The appliance's boot-time keys on this target, and the entries of `boot` that are
/// not read here: (`net.ipv4`, why).
#[derive(Clone, Debug, Default)]
pub struct BootKeys {
    /// The keys read, in the order `boot` names them.
    pub keys: Vec<BootKey>,
    /// The entries not read on this target, with why.
    pub not_read: Vec<(String, String)>,
}

impl BootKeys {
    /// Resolves `a.boot` against the wiring.
    pub fn resolve(a: &Appliance, cat: &Catalog, w: &Wiring<'_>) -> BootKeys {
        let mut out = BootKeys::default();
        for b in &a.boot {
            let entry = format!("{}.{}", b.device, b.key);
            let Some(node) = w.nodes.iter().position(
                |n| matches!(n.kind, NodeKind::Declared(d) if a.devices[d].name == b.device),
            ) else {
                continue;
            };
            let NodeKind::Declared(d) = w.nodes[node].kind else {
                continue;
            };
            let dev = &a.devices[d];
            let Some(comp) = cat.component(&dev.component) else {
                continue;
            };
            let Some(spec) = comp.keys.iter().find(|k| k.name == b.key) else {
                continue;
            };
            if !w.included(node) {
                out.not_read
                    .push((entry, format!("`{}` is left out", b.device)));
                continue;
            }
            if !spec.applies_to(&w.target.name) {
                out.not_read
                    .push((entry, format!("used on {} only", spec.targets.join(", "))));
                continue;
            }
            let Some(setting) = dev.setting(&b.key) else {
                let when: Vec<String> =
                    spec.when.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                out.not_read.push((
                    entry,
                    format!(
                        "{} has `{}` only with {}",
                        crate::wire::describe(dev, comp),
                        b.key,
                        when.join(", ")
                    ),
                ));
                continue;
            };
            let word = spec
                .boot_name
                .clone()
                .unwrap_or_else(|| b.key.replace('_', "-"));
            out.keys.push(BootKey {
                node,
                device: b.device.clone(),
                key: b.key.clone(),
                spec: spec.clone(),
                value: setting.value.clone(),
                origin: setting.origin,
                word,
                field: format!("{}_{}", b.device, b.key),
            });
        }
        // A word two devices share is prefixed with each one's device.
        let words: Vec<String> = out.keys.iter().map(|k| k.word.clone()).collect();
        for k in &mut out.keys {
            if words.iter().filter(|w| **w == k.word).count() > 1 {
                k.word = format!("{}-{}", k.device.replace('_', "-"), k.word);
            }
        }
        out
    }

    /// The boot-time key of node `n` named `key`, if it is one.
    pub fn get(&self, n: usize, key: &str) -> Option<&BootKey> {
        self.keys.iter().find(|k| k.node == n && k.key == key)
    }

    /// Whether any key is read at boot.
    pub fn any(&self) -> bool {
        !self.keys.is_empty()
    }
}

impl BootKey {
    /// The expression that reads it in `connect_and_start`.
    pub fn expr(&self) -> String {
        format!("boot.{}", self.field)
    }

    /// The type of its field in `Boot`.
    fn rust_type(&self) -> String {
        match &self.spec.ty {
            KeyType::Ipv4Cidr { .. } => "morgana_boot_args::Ipv4CidrOr".into(),
            ty if self.spec.optional => format!("Option<{}>", ty.rust_type()),
            ty => ty.rust_type().into(),
        }
    }

    /// The `or` words as written on the command line (`dhcp`).
    fn words(&self) -> Vec<String> {
        match &self.spec.ty {
            KeyType::Ipv4Cidr { or } => or.iter().map(|w| w.to_ascii_lowercase()).collect(),
            _ => Vec::new(),
        }
    }

    /// Its default, as Rust.
    fn default_value(&self, e: &crate::emit::Emitter<'_>) -> String {
        if self.spec.as_const {
            return format!("super::config::{}", e.const_name(self.node, &self.key));
        }
        match (&self.spec.ty, &self.value) {
            (KeyType::Ipv4Cidr { or }, Scalar::Choice(c)) => {
                let i = or.iter().position(|w| w == c).unwrap_or(0);
                format!("morgana_boot_args::Ipv4CidrOr::Word({i})")
            }
            (KeyType::Ipv4Cidr { .. }, Scalar::Ipv4Cidr(a, len)) => format!(
                "morgana_boot_args::Ipv4CidrOr::Address {{ address: core::net::Ipv4Addr::new({}), prefix_len: {len} }}",
                a.map(|o| o.to_string()).join(", ")
            ),
            _ => literal(&self.spec, &self.value),
        }
    }

    /// The statement that parses `value` into the field.
    fn parse(&self) -> String {
        let field = &self.field;
        match &self.spec.ty {
            KeyType::Int { min, max, .. } => {
                format!("boot.{field} = morgana_boot_args::int(key, value, {min}, {max})?")
            }
            KeyType::Ipv4 if self.spec.optional => {
                format!("boot.{field} = Some(morgana_boot_args::ipv4(key, value)?.octets())")
            }
            KeyType::Ipv4 => {
                format!("boot.{field} = morgana_boot_args::ipv4(key, value)?.octets()")
            }
            _ => format!(
                "boot.{field} = morgana_boot_args::ipv4_cidr_or(key, value, &[{}])?.into()",
                self.words()
                    .iter()
                    .map(|w| format!("{w:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// `--ipv4=<a.b.c.d/len|dhcp>`, for `--help`.
    fn usage(&self) -> String {
        let value = match &self.spec.ty {
            KeyType::Int { min, max, .. } => format!("{min}..{max}"),
            KeyType::Ipv4 => "a.b.c.d".into(),
            _ => {
                let mut v = vec!["a.b.c.d/len".to_string()];
                v.extend(self.words());
                v.join("|")
            }
        };
        format!("--{}=<{value}>", self.word)
    }

    /// The default as the command line writes it, for `--help`.
    fn default_text(&self) -> String {
        match &self.value {
            Scalar::Absent => "none".into(),
            Scalar::Choice(c) => c.to_ascii_lowercase(),
            v => v.plain(),
        }
    }

    /// The help text: `boot_doc`, or the first sentence of `doc`.
    fn doc(&self) -> String {
        match &self.spec.boot_doc {
            Some(d) => d.clone(),
            None => {
                let d = &self.spec.doc;
                let first = d.split(". ").next().unwrap_or(d).trim_end_matches('.');
                format!("{first}.")
            }
        }
    }
}

/// `text` in lines of at most `width` characters (words are not split).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The text `--help` prints, rendered from the catalog by `boot-help.txt.jinja`.
pub(crate) fn help(e: &crate::emit::Emitter<'_>, keys: &BootKeys) -> Result<String, String> {
    let kernel =
        e.w.target
            .boot_words
            .as_ref()
            .is_some_and(|b| b.source == crate::catalog::BootSource::KernelCommandLine);
    let rows: Vec<minijinja::Value> = keys
        .keys
        .iter()
        .map(|k| {
            minijinja::context! {
                usage => k.usage(),
                key => format!("{}.{}", k.device, k.key),
                default => k.default_text(),
                doc => wrap(&k.doc(), 68),
            }
        })
        .collect();
    crate::templates::render(
        e.env,
        "boot-help.txt.jinja",
        minijinja::context! {
            name => &e.a.name,
            kernel => kernel,
            keys => rows,
        },
    )
}

/// `pub mod boot { .. }`: `KEYS`, `HELP`, `struct Boot`, `DEFAULT` and `parse`.
pub(crate) fn module(e: &crate::emit::Emitter<'_>, keys: &BootKeys) -> Result<TokenStream, String> {
    let parse_expr = |text: &str| -> Result<syn::Expr, String> {
        syn::parse_str(text).map_err(|err| format!("the boot module: `{text}`: {err}"))
    };
    let words: Vec<&str> = keys.keys.iter().map(|k| k.word.as_str()).collect();
    let help = help(e, keys)?;
    let mut fields = TokenStream::new();
    let mut defaults = TokenStream::new();
    let mut arms = TokenStream::new();
    for k in &keys.keys {
        let from = match k.origin {
            Origin::Source(_) => format!("from {}", e.origin(k.origin)),
            _ => format!("the catalog's {}", e.origin(k.origin)),
        };
        let doc = format!(
            " `{}.{}` (`--{}`); default: {} ({from}).",
            k.device,
            k.key,
            k.word,
            k.default_text(),
        );
        let field = format_ident!("{}", k.field);
        let ty: syn::Type = syn::parse_str(&k.rust_type())
            .map_err(|err| format!("the boot module: a field's type: {err}"))?;
        fields.extend(quote!(#[doc = #doc] pub #field: #ty,));
        let default = parse_expr(&k.default_value(e))?;
        defaults.extend(quote!(#field: #default,));
        let word = &k.word;
        let assign = parse_expr(&k.parse())?;
        arms.extend(quote!(Arg::Set { key: key @ #word, value } => #assign,));
    }
    let what = if e
        .w
        .target
        .boot_words
        .as_ref()
        .is_some_and(|b| b.source == crate::catalog::BootSource::KernelCommandLine)
    {
        " Boot-time configuration: `--key=value` words of the kernel command line (other words are the platform's)."
    } else {
        " Boot-time configuration: the process's arguments, each a `--key=value`."
    };
    Ok(quote! {
        #[doc = #what]
        #[doc = " A key not given keeps its value from appliance.ron (`DEFAULT`); a later word wins."]
        pub mod boot {
            use morgana_boot_args::{Arg, BootError, Source};

            /// The keys, as written after `--`.
            pub const KEYS: &[&str] = &[#(#words),*];

            /// What `--help` prints.
            pub const HELP: &str = #help;

            /// The boot-time keys' values.
            #[derive(Clone, Copy, Debug)]
            pub struct Boot {
                #fields
            }

            /// The values compiled in.
            pub const DEFAULT: Boot = Boot { #defaults };

            /// Reads `words`: the values, `Ok(None)` on `--help`, or the first word that
            /// cannot configure the appliance.
            pub fn parse<'a>(
                words: impl IntoIterator<Item = &'a str>,
                source: Source,
            ) -> Result<Option<Boot>, BootError<'a>> {
                let mut boot = DEFAULT;
                for arg in morgana_boot_args::args(words, source) {
                    match arg? {
                        Arg::Help => return Ok(None),
                        #arms
                        Arg::Set { key, .. } => return Err(BootError::UnknownKey { key, known: KEYS }),
                    }
                }
                Ok(Some(boot))
            }
        }
    })
}

/// The statements at the top of `connect_and_start`: parse the words; on `--help`
/// print `HELP` and stop with success; on a bad word stop with the error.
pub(crate) fn prelude(e: &crate::emit::Emitter<'_>) -> Result<TokenStream, String> {
    let Some(words_spec) = &e.w.target.boot_words else {
        return Err(format!("target `{}` has no `boot_words`", e.w.target.name));
    };
    let mut ctx = crate::emit::context::CodeContext::default();
    ctx.code("platform", "platform");
    let text = crate::templates::render_inline(
        e.env,
        &format!("{}.boot_words (schemas/catalog.ron)", e.w.target.name),
        &words_spec.words,
        ctx.build(),
    )?;
    let words: syn::Expr =
        syn::parse_str(&text).map_err(|err| format!("boot words `{text}`: {err}"))?;
    let console =
        e.w.target
            .devices
            .iter()
            .find(|(n, _)| n == "console")
            .map(|(_, p)| p.expr.clone())
            .ok_or("the target has no console")?;
    let console = crate::templates::render_inline(e.env, "console", &console, ctx.build())?;
    let console: syn::Expr =
        syn::parse_str(&console).map_err(|err| format!("console `{console}`: {err}"))?;
    let source = format_ident!("{}", format!("{:?}", words_spec.source));
    Ok(quote! {
        let boot = match boot::parse(#words, morgana_boot_args::Source::#source) {
            Ok(Some(boot)) => boot,
            Ok(None) => {
                morgana_signatures::Console::write_str(&#console, boot::HELP);
                return Ok(());
            }
            Err(e) => return Err(StartError::new("boot", &e)),
        };
    })
}

/// Checks `cmdline` of appliance.ron against the keys read at boot, as the generated
/// parser will read it: a word it would refuse stops the build here.
pub fn check_cmdline(a: &Appliance, keys: &BootKeys) -> Result<(), Diagnostic> {
    use morgana_boot_args::{Arg, BootError, Source};
    let (line, Some(span)) = (&a.cmdline.0, a.cmdline.1) else {
        return Ok(());
    };
    // morgana-boot-args's errors hold `'static` lists (the generated code's constants):
    // here, once per build, leaked.
    fn leak(words: Vec<String>) -> &'static [&'static str] {
        Box::leak(
            words
                .into_iter()
                .map(|w| &*Box::leak(w.into_boxed_str()))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        )
    }
    let known = leak(keys.keys.iter().map(|k| k.word.clone()).collect());
    let fail = |e: BootError<'_>, span: Span| {
        Diagnostic::error(format!("`cmdline`: {e}"))
            .primary(span, "")
            .note("the deployment files pass `cmdline` to the kernel, which would stop here")
            .help(if known.is_empty() {
                "`boot: [..]` names the keys read at boot; this appliance reads none".to_string()
            } else {
                format!(
                    "the boot-time keys are {}",
                    known
                        .iter()
                        .map(|k| format!("--{k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    };
    // Written as it is into xl's `cmdline = ".."`, XML and JSON (those two escape it).
    if let Some(c) = line
        .chars()
        .find(|c| matches!(c, '"' | '\\') || c.is_control())
    {
        return Err(Diagnostic::error(format!("`cmdline`: the character {c:?} cannot be passed"))
            .primary(span, "the deployment files pass this command line")
            .help("a kernel command line is words of printable characters without quotes or backslashes"));
    }
    // The word's own place inside the string (no escapes in it: checked above).
    let at = |part: &str, len: usize| -> Span {
        let offset = part.as_ptr() as usize - line.as_ptr() as usize;
        let offset = offset.saturating_sub(2).min(line.len());
        let chars = line[..offset].chars().count() as u32;
        Span {
            lo: span.lo + 1 + offset as u32,
            hi: span.lo + 1 + (offset + len).min(line.len()) as u32,
            col: span.col + 1 + chars,
            ..span
        }
    };
    for word in morgana_boot_args::kernel_words(line) {
        let Some(arg) = morgana_boot_args::args([word], Source::KernelCommandLine).next() else {
            continue;
        };
        let word_span = at(&word[2..], word.len());
        let (key, value) = match arg {
            Err(e) => return Err(fail(e, word_span)),
            Ok(Arg::Help) => continue,
            Ok(Arg::Set { key, value }) => (key, value),
        };
        let Some(k) = keys.keys.iter().find(|k| k.word == key) else {
            return Err(fail(BootError::UnknownKey { key, known }, word_span));
        };
        let checked = match &k.spec.ty {
            KeyType::Int { min, max, .. } => {
                morgana_boot_args::int::<u64>(key, value, *min as u64, *max as u64).map(drop)
            }
            KeyType::Ipv4 => morgana_boot_args::ipv4(key, value).map(drop),
            _ => morgana_boot_args::ipv4_cidr_or(key, value, leak(k.words())).map(drop),
        };
        checked.map_err(|e| fail(e, word_span))?;
    }
    Ok(())
}
