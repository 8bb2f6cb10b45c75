//! The Rust of `appliance.rs`, built as tokens and laid out by prettyplease.
//!
//! Each piece the catalog contributes (a type, a `connect` expression, a static's
//! initialiser) is a minijinja template rendered for the device and parsed by syn as
//! the type or expression it must be — a template that does not yield Rust is an error
//! of the catalog, reported before rustc sees anything. The pieces are assembled with
//! quote; comments pointing back to `appliance.ron:line:col` are doc attributes, which
//! prettyplease writes as `///` lines.

use proc_macro2::{Literal, TokenStream, TokenTree};
use quote::{format_ident, quote};

use crate::catalog::Code as ImplCode;
use crate::emit::Emitter;
use crate::emit::context::literal;
use crate::model::{Scalar, float_literal};
use crate::names;
use crate::wire::Chosen;

/// The code blocks of `appliance.rs`, each laid out by prettyplease.
#[derive(Clone, Debug, Default)]
pub struct Code {
    /// One `pub type` per connected device (empty when there is none).
    pub aliases: String,
    /// `pub mod config { .. }`.
    pub config: String,
    /// One `pub static` per compiled-in value or archive.
    pub statics: Vec<String>,
    /// `pub mod boot { .. }`, when keys are read at boot (else empty).
    pub boot: String,
    /// `async fn connect_and_start(..)`.
    pub connect_and_start: String,
    /// The platform's entry macro.
    pub entry: String,
}

fn unparse(items: TokenStream, what: &str) -> Result<String, String> {
    let file: syn::File =
        syn::parse2(items).map_err(|e| format!("the generated {what} is not valid Rust: {e}"))?;
    Ok(prettyplease::unparse(&file).trim_end().to_string())
}

fn doc(text: &str) -> TokenStream {
    let text = format!(" {text}");
    quote!(#[doc = #text])
}

fn parse_type(text: &str, what: &str) -> Result<syn::Type, String> {
    syn::parse_str(text).map_err(|e| format!("{what}: `{text}` is not a Rust type: {e}"))
}

fn parse_expr(text: &str, what: &str) -> Result<syn::Expr, String> {
    syn::parse_str(text).map_err(|e| format!("{what}: `{text}` is not a Rust expression: {e}"))
}

/// `<expr>.map_err(|e| StartError::new("<device>", &e))?`, in parentheses if needed.
fn started(expr: &syn::Expr, device: &str) -> TokenStream {
    let postfix = matches!(
        expr,
        syn::Expr::Call(_)
            | syn::Expr::MethodCall(_)
            | syn::Expr::Await(_)
            | syn::Expr::Path(_)
            | syn::Expr::Field(_)
            | syn::Expr::Macro(_)
            | syn::Expr::Paren(_)
            | syn::Expr::Index(_)
            | syn::Expr::Try(_)
    );
    let expr = if postfix {
        quote!(#expr)
    } else {
        quote!((#expr))
    };
    quote!(#expr.map_err(|e| StartError::new(#device, &e)))
}

/// Whether `tokens` use the identifier `name`.
fn mentions(tokens: &TokenStream, name: &str) -> bool {
    tokens.clone().into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == name,
        TokenTree::Group(g) => mentions(&g.stream(), name),
        _ => false,
    })
}

impl Code {
    /// The code of the appliance that `e` describes.
    pub(crate) fn generate(e: &Emitter<'_>) -> Result<Code, String> {
        Ok(Code {
            aliases: aliases(e)?,
            config: config(e)?,
            statics: statics(e)?,
            boot: if e.boot.any() {
                unparse(crate::boot::module(e, &e.boot)?, "boot module")?
            } else {
                String::new()
            },
            connect_and_start: connect_and_start(e)?,
            entry: entry(e)?,
        })
    }
}

fn aliases(e: &Emitter<'_>) -> Result<String, String> {
    let mut items = TokenStream::new();
    for &n in &e.w.order {
        let Some((dev, _)) = e.device(n) else {
            continue;
        };
        if e.is_static(n) {
            continue;
        }
        let doc = doc(&format!(
            "`{}`: {} ({}).",
            dev.name,
            e.long_description(n),
            e.loc(dev.component_span)
        ));
        let alias = format_ident!("{}", e.alias(n));
        let ty = parse_type(&e.rendered_type(n)?, &format!("the type of `{}`", dev.name))?;
        items.extend(quote!(#doc pub type #alias = #ty;));
    }
    if items.is_empty() {
        return Ok(String::new());
    }
    unparse(items, "type aliases")
}

fn config(e: &Emitter<'_>) -> Result<String, String> {
    let mut items = TokenStream::new();
    for c in &e.a.config {
        let doc = doc(&format!("`config.{}` ({}).", c.key, e.loc(c.span)));
        let name = format_ident!("{}", names::screaming(&c.key));
        let ty = parse_type(&c.ty, "a config constant")?;
        let value = match &c.value {
            Scalar::Float(f) => float_literal(*f, &c.ty),
            Scalar::Int(i) if c.ty == "u64" || c.ty == "i64" => i.to_string(),
            Scalar::Int(i) => i.to_string(),
            other => other.rust(),
        };
        let value = parse_expr(&value, "a config constant")?;
        items.extend(quote!(#doc pub const #name: #ty = #value;));
    }
    for &n in &e.w.order {
        let Some((dev, comp)) = e.device(n) else {
            continue;
        };
        for k in comp.keys.iter().filter(|k| k.as_const) {
            let Some(s) = dev.setting(&k.name) else {
                continue;
            };
            let ty = if k.optional {
                format!("Option<{}>", k.ty.rust_type())
            } else {
                k.ty.rust_type().to_string()
            };
            let doc = doc(&format!(
                "`{}.{}` ({}).",
                dev.name,
                k.name,
                e.origin(s.origin)
            ));
            let name = format_ident!("{}", e.const_name(n, &k.name));
            let ty = parse_type(&ty, "a config constant")?;
            let value = parse_expr(&literal(k, &s.value), "a config constant")?;
            items.extend(quote!(#doc pub const #name: #ty = #value;));
        }
    }
    let doc = doc("Configuration, compiled in.");
    unparse(quote!(#doc pub mod config { #items }), "config module")
}

fn statics(e: &Emitter<'_>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for &n in &e.w.order {
        let Some((dev, _)) = e.device(n) else {
            continue;
        };
        if let Some((archive, (file_name, _))) = e.archive(n).and_then(|a| Some((a, a.archive()?)))
        {
            let doc = doc(&format!(
                "`{}`: {}, compiled from {} by the `{}` compiler ({}).",
                dev.name,
                archive.summary,
                archive
                    .inputs
                    .iter()
                    .map(|p| format!("{:?}", p.display().to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
                archive.compiler,
                e.loc(dev.component_span)
            ));
            let name = format_ident!("{}", crate::archive::static_name(&dev.name));
            let path = format!("/{file_name}");
            out.push(unparse(
                quote! {
                    #doc
                    pub static #name: &morgana_archive::Aligned<[u8]> =
                        morgana_archive::include_aligned!(concat!(env!("OUT_DIR"), #path));
                },
                "archive static",
            )?);
        }
        let Some(Chosen::Component(imp)) = &e.w.chosen[n] else {
            continue;
        };
        let ImplCode::Static { init, .. } = &imp.code else {
            continue;
        };
        // Data compiled as Rust constants: said in the static's documentation.
        let compiled = e
            .archive(n)
            .filter(|a| a.rust().is_some())
            .map(|a| {
                format!(
                    ": {}, compiled from {} by the `{}` compiler",
                    a.summary,
                    a.inputs
                        .iter()
                        .map(|p| format!("{:?}", p.display().to_string()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    a.compiler
                )
            })
            .unwrap_or_default();
        let doc = doc(&format!(
            "`{}`: {}{compiled} ({}).",
            dev.name,
            e.long_description(n),
            e.loc(dev.component_span)
        ));
        let what = format!("the static of `{}`", dev.name);
        let name = format_ident!("{}", e.static_name(n));
        let ty = parse_type(&e.rendered_type(n)?, &what)?;
        let init = parse_expr(&e.rendered_value(n, "init", init, &[])?, &what)?;
        out.push(unparse(
            quote!(#doc pub static #name: #ty = #init;),
            "static",
        )?);
    }
    Ok(out)
}

/// The statements that connect node `n` (none for a static).
fn connect_node(e: &Emitter<'_>, n: usize) -> Result<TokenStream, String> {
    let name = &e.w.nodes[n].name;
    let var = format_ident!("{}", name);
    match &e.w.chosen[n] {
        Some(Chosen::Platform(p)) => {
            let mut ctx = crate::emit::context::CodeContext::default();
            ctx.code("platform", "platform");
            let text = crate::templates::render_inline(
                e.env,
                &format!("{}.devices.{name} (schemas/catalog.ron)", e.w.target.name),
                &p.expr,
                ctx.build(),
            )?;
            let expr = parse_expr(&text, &format!("platform device `{name}`"))?;
            Ok(quote!(let #var = #expr;))
        }
        Some(Chosen::Component(imp)) => {
            let ImplCode::Connect {
                prepare, connect, ..
            } = &imp.code
            else {
                return Ok(TokenStream::new());
            };
            let mut out = TokenStream::new();
            let mut steps: Vec<(String, String)> = Vec::new();
            for (step, text) in prepare {
                let step_var = format!("{name}_{step}");
                let rendered = e.rendered_value(n, &format!("prepare.{step}"), text, &steps)?;
                let expr = parse_expr(&rendered, &format!("`{name}`'s step `{step}`"))?;
                let try_ = started(&expr, name);
                let ident = format_ident!("{}", step_var);
                out.extend(quote!(let #ident = #try_?;));
                steps.push((step.clone(), step_var));
            }
            let rendered = e.rendered_value(n, "connect", connect, &steps)?;
            let expr = parse_expr(&rendered, &format!("`{name}`'s connect"))?;
            let try_ = started(&expr, name);
            out.extend(quote!(let #var = #try_?;));
            Ok(out)
        }
        None => Ok(TokenStream::new()),
    }
}

fn connect_and_start(e: &Emitter<'_>) -> Result<String, String> {
    let mut body = TokenStream::new();
    if e.boot.any() {
        body.extend(crate::boot::prelude(e)?);
    }
    for &n in &e.w.order {
        body.extend(connect_node(e, n)?);
    }
    let args: Vec<syn::Expr> =
        e.w.start
            .iter()
            .map(|&n| parse_expr(&e.value_of(n, None), "an argument of main"))
            .collect::<Result<_, _>>()?;
    let main: syn::Path = syn::parse_str(&format!("crate::{}::start", e.a.main))
        .map_err(|err| format!("main `{}`: {err}", e.a.main))?;
    let call: syn::Expr = syn::parse2(quote!(#main(#(#args),*).await))
        .map_err(|err| format!("the call of main: {err}"))?;
    let finish = started(&call, "main");
    let param = if mentions(&body, "platform") {
        format_ident!("platform")
    } else {
        format_ident!("_platform")
    };
    let platform = parse_type(&e.w.target.platform, "the target's platform")?;
    let doc = doc("Connects every device in dependency order, then starts `main`.");
    unparse(
        quote! {
            #doc
            async fn connect_and_start(
                #param: &'static #platform,
            ) -> Result<(), morgana_signatures::StartError> {
                use morgana_signatures::StartError;
                #body
                #finish
            }
        },
        "connect_and_start",
    )
}

fn entry(e: &Emitter<'_>) -> Result<String, String> {
    let path: syn::Path = syn::parse_str(&e.w.target.entry)
        .map_err(|err| format!("the target's entry `{}`: {err}", e.w.target.entry))?;
    let heap = Literal::u64_unsuffixed(e.a.heap_mib * 1024 * 1024);
    let level = format_ident!("{}", e.a.log_level);
    unparse(
        quote!(#path!(connect_and_start, heap_bytes = #heap, log_level = #level);),
        "entry",
    )
}
