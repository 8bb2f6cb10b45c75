//! Emission: the wiring as Rust source (already formatted the way rustfmt would
//! format it), the report, and the target's deployment files.
//!
//! Layout rules mirror rustfmt's defaults for the few shapes emitted here: lines are at
//! most 100 columns, a call's arguments go one per line when together they are wider
//! than 60 columns (several to a line if each is at most 10 wide), a method chain goes
//! one call per line when wider than 60, a `let` or item whose first line does not fit
//! continues its right-hand side on the next line. An item
//! whose text cannot fit (a very long string, say) is marked `#[rustfmt::skip]` so
//! that the output stays rustfmt-stable whatever the input.

use crate::catalog::{Catalog, Code, Component, FileDir, KeySpec};
use crate::diag::{Diagnostic, Span};
use crate::model::{Appliance, Device, Origin, Scalar};
use crate::names;
use crate::template;
use crate::wire::{Chosen, NodeKind, Wiring};

const MAX_WIDTH: usize = 100;
const FN_CALL_WIDTH: usize = 60;
const CHAIN_WIDTH: usize = 60;
/// Arguments at most this wide are packed several to a line when a call is broken.
const SHORT_ITEM_WIDTH: usize = 10;

const APPLIANCE_TEMPLATE: &str = include_str!("../templates/appliance.rs.tmpl");
const REPORT_TEMPLATE: &str = include_str!("../templates/report.txt.tmpl");

/// What emission produces.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// `appliance.rs`.
    pub rust: String,
    /// `report.txt`.
    pub report: String,
    /// Deployment files of the target.
    pub files: Vec<DeployFile>,
    /// Deployment files that other targets write and this one does not: a build for
    /// this target deletes them (their `text` is empty).
    pub stale: Vec<DeployFile>,
    /// Crates the generated code uses (package names, sorted).
    pub crates: Vec<String>,
}

struct Emitter<'a> {
    a: &'a Appliance,
    cat: &'a Catalog,
    w: &'a Wiring<'a>,
    file: &'a str,
    /// The binary's path for deployment files (`{{ binary }}`).
    binary: &'a str,
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn too_wide(text: &str) -> bool {
    text.lines().any(|l| width(l) > MAX_WIDTH)
}

/// Prefixes `#[rustfmt::skip]` when the item cannot be laid out within the width.
fn item(text: String) -> String {
    if too_wide(&text) {
        format!("#[rustfmt::skip]\n{text}")
    } else {
        text
    }
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `callee(args)` laid out as rustfmt would at indentation `ind` after `prefix`
/// (text already on the first line); macros get no trailing comma.
fn call(prefix: &str, callee: &str, args: &[String], ind: usize, is_macro: bool) -> String {
    let joined = args.join(", ");
    let one = format!("{}{prefix}{callee}({joined})", " ".repeat(ind));
    let multiline_arg = args.iter().any(|a| a.contains('\n'));
    if !multiline_arg && width(&joined) <= FN_CALL_WIDTH && width(&one) <= MAX_WIDTH {
        return format!("{prefix}{callee}({joined})");
    }
    let comma = if is_macro { "" } else { "," };
    if !multiline_arg && args.iter().all(|a| width(a) <= SHORT_ITEM_WIDTH) {
        // Short arguments are packed onto as few lines as fit.
        let room = MAX_WIDTH - ind - 4;
        let mut lines: Vec<String> = vec![String::new()];
        for (i, a) in args.iter().enumerate() {
            let sep = if i + 1 < args.len() { "," } else { comma };
            let piece = format!("{a}{sep}");
            let last = lines.last_mut().expect("one line");
            if last.is_empty() {
                last.push_str(&piece);
            } else if width(last) + 1 + width(&piece) <= room {
                last.push(' ');
                last.push_str(&piece);
            } else {
                lines.push(piece);
            }
        }
        let body: Vec<String> = lines.iter().map(|l| format!("    {l}")).collect();
        return format!("{prefix}{callee}(\n{}\n)", body.join("\n"));
    }
    // Continuation lines are relative to the first line's indentation.
    let mut s = format!("{prefix}{callee}(\n");
    for (i, a) in args.iter().enumerate() {
        s.push_str(&indent(a, 4));
        s.push_str(if i + 1 < args.len() { "," } else { comma });
        s.push('\n');
    }
    s.push(')');
    s
}

/// `<head> <rhs>;` (a `const`, `static` or `type` item whose `head` ends in `=`) at
/// indentation `ind`: on one line if it fits, else with the right-hand side on the next
/// line, else unformattable and marked `#[rustfmt::skip]`. Relative to `ind`.
fn assign(head: &str, rhs: &str, ind: usize) -> String {
    let one = format!("{head} {rhs};");
    if !rhs.contains('\n') && ind + width(&one) <= MAX_WIDTH {
        return one;
    }
    if !rhs.contains('\n') && ind + width(head) <= MAX_WIDTH && ind + 4 + width(rhs) < MAX_WIDTH {
        return format!("{head}\n    {rhs};");
    }
    format!("#[rustfmt::skip]\n{one}")
}

/// `<head>.await.map_err(..)` at indentation `ind`, after `prefix` on the first line.
fn await_chain(prefix: &str, head: &str, device: &str, ind: usize, suffix: &str) -> String {
    try_chain(prefix, head, device, ind, suffix, true)
}

/// `<head>[.await].map_err(..)` at indentation `ind`, after `prefix` on the first line.
fn try_chain(
    prefix: &str,
    head: &str,
    device: &str,
    ind: usize,
    suffix: &str,
    awaited: bool,
) -> String {
    let map_err = format!(".map_err(|e| StartError::new({device:?}, &e))");
    let pad = " ".repeat(ind);
    if !head.contains('\n') && !awaited {
        // A chain of one call is not held to the chain width: rustfmt keeps it on one
        // line if it fits, else moves it after `let x =` if it fits there, else breaks
        // it before `.map_err`. "Fits" leaves two columns free before a `?;` end (rustfmt
        // reserves room for the `?` on top of writing it; measured with rustfmt 1.9).
        let room = if suffix == "?;" {
            MAX_WIDTH - 2
        } else {
            MAX_WIDTH
        };
        let chain = format!("{head}{map_err}");
        let one = format!("{pad}{prefix}{chain}{suffix}");
        if width(&one) <= room {
            return one;
        }
        let next = format!("{pad}    {chain}{suffix}");
        if !prefix.is_empty() && width(&next) <= room {
            return format!("{pad}{}\n{next}", prefix.trim_end());
        }
        return format!("{pad}{prefix}{head}\n{pad}    {map_err}{suffix}");
    }
    if !head.contains('\n') {
        let chain = format!("{head}.await{map_err}");
        let one = format!("{pad}{prefix}{chain}{suffix}");
        if width(&chain) <= CHAIN_WIDTH && width(&one) <= MAX_WIDTH {
            return one;
        }
        if !prefix.is_empty() && width(&format!("{pad}{prefix}{head}")) >= MAX_WIDTH {
            // `let x =` and the chain's first line do not fit together: break after `=`.
            let prefix = prefix.trim_end();
            return format!(
                "{pad}{prefix}\n{pad}    {head}\n{pad}        .await\n{pad}        {map_err}{suffix}"
            );
        }
        return format!("{pad}{prefix}{head}\n{pad}    .await\n{pad}    {map_err}{suffix}");
    }
    let mut lines = head.lines();
    let first = lines.next().unwrap_or_default();
    let mut s = format!("{pad}{prefix}{first}");
    for l in lines {
        s.push('\n');
        if !l.is_empty() {
            s.push_str(&pad);
            s.push_str(l);
        }
    }
    if awaited {
        format!("{s}\n{pad}.await\n{pad}{map_err}{suffix}")
    } else {
        format!("{s}\n{pad}{map_err}{suffix}")
    }
}

/// A statement marked `#[rustfmt::skip]` when it cannot fit.
fn skip_if_too_wide(stmt: String) -> String {
    if too_wide(&stmt) {
        format!("    #[rustfmt::skip]\n{stmt}")
    } else {
        stmt
    }
}

/// Whether template `text` uses placeholder `name`.
fn uses(text: &str, name: &str) -> bool {
    crate::catalog::placeholders(text).iter().any(|p| p == name)
}

/// A key's value as a Rust literal: `Some(..)` or `None` for an optional key.
fn literal(spec: &KeySpec, value: &Scalar) -> String {
    match (spec.optional, value) {
        (true, Scalar::Absent) => "None".into(),
        (true, v) => format!("Some({})", v.rust()),
        (false, v) => v.rust(),
    }
}

/// A deployment file, rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct DeployFile {
    /// Its name.
    pub name: String,
    /// Where it goes.
    pub dir: FileDir,
    /// Its contents.
    pub text: String,
}

impl Emitter<'_> {
    fn loc(&self, span: Span) -> String {
        format!("{}:{}:{}", self.file, span.line, span.col)
    }

    fn origin(&self, o: Origin) -> String {
        match o {
            Origin::Source(s) => self.loc(s),
            Origin::Default => "default".into(),
            Origin::TargetDefault => format!("default on {}", self.w.target.name),
            Origin::Env => "from MORGANA_TARGET".into(),
        }
    }

    fn device(&self, node: usize) -> Option<(&Device, &Component)> {
        match self.w.nodes[node].kind {
            NodeKind::Declared(i) => {
                let d = &self.a.devices[i];
                Some((d, self.cat.component(&d.component)?))
            }
            NodeKind::Platform(_) => None,
        }
    }

    fn alias(&self, node: usize) -> String {
        names::camel(&self.w.nodes[node].name)
    }

    fn static_name(&self, node: usize) -> String {
        names::screaming(&self.w.nodes[node].name)
    }

    fn const_name(&self, node: usize, key: &str) -> String {
        format!(
            "{}_{}",
            names::screaming(&self.w.nodes[node].name),
            names::screaming(key)
        )
    }

    /// The type of node `n` as used in another device's type.
    fn type_of(&self, n: usize) -> Result<String, String> {
        match &self.w.chosen[n] {
            Some(Chosen::Platform(p)) => Ok(p.ty.clone()),
            Some(Chosen::Component(imp)) => match &imp.code {
                Code::Connect { .. } => Ok(self.alias(n)),
                Code::Static { .. } => Ok(format!("&'static {}", self.rendered_type(n)?)),
                _ => Err("no implementation".into()),
            },
            None => Err("not included".into()),
        }
    }

    /// The value of node `n` as passed to another device or to main.
    fn value_of(&self, n: usize) -> String {
        match &self.w.chosen[n] {
            Some(Chosen::Component(imp)) if matches!(imp.code, Code::Static { .. }) => {
                format!("&{}", self.static_name(n))
            }
            _ => self.w.nodes[n].name.clone(),
        }
    }

    /// The rendered type template of a declared node.
    fn rendered_type(&self, n: usize) -> Result<String, String> {
        let Some(Chosen::Component(imp)) = &self.w.chosen[n] else {
            return Err("not a component".into());
        };
        let ty = match &imp.code {
            Code::Connect { ty, .. } | Code::Static { ty, .. } => ty,
            _ => return Err("no implementation".into()),
        };
        let deps = &self.w.nodes[n].deps;
        let mut failure = None;
        let out = template::render(ty, |name| {
            let b = deps.iter().find(|b| b.key == name)?;
            match self.type_of(b.node) {
                Ok(t) => Some(t),
                Err(e) => {
                    failure = Some(e);
                    Some(String::new())
                }
            }
        })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Renders a value template (`connect`, `init`, a `prepare` step) of declared node
    /// `n`; `steps` are the `prepare` values made so far: (name, variable).
    fn rendered_value(
        &self,
        n: usize,
        text: &str,
        platform: &str,
        steps: &[(String, String)],
    ) -> Result<String, String> {
        let Some((dev, comp)) = self.device(n) else {
            return Err("not a component".into());
        };
        template::render(text, |name| {
            if name == "Self" {
                return Some(self.alias(n));
            }
            if name == "platform" {
                return Some(platform.to_string());
            }
            if let Some(b) = self.w.nodes[n].deps.iter().find(|b| b.key == name) {
                return Some(self.value_of(b.node));
            }
            if let Some((_, var)) = steps.iter().find(|(s, _)| s == name) {
                return Some(var.clone());
            }
            if let Some(key) = name.strip_prefix("config.") {
                return comp
                    .keys
                    .iter()
                    .any(|k| k.name == key && k.as_const)
                    .then(|| format!("config::{}", self.const_name(n, key)));
            }
            if let Some((key, part)) = name.split_once('.') {
                return match (dev.setting(key).map(|s| &s.value), part) {
                    (Some(Scalar::Ipv4Cidr(a, _)), "address") => Some(Scalar::Ipv4(*a).rust()),
                    (Some(Scalar::Ipv4Cidr(_, len)), "prefix_len") => Some(len.to_string()),
                    _ => None,
                };
            }
            let spec = comp.keys.iter().find(|k| k.name == name)?;
            dev.setting(name).map(|s| literal(spec, &s.value))
        })
    }

    /// The contributions of the included devices to deployment slot `slot`, in
    /// connect order; `visiting` guards against slots that contain themselves.
    fn slot(&self, slot: &str, visiting: &mut Vec<String>) -> Result<String, String> {
        if visiting.iter().any(|v| v == slot) {
            return Err(format!("deploy slot `{slot}` contains itself"));
        }
        visiting.push(slot.to_string());
        let mut out = String::new();
        for &n in &self.w.order {
            let (Some(Chosen::Component(imp)), Some((dev, _))) =
                (&self.w.chosen[n], self.device(n))
            else {
                continue;
            };
            for (_, text) in imp.deploy.iter().filter(|(s, _)| s == slot) {
                let mut failure = None;
                let piece = template::render(text, |name| {
                    if let Some(inner) = name.strip_prefix("deploy.") {
                        return match self.slot(inner, visiting) {
                            Ok(v) => Some(v),
                            Err(e) => {
                                failure = Some(e);
                                Some(String::new())
                            }
                        };
                    }
                    match name.split_once('.') {
                        Some((key, part)) => match (dev.setting(key).map(|s| &s.value), part) {
                            (Some(Scalar::Ipv4Cidr(a, _)), "address") => {
                                Some(Scalar::Ipv4(*a).plain())
                            }
                            (Some(Scalar::Ipv4Cidr(_, len)), "prefix_len") => Some(len.to_string()),
                            // An optional key as an item of a comma-separated list.
                            (Some(Scalar::Absent), "item") => Some(String::new()),
                            (Some(v), "item") => Some(format!("{key}={},", v.plain())),
                            _ => None,
                        },
                        None => dev.setting(name).map(|s| s.value.plain()),
                    }
                })?;
                if let Some(e) = failure {
                    return Err(e);
                }
                out.push_str(&piece);
            }
        }
        visiting.pop();
        Ok(out)
    }

    /// Renders a deployment file template (a name or a text).
    fn file_template(&self, text: &str, target: &str) -> Result<String, String> {
        let mut failure = None;
        let out = template::render(text, |k| {
            if let Some(slot) = k.strip_prefix("deploy.") {
                return match self.slot(slot, &mut Vec::new()) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        failure = Some(e);
                        Some(String::new())
                    }
                };
            }
            Some(match k {
                "name" => self.a.name.clone(),
                "file" => self.file.to_string(),
                "target" => target.to_string(),
                "heap_mib" => self.a.heap_mib.to_string(),
                "memory_mib" => self.a.memory_mib.to_string(),
                "binary" => self.binary.to_string(),
                _ => return None,
            })
        })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// The target's deployment files, and the ones other targets write that this one
    /// does not (stale after switching target).
    fn files(&self) -> Result<(Vec<DeployFile>, Vec<DeployFile>), String> {
        let target = self.w.target;
        let mut files = Vec::new();
        for f in &target.files {
            files.push(DeployFile {
                name: self.file_template(&f.name, &target.name)?,
                dir: f.dir,
                text: self.file_template(&f.text, &target.name)?,
            });
        }
        let mut stale: Vec<DeployFile> = Vec::new();
        for t in self.cat.targets.iter().filter(|t| t.name != target.name) {
            for f in &t.files {
                let name = self.file_template(&f.name, &t.name)?;
                let written = files.iter().any(|w| w.name == name && w.dir == f.dir);
                let listed = stale.iter().any(|w| w.name == name && w.dir == f.dir);
                if !written && !listed {
                    stale.push(DeployFile {
                        name,
                        dir: f.dir,
                        text: String::new(),
                    });
                }
            }
        }
        Ok((files, stale))
    }

    /// `Network(stack: Host) on unix` / `Crunch(dir: "htdocs")` / `HttpServer`.
    fn long_description(&self, n: usize) -> String {
        let Some((dev, comp)) = self.device(n) else {
            return String::new();
        };
        let shown: Vec<String> = comp
            .keys
            .iter()
            .filter(|k| !k.as_const)
            .filter_map(|k| dev.setting(&k.name))
            .filter(|s| s.value != Scalar::Absent)
            .map(|s| format!("{}: {}", s.key, s.value.ron()))
            .collect();
        let mut s = if shown.is_empty() {
            comp.name.clone()
        } else {
            format!("{}({})", comp.name, shown.join(", "))
        };
        if let Some(Chosen::Component(imp)) = &self.w.chosen[n]
            && imp.target_specific()
        {
            s.push_str(&format!(" on {}", self.w.target.name));
        }
        s
    }

    fn is_static(&self, n: usize) -> bool {
        matches!(&self.w.chosen[n], Some(Chosen::Component(imp)) if matches!(imp.code, Code::Static { .. }))
    }

    /// Rows of the included table: platform devices, connected devices, statics.
    fn included_rows(&self) -> Result<Vec<[String; 4]>, String> {
        let w = self.w;
        let mut rows = Vec::new();
        let platform = w
            .order
            .iter()
            .filter(|&&n| matches!(w.nodes[n].kind, NodeKind::Platform(_)));
        let connected = w
            .order
            .iter()
            .filter(|&&n| matches!(w.nodes[n].kind, NodeKind::Declared(_)) && !self.is_static(n));
        let statics = w.order.iter().filter(|&&n| self.is_static(n));
        for &n in platform.chain(connected).chain(statics) {
            let node = &w.nodes[n];
            let why = w.reasons[n].join("; ");
            match (&w.chosen[n], self.device(n)) {
                (Some(Chosen::Platform(p)), _) => {
                    let title = match node.kind {
                        NodeKind::Platform(i) => self.cat.platform_devices[i].title.clone(),
                        NodeKind::Declared(_) => String::new(),
                    };
                    rows.push([
                        node.name.clone(),
                        title,
                        p.ty.clone(),
                        format!("platform device; {why}"),
                    ]);
                }
                (_, Some((dev, comp))) => {
                    let mut ty = self.rendered_type(n)?;
                    if let Some(i) = ty.find('<') {
                        ty.truncate(i);
                        ty.push_str("<..>");
                    }
                    let choices: Vec<String> = crate::wire::selectors(dev, comp)
                        .map(|s| s.value.ron())
                        .collect();
                    let title = if choices.is_empty() {
                        comp.name.clone()
                    } else {
                        format!("{}({})", comp.name, choices.join(", "))
                    };
                    rows.push([
                        node.name.clone(),
                        title,
                        ty,
                        format!("{}; {why}", self.loc(dev.component_span)),
                    ]);
                }
                _ => {}
            }
        }
        Ok(rows)
    }

    fn left_out_rows(&self) -> Vec<[String; 2]> {
        let w = self.w;
        let mut rows = Vec::new();
        for (n, node) in w.nodes.iter().enumerate() {
            if w.included(n) {
                continue;
            }
            let why = match node.kind {
                NodeKind::Platform(_) => "nothing requires it".to_string(),
                NodeKind::Declared(i) => format!(
                    "{}: declared, but neither started nor required",
                    self.loc(self.a.devices[i].component_span)
                ),
            };
            rows.push([node.name.clone(), why]);
        }
        // Subsystems: components the target offers whose signatures nothing here needs.
        for comp in &self.cat.components {
            if comp.provides.is_empty() || self.a.devices.iter().any(|d| d.component == comp.name) {
                continue;
            }
            let available = comp.impls.iter().any(|imp| {
                imp.for_target(&w.target.name)
                    && matches!(imp.code, Code::Connect { .. } | Code::Static { .. })
            });
            let provided = w.order.iter().any(|&n| {
                w.nodes[n]
                    .provides
                    .iter()
                    .any(|p| comp.provides.contains(p))
            });
            if available && !provided {
                let what = if comp.title.is_empty() {
                    let sigs: Vec<String> =
                        comp.provides.iter().map(|p| format!("`{p}`")).collect();
                    names::and_list(&sigs)
                } else {
                    comp.title.clone()
                };
                rows.push([comp.name.clone(), format!("{what}: nothing requires it")]);
            }
        }
        rows
    }

    /// Lines for the keys ignored on this target (with a heading and a leading line
    /// break), or nothing.
    fn ignored(&self, prefix: &str) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        for d in &self.a.devices {
            let Some(comp) = self.cat.component(&d.component) else {
                continue;
            };
            for (key, span) in &d.ignored {
                let only = comp
                    .keys
                    .iter()
                    .find(|k| &k.name == key)
                    .map(|k| k.targets.join(", "))
                    .unwrap_or_default();
                rows.push((
                    format!("{}.{key}", d.name),
                    format!("{}; used on {only} only", self.loc(*span)),
                ));
            }
        }
        if rows.is_empty() {
            return String::new();
        }
        let w = rows.iter().map(|r| width(&r.0)).max().unwrap_or(0);
        // `//   ` -> `// `, `  ` -> ``: the heading one level out.
        let head = if prefix.starts_with("//") { "// " } else { "" };
        let mut s = format!("\n{head}Ignored on {}:", self.w.target.name);
        for (k, why) in rows {
            s.push_str(&format!("\n{prefix}{k:<w$}  {why}"));
        }
        s
    }

    fn tables(&self, prefix: &str) -> Result<(String, String), String> {
        let inc = self.included_rows()?;
        let out = self.left_out_rows();
        let name_w = inc
            .iter()
            .map(|r| width(&r[0]))
            .chain(out.iter().map(|r| width(&r[0])))
            .max()
            .unwrap_or(0);
        let col = |i: usize| inc.iter().map(|r| width(&r[i])).max().unwrap_or(0);
        let (w1, w2) = (col(1), col(2));
        let included = if inc.is_empty() {
            format!("{prefix}nothing")
        } else {
            inc.iter()
                .map(|r| {
                    format!(
                        "{prefix}{:<name_w$}  {:<w1$}  {:<w2$}  {}",
                        r[0], r[1], r[2], r[3]
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mut left_out = if out.is_empty() {
            format!("{prefix}nothing")
        } else {
            out.iter()
                .map(|r| format!("{prefix}{:<name_w$}  {}", r[0], r[1]))
                .collect::<Vec<_>>()
                .join("\n")
        };
        left_out.push_str(&self.ignored(prefix));
        Ok((included, left_out))
    }

    fn aliases(&self) -> Result<String, String> {
        let mut s = String::new();
        for &n in &self.w.order {
            let Some((dev, _)) = self.device(n) else {
                continue;
            };
            if self.is_static(n) {
                continue;
            }
            let doc = format!(
                "/// `{}`: {} ({}).\n",
                dev.name,
                self.long_description(n),
                self.loc(dev.component_span)
            );
            let ty = self.rendered_type(n)?;
            s.push_str(&doc);
            s.push_str(&assign(&format!("pub type {} =", self.alias(n)), &ty, 0));
            s.push('\n');
        }
        if !s.is_empty() {
            s.push('\n');
        }
        Ok(s)
    }

    fn config(&self) -> String {
        let mut items: Vec<String> = Vec::new();
        for c in &self.a.config {
            let ty = match &c.value {
                Scalar::Str(_) => "&str",
                Scalar::Int(i) if *i < 0 => "i64",
                Scalar::Int(_) => "u64",
                Scalar::Bool(_) => "bool",
                _ => "f64",
            };
            items.push(format!(
                "/// `config.{}` ({}).\n{}",
                c.key,
                self.loc(c.span),
                assign(
                    &format!("pub const {}: {ty} =", names::screaming(&c.key)),
                    &c.value.rust(),
                    4
                )
            ));
        }
        for &n in &self.w.order {
            let Some((dev, comp)) = self.device(n) else {
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
                items.push(format!(
                    "/// `{}.{}` ({}).\n{}",
                    dev.name,
                    k.name,
                    self.origin(s.origin),
                    assign(
                        &format!("pub const {}: {ty} =", self.const_name(n, &k.name)),
                        &literal(k, &s.value),
                        4
                    )
                ));
            }
        }
        if items.is_empty() {
            return "pub mod config {}".into();
        }
        let body: Vec<String> = items.iter().map(|i| indent(i, 4)).collect();
        format!("pub mod config {{\n{}\n}}", body.join("\n"))
    }

    fn statics(&self) -> Result<String, String> {
        let mut s = String::new();
        for &n in &self.w.order {
            if !self.is_static(n) {
                continue;
            }
            let Some((dev, _)) = self.device(n) else {
                continue;
            };
            let Some(Chosen::Component(imp)) = &self.w.chosen[n] else {
                continue;
            };
            let Code::Static { init, .. } = &imp.code else {
                continue;
            };
            s.push_str(&format!(
                "/// `{}`: {} ({}).\n",
                dev.name,
                self.long_description(n),
                self.loc(dev.component_span)
            ));
            let init = self.rendered_value(n, init, "platform", &[])?;
            s.push_str(&assign(
                &format!(
                    "pub static {}: {} =",
                    self.static_name(n),
                    self.rendered_type(n)?
                ),
                &init,
                0,
            ));
            s.push_str("\n\n");
        }
        Ok(s)
    }

    fn connect_and_start(&self) -> Result<String, String> {
        let w = self.w;
        let mut stmts: Vec<String> = Vec::new();
        let mut uses_platform = false;
        for &n in &w.order {
            let name = &w.nodes[n].name;
            match &w.chosen[n] {
                Some(Chosen::Platform(p)) => {
                    let expr = template::render(&p.expr, |k| {
                        (k == "platform").then(|| "platform".to_string())
                    })?;
                    uses_platform |= expr.contains("platform");
                    stmts.push(format!("    let {name} = {expr};"));
                }
                Some(Chosen::Component(imp)) => {
                    let Code::Connect {
                        prepare, connect, ..
                    } = &imp.code
                    else {
                        continue;
                    };
                    let mut steps: Vec<(String, String)> = Vec::new();
                    for (step, text) in prepare {
                        uses_platform |= uses(text, "platform");
                        let var = format!("{name}_{step}");
                        let head = self.rendered_value(n, text, "platform", &steps)?;
                        // A step ending in `.await` is laid out as an awaited chain.
                        let (head, awaited) = match head.strip_suffix(".await") {
                            Some(h) => (h.to_string(), true),
                            None => (head, false),
                        };
                        let stmt =
                            try_chain(&format!("let {var} = "), &head, name, 4, "?;", awaited);
                        stmts.push(skip_if_too_wide(stmt));
                        steps.push((step.clone(), var));
                    }
                    uses_platform |= uses(connect, "platform");
                    let head = self.rendered_value(n, connect, "platform", &steps)?;
                    let stmt = await_chain(&format!("let {name} = "), &head, name, 4, "?;");
                    stmts.push(skip_if_too_wide(stmt));
                }
                None => {}
            }
        }
        let args: Vec<String> = w.start.iter().map(|&n| self.value_of(n)).collect();
        let main_call = call(
            "",
            &format!("crate::{}::start", self.a.main),
            &args,
            4,
            false,
        );
        stmts.push(await_chain("", &main_call, "main", 4, ""));

        let param = if uses_platform {
            "platform"
        } else {
            "_platform"
        };
        let params = format!("{param}: &'static {}", w.target.platform);
        let ret = "Result<(), morgana_signatures::StartError>";
        let one = format!("async fn connect_and_start({params}) -> {ret} {{");
        let sig = if width(&one) <= MAX_WIDTH {
            one
        } else {
            format!("async fn connect_and_start(\n    {params},\n) -> {ret} {{")
        };
        // Statements that cannot fit carry their own `#[rustfmt::skip]`.
        let skip = if too_wide(&sig) {
            "#[rustfmt::skip]\n"
        } else {
            ""
        };
        Ok(format!(
            "{skip}{sig}\n    use morgana_signatures::StartError;\n{}\n}}",
            stmts.join("\n")
        ))
    }

    fn entry(&self) -> String {
        let heap_bytes = self.a.heap_mib * 1024 * 1024;
        let args = [
            "connect_and_start".to_string(),
            format!("heap_bytes = {heap_bytes}"),
            format!("log_level = {}", self.a.log_level),
        ];
        item(format!(
            "{};",
            call("", &format!("{}!", self.w.target.entry), &args, 0, true)
        ))
    }

    fn crates(&self) -> Vec<String> {
        let mut crates: Vec<String> = self.w.target.crates.clone();
        for &n in &self.w.order {
            if let Some(Chosen::Component(imp)) = &self.w.chosen[n] {
                crates.extend(imp.crates.iter().cloned());
            }
        }
        crates.sort();
        crates.dedup();
        crates
    }

    fn target_origin(&self) -> String {
        match self.a.target_origin {
            Origin::Source(s) => self.loc(s),
            Origin::Default | Origin::TargetDefault => "the default".into(),
            Origin::Env => "from MORGANA_TARGET".into(),
        }
    }
}

/// Emits the generated code, the report and the deployment files.
pub fn emit(
    a: &Appliance,
    cat: &Catalog,
    w: &Wiring<'_>,
    file: &str,
    binary: &str,
) -> Result<Output, Diagnostic> {
    let e = Emitter {
        a,
        cat,
        w,
        file,
        binary,
    };
    emit_inner(&e).map_err(|msg| {
        Diagnostic::error(format!(
            "internal error in morgana-codegen while emitting code: {msg}"
        ))
        .note("this is a bug in the catalog or in codegen, not in appliance.ron")
    })
}

fn emit_inner(e: &Emitter<'_>) -> Result<Output, String> {
    let (included, left_out) = e.tables("//   ")?;
    let target_origin = e.target_origin();
    let aliases = e.aliases()?;
    let statics = e.statics()?;
    let connect = e.connect_and_start()?;
    let rust = template::render(APPLIANCE_TEMPLATE, |k| {
        Some(match k {
            "file" => e.file.to_string(),
            "name" => e.a.name.clone(),
            "target" => e.w.target.name.clone(),
            "target_origin" => target_origin.clone(),
            "included" => included.clone(),
            "left_out" => left_out.clone(),
            "aliases" => aliases.clone(),
            "config" => e.config(),
            "statics" => statics.clone(),
            "connect_and_start" => connect.clone(),
            "entry" => e.entry(),
            _ => return None,
        })
    })?;

    let (included, left_out) = e.tables("  ")?;
    let crates = e.crates();
    let (files, stale) = e.files()?;
    let deployment = if files.is_empty() {
        "none".to_string()
    } else {
        files
            .iter()
            .map(|f| match f.dir {
                FileDir::OutDir => format!("{} (in OUT_DIR)", f.name),
                FileDir::Profile => format!("{} (next to the binary)", f.name),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let order: Vec<&str> =
        e.w.order
            .iter()
            .filter(|&&n| !e.is_static(n))
            .map(|&n| e.w.nodes[n].name.as_str())
            .collect();
    let report = template::render(REPORT_TEMPLATE, |k| {
        Some(match k {
            "file" => e.file.to_string(),
            "name" => e.a.name.clone(),
            "target" => e.w.target.name.clone(),
            "target_origin" => target_origin.clone(),
            "included" => included.clone(),
            "left_out" => left_out.clone(),
            "order" => {
                if order.is_empty() {
                    "(nothing to connect)".into()
                } else {
                    order.join(", ")
                }
            }
            "crates" => crates.join(", "),
            "link_args" => crate::reference::link_args(e.w.target),
            "heap_mib" => e.a.heap_mib.to_string(),
            "log_level" => e.a.log_level.clone(),
            "files" => deployment.clone(),
            _ => return None,
        })
    })?;

    Ok(Output {
        rust,
        report,
        files,
        stale,
        crates,
    })
}
