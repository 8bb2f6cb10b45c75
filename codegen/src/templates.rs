//! The template engine: minijinja, with every template file compiled into codegen by
//! include_dir (a changed template rebuilds codegen; nothing is looked up at run time).
//!
//! - `codegen/templates/`: what codegen writes itself: the skeleton of `appliance.rs`,
//!   `report.txt`, the reference `schemas/README.md`.
//! - `schemas/templates/`: the catalog's: deployment files (`qemu.args.jinja`, ...) and
//!   pieces of component code that catalog entries `{% include %}`.
//!
//! Block tags take their line with them (`trim_blocks`, `lstrip_blocks`); a template's
//! last newline is kept (a template that must not end in one ends with `{#- -#}`).
//! Undefined variables are errors, so a misspelt name in a template fails the catalog's
//! validation or the golden tests instead of rendering nothing. Output is escaped by the
//! template's extension (before `.jinja`): `.xml`/`.html` as HTML/XML, `.json` as JSON,
//! everything else (Rust, QEMU arguments, xl configs) not at all.

use std::fmt;
use std::sync::Arc;

use include_dir::{Dir, include_dir};
use minijinja::value::{Object, ObjectRepr, Value};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

static CODEGEN_TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");
static CATALOG_TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../schemas/templates");

/// How a template's output is escaped, from its name.
pub fn escape_for(name: &str) -> AutoEscape {
    let name = name.strip_suffix(".jinja").unwrap_or(name);
    match name.rsplit('.').next().unwrap_or("") {
        "xml" | "html" => AutoEscape::Custom("xml".into()),
        "json" => AutoEscape::Json,
        _ => AutoEscape::None,
    }
}

fn add_dir(env: &mut Environment<'static>, dir: &'static Dir<'static>) {
    for entry in dir.entries() {
        if let Some(sub) = entry.as_dir() {
            add_dir(env, sub);
        } else if let Some(file) = entry.as_file() {
            let name = file.path().to_str().unwrap_or_default();
            let text = file.contents_utf8().unwrap_or_default();
            // A template with a syntax error is left out: rendering it then fails with
            // "template not found", and the unit tests compile every template.
            let _ = env.add_template(name, text);
        }
    }
}

/// Names of the templates compiled in (both directories).
pub fn names() -> Vec<String> {
    fn walk(dir: &'static Dir<'static>, out: &mut Vec<String>) {
        for entry in dir.entries() {
            if let Some(sub) = entry.as_dir() {
                walk(sub, out);
            } else if let Some(p) = entry.as_file().and_then(|f| f.path().to_str()) {
                out.push(p.to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(&CODEGEN_TEMPLATES, &mut out);
    walk(&CATALOG_TEMPLATES, &mut out);
    out
}

/// Whether a template file of this name is compiled in.
pub fn exists(name: &str) -> bool {
    CODEGEN_TEMPLATES.get_file(name).is_some() || CATALOG_TEMPLATES.get_file(name).is_some()
}

/// The environment every template renders in (built once: it compiles every template).
pub fn environment() -> &'static Environment<'static> {
    static ENV: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(build)
}

fn build() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(escape_for);
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    // minijinja's `builtins` feature (about 50 filters, tests and functions) costs a
    // quarter of its compile time in every appliance's clean build; the templates use
    // three of them, defined here with the same meaning.
    // `{{ names | join(", ") }}`: the items as text, with a separator between them.
    env.add_filter("join", |items: Vec<Value>, sep: Option<String>| {
        let sep = sep.unwrap_or_default();
        items
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(&sep)
    });
    // `{{ value | string }}`: a value as it renders (a key's value: its text).
    env.add_filter("string", |v: Value| v.to_string());
    // `{% if path is startingwith("/") %}`.
    env.add_test("startingwith", |v: String, prefix: String| {
        v.starts_with(&prefix)
    });
    // `{{ text | pad(10) }}`: left-aligned in 10 columns (characters).
    env.add_filter("pad", |s: String, width: usize| {
        let n = s.chars().count();
        format!("{s}{}", " ".repeat(width.saturating_sub(n)))
    });
    env.set_formatter(|out, state, value| {
        let xml = matches!(state.auto_escape(), AutoEscape::Custom(n) if n == "xml");
        if xml && !value.is_safe() {
            if value.is_none() {
                return Ok(());
            }
            let text = value.to_string();
            out.write_str(&xml_escape(&text))?;
            Ok(())
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    add_dir(&mut env, &CODEGEN_TEMPLATES);
    add_dir(&mut env, &CATALOG_TEMPLATES);
    env
}

/// XML's five predefined entities, and nothing else (minijinja's HTML escaping also
/// writes `/` as `&#x2f;`, valid but unreadable in a path).
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A minijinja error with its chain of causes (the template and line it happened in).
pub fn error_text(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    if let Some(name) = e.name() {
        if let Some(line) = e.line() {
            s.push_str(&format!(" (in {name}, line {line})"));
        } else {
            s.push_str(&format!(" (in {name})"));
        }
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

/// Renders template `name` (a file) with `ctx`.
pub fn render(env: &Environment<'_>, name: &str, ctx: Value) -> Result<String, String> {
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| error_text(&e))
}

/// Renders a template written inline (in the catalog) under `name` (for messages).
pub fn render_inline(
    env: &Environment<'_>,
    name: &str,
    source: &str,
    ctx: Value,
) -> Result<String, String> {
    env.render_named_str(name, source, ctx)
        .map_err(|e| error_text(&e))
}

/// A key's value in a template: renders as a Rust literal in code (`"tap0"`,
/// `Some([10, 0, 2, 2])`) and as plain text in deployment files (`tap0`, `10.0.2.2`);
/// `.variant` is its identifier (`Dhcp`) or none, `.address`/`.prefix_len` the parts
/// of an address with a prefix length; false in a condition when an optional key is
/// not set.
#[derive(Debug)]
pub struct KeyValue {
    /// How it renders.
    pub text: String,
    /// The identifier, for a `Choice` or an `or` variant.
    pub variant: Option<String>,
    /// Named parts: (`address`, ..), (`prefix_len`, ..).
    pub parts: Vec<(&'static str, String)>,
    /// False for an optional key that is not set and for a boolean that is false.
    pub set: bool,
}

impl Object for KeyValue {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "variant" => Some(self.variant.clone().map_or(Value::from(()), Value::from)),
            k => self
                .parts
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| Value::from(v.clone())),
        }
    }

    fn is_true(self: &Arc<Self>) -> bool {
        self.set
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A stand-in used to check templates when the catalog is loaded: renders as its own
/// name, and so does any attribute of it; true in conditions.
#[derive(Debug)]
pub struct Placeholder(pub String);

impl Object for Placeholder {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Value::from_object(Placeholder(format!(
            "{}.{}",
            self.0,
            key.as_str().unwrap_or("?")
        ))))
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_names_are_unique() {
        let env = environment();
        let names = names();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "a template name is used twice");
        for n in &names {
            let text = CODEGEN_TEMPLATES
                .get_file(n)
                .or_else(|| CATALOG_TEMPLATES.get_file(n))
                .and_then(|f| f.contents_utf8())
                .unwrap_or_default();
            if let Err(e) = env.template_from_named_str(n, text) {
                panic!("{n}: {}", error_text(&e));
            }
            assert!(env.get_template(n).is_ok(), "{n} is registered");
        }
    }

    #[test]
    fn xml_and_json_are_escaped_for_their_format_rust_and_xl_are_not() {
        let env = environment();
        let ctx = minijinja::context! { v => "a<b>&\"c\"" };
        let out = |name: &str| env.render_named_str(name, "{{ v }}", ctx.clone()).unwrap();
        assert_eq!(out("domain.xml.jinja"), "a&lt;b&gt;&amp;&quot;c&quot;");
        let path = minijinja::context! { v => "/srv/it's" };
        let xml = env
            .render_named_str("domain.xml.jinja", "{{ v }}", path)
            .unwrap();
        assert_eq!(xml, "/srv/it&apos;s");
        assert_eq!(out("vm.json.jinja"), "\"a<b>&\\\"c\\\"\"");
        assert_eq!(out("domain.xl.jinja"), "a<b>&\"c\"");
        assert_eq!(out("appliance.rs.jinja"), "a<b>&\"c\"");
    }

    /// The filters and tests the templates use, which codegen defines (minijinja is
    /// built without its `builtins`).
    #[test]
    fn the_filters_and_tests_templates_use_are_defined() {
        let env = environment();
        let key = Value::from_object(KeyValue {
            text: "/srv/disk.img".into(),
            variant: None,
            parts: Vec::new(),
            set: true,
        });
        let ctx = minijinja::context! { v => vec!["a", "b\""], key => key };
        let out = |t: &str| env.render_str(t, ctx.clone()).unwrap();
        assert_eq!(out("{{ v | join(\", \") }}"), "a, b\"");
        assert_eq!(out("{{ v | join }}"), "ab\"");
        assert_eq!(out("{{ [] | join(\", \") }}"), "");
        assert_eq!(out("{{ key | string }}"), "/srv/disk.img");
        let starts = |prefix: &str| {
            out(&format!(
                "{{% if key|string is startingwith(\"{prefix}\") %}}yes{{% else %}}no{{% endif %}}"
            ))
        };
        assert_eq!(starts("/"), "yes");
        assert_eq!(starts("/srv/"), "yes");
        assert_eq!(starts("srv"), "no");
        assert_eq!(out("{{ \"ab\" | pad(3) }}|"), "ab |");
    }

    #[test]
    fn undefined_variables_are_errors() {
        let env = environment();
        assert!(env.render_str("{{ nope }}", ()).is_err());
    }
}
