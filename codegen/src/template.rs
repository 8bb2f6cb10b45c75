//! The template language: text with `{{ name }}` placeholders, nothing else.
//!
//! Rust code is full of braces, so single braces are plain text; a placeholder is
//! `{{`, optional spaces, a name (`[A-Za-z_][A-Za-z0-9_.]*`), optional spaces, `}}`.
//! `\{{` stands for a literal `{{`.
//! Loops and conditions live in Rust (emit.rs), where they can be tested.

/// Replaces every placeholder with `lookup(name)`; an unknown name is an error.
pub fn render(
    text: &str,
    mut lookup: impl FnMut(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if rest[..open].ends_with('\\') {
            // `\{{` is a literal `{{`.
            out.push_str(&rest[..open - 1]);
            out.push_str("{{");
            rest = &rest[open + 2..];
            continue;
        }
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed placeholder `{{{{` in {text:?}"))?;
        let name = after[..close].trim();
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !valid {
            return Err(format!("bad placeholder `{{{{{}}}}}`", &after[..close]));
        }
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("unknown placeholder `{{{{ {name} }}}}`")),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn substitutes_and_keeps_rust_braces() {
        let out = render("X { a: {{ a }}, b: {{b}} }", |n| Some(n.to_uppercase()));
        assert_eq!(out.as_deref(), Ok("X { a: A, b: B }"));
        assert!(render("{{ nope }}", |_| None).is_err());
        assert!(render("{{ a", |_| Some(String::new())).is_err());
        assert!(render("{{ a b }}", |_| Some(String::new())).is_err());
        assert_eq!(
            render("\\{{ a }} {{ a }}", |_| Some("x".into())).as_deref(),
            Ok("{{ a }} x")
        );
    }
}
