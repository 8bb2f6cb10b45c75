//! The edits, as text in and text out: each keeps every other byte of the file as it
//! was, and refuses a shape it does not know rather than guessing.

/// The string value of `key` in the TOML table `[table]` (a plain `key = "value"` line).
pub fn table_string(text: &str, table: &str, key: &str) -> Option<String> {
    let mut inside = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            inside = l == format!("[{table}]");
            continue;
        }
        if inside
            && let Some((k, v)) = l.split_once('=')
            && k.trim() == key
        {
            let v = v.trim();
            return v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .map(str::to_string);
        }
    }
    None
}

/// The `members` of `[workspace]`, as written.
pub fn members(ws: &str) -> Vec<String> {
    let Some((start, end)) = members_span(ws) else {
        return Vec::new();
    };
    ws[start..end]
        .split(',')
        .filter_map(|m| {
            let m = m.trim();
            m.strip_prefix('"')?.strip_suffix('"').map(str::to_string)
        })
        .collect()
}

/// Byte range of the inside of `members = [ ... ]` in `[workspace]`.
fn members_span(ws: &str) -> Option<(usize, usize)> {
    let mut offset = 0;
    let mut inside = false;
    for line in ws.split_inclusive('\n') {
        let l = line.trim();
        if l.starts_with('[') {
            inside = l == "[workspace]";
        } else if inside
            && let Some((k, v)) = l.split_once('=')
            && k.trim() == "members"
        {
            let open = offset + line.find('[')?;
            let close = open + ws[open..].find(']')?;
            debug_assert!(v.contains('['));
            return Some((open + 1, close));
        }
        offset += line.len();
    }
    None
}

/// `ws` with `member` added to `[workspace] members`: after the last `appliances/`
/// member, one per line as the list is written.
pub fn add_member(ws: &str, member: &str) -> Result<String, String> {
    let by_hand = format!(
        "the workspace's Cargo.toml has no `members = [` list written one member per line\nhelp: add \"{member}\" to `members` in Cargo.toml by hand"
    );
    let (start, end) = members_span(ws).ok_or_else(|| by_hand.clone())?;
    let inner = &ws[start..end];
    if !inner.contains('\n') {
        return Err(by_hand);
    }
    if members(ws).iter().any(|m| m == member) {
        return Err(format!("{member} is already a workspace member"));
    }
    // The line after which to insert: the last `appliances/` entry, else the last entry.
    let (mut last_app, mut last_any) = (None, None);
    let mut indent = "    ".to_string();
    let mut offset = start;
    for line in inner.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('"') {
            indent = line[..line.len() - line.trim_start().len()].to_string();
            let here = Some((offset + line.len(), t.ends_with(',')));
            if t.starts_with("\"appliances/") {
                last_app = here;
            }
            last_any = here;
        }
        offset += line.len();
    }
    let at = last_app.or(last_any);
    let (pos, comma) = at.ok_or(by_hand)?;
    let mut out = String::with_capacity(ws.len() + member.len() + 8);
    if comma {
        out.push_str(&ws[..pos]);
    } else {
        // The entry before ends without a comma (the last one): give it one.
        let line_end = ws[..pos].trim_end_matches(['\n', '\r']).len();
        out.push_str(&ws[..line_end]);
        out.push(',');
        out.push_str(&ws[line_end..pos]);
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("{indent}\"{member}\",\n"));
    out.push_str(&ws[pos..]);
    Ok(out)
}

/// The starter's Cargo.toml for package `new`: `name` in `[package]` and in `[[bin]]`
/// tables renamed, the `[package.metadata.morgana]` table (which marks a starting point)
/// left out.
pub fn rename_package(manifest: &str, old: &str, new: &str) -> Result<String, String> {
    if table_string(manifest, "package", "name").as_deref() != Some(old) {
        return Err(format!(
            "the starting point's Cargo.toml does not have `name = \"{old}\"` in [package]"
        ));
    }
    let mut out = String::with_capacity(manifest.len());
    let mut section = String::new();
    let mut skipping = false;
    for line in manifest.split_inclusive('\n') {
        let l = line.trim();
        if l.starts_with('[') {
            section = l.to_string();
            skipping = section == "[package.metadata.morgana]";
        }
        if skipping {
            continue;
        }
        if (section == "[package]" || section == "[[bin]]")
            && let Some((k, v)) = l.split_once('=')
            && k.trim() == "name"
            && v.trim() == format!("\"{old}\"")
        {
            out.push_str(&line.replacen(&format!("\"{old}\""), &format!("\"{new}\""), 1));
            continue;
        }
        out.push_str(line);
    }
    // Leaving a table out must not leave two blank lines behind.
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    Ok(out)
}

/// The starter's appliance.ron for appliance `new`: every mention of the old name as a
/// whole word (`name: "hello"`, `-p hello`, `hello.xl`) renamed.
pub fn rename_appliance(ron: &str, old: &str, new: &str) -> Result<String, String> {
    if !ron.contains(&format!("name: \"{old}\"")) {
        return Err(format!(
            "the starting point's appliance.ron does not have `name: \"{old}\"`"
        ));
    }
    Ok(replace_word(ron, old, new))
}

/// `` `old` `` in Rust source (doc comments name the appliance so) becomes `` `new` ``.
pub fn rename_in_docs(text: &str, old: &str, new: &str) -> String {
    text.replace(&format!("`{old}`"), &format!("`{new}`"))
}

/// Replaces `old` where it stands as a whole name: not preceded or followed by a
/// letter, digit, `-` or `_`.
fn replace_word(text: &str, old: &str, new: &str) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut prev: Option<char> = None;
    while let Some(i) = rest.find(old) {
        let before = rest[..i].chars().next_back().or(prev);
        let after = rest[i + old.len()..].chars().next();
        out.push_str(&rest[..i]);
        if before.is_some_and(is_name) || after.is_some_and(is_name) {
            out.push_str(old);
        } else {
            out.push_str(new);
        }
        prev = old.chars().next_back();
        rest = &rest[i + old.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_added_after_the_appliances() {
        let ws = "[workspace]\nresolver = \"3\"\nmembers = [\n    \"codegen\",\n    \"appliances/hello\",\n    \"appliances/static-website\",\n    \"tests\",\n]\ndefault-members = [\"appliances/static-website\"]\n";
        let out = add_member(ws, "appliances/x").unwrap();
        assert_eq!(
            out,
            ws.replace(
                "\"appliances/static-website\",\n    \"tests\"",
                "\"appliances/static-website\",\n    \"appliances/x\",\n    \"tests\""
            )
        );
        assert_eq!(
            members(&out),
            [
                "codegen",
                "appliances/hello",
                "appliances/static-website",
                "appliances/x",
                "tests"
            ]
        );
        assert!(add_member(&out, "appliances/x").is_err());
        // No appliance yet, last entry without a comma.
        let ws = "[workspace]\nmembers = [\n  \"a\",\n  \"b\"\n]\n";
        assert_eq!(
            add_member(ws, "appliances/x").unwrap(),
            "[workspace]\nmembers = [\n  \"a\",\n  \"b\",\n  \"appliances/x\",\n]\n"
        );
        let one_line = "[workspace]\nmembers = [\"a\"]\n";
        assert!(
            add_member(one_line, "appliances/x")
                .unwrap_err()
                .contains("by hand")
        );
        assert!(add_member("[package]\nname = \"a\"\n", "x").is_err());
    }

    #[test]
    fn whole_words_only() {
        assert_eq!(
            replace_word(
                "hello hello-utils hello.xl -p hello\nxhello \"hello\"",
                "hello",
                "greeter"
            ),
            "greeter hello-utils greeter.xl -p greeter\nxhello \"greeter\""
        );
        assert_eq!(
            replace_word("static-website/static-website", "static-website", "s"),
            "s/s"
        );
    }

    #[test]
    fn tables() {
        let m = "[package]\nname = \"a\"\n\n[package.metadata.morgana]\nstarter = \"does x\"\n";
        assert_eq!(table_string(m, "package", "name").as_deref(), Some("a"));
        assert_eq!(
            table_string(m, "package.metadata.morgana", "starter").as_deref(),
            Some("does x")
        );
        assert_eq!(table_string(m, "dependencies", "name"), None);
        assert!(rename_package(m, "b", "c").is_err());
        assert_eq!(
            rename_package(m, "a", "c").unwrap(),
            "[package]\nname = \"c\"\n\n"
        );
    }
}
