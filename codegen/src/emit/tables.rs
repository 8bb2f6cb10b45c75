//! The tables of the header comment and the report: what is included and why, what
//! is left out, and the keys ignored on this target.

use minijinja::{Value, context};

use crate::catalog::Code;
use crate::emit::Emitter;
use crate::names;
use crate::wire::{Chosen, NodeKind};

/// The rows, and the widths of the first columns (for the templates' `pad`).
#[derive(Clone, Debug)]
pub struct Tables {
    /// Included: name, title (`Network(Direct)`), type, why.
    pub included: Vec<[String; 4]>,
    /// Left out: name, why.
    pub left_out: Vec<[String; 2]>,
    /// Ignored on this target: `device.key`, where and why.
    pub ignored: Vec<[String; 2]>,
    /// Width of the name column (shared by both tables).
    pub name_width: usize,
    /// Width of the title column.
    pub title_width: usize,
    /// Width of the type column.
    pub type_width: usize,
    /// Width of the ignored keys' column.
    pub ignored_width: usize,
}

impl From<&Tables> for Value {
    fn from(t: &Tables) -> Value {
        let rows = |r: Vec<Vec<String>>| r;
        context! {
            included => rows(t.included.iter().map(|r| r.to_vec()).collect()),
            left_out => rows(t.left_out.iter().map(|r| r.to_vec()).collect()),
            ignored => rows(t.ignored.iter().map(|r| r.to_vec()).collect()),
            name_width => t.name_width,
            title_width => t.title_width,
            type_width => t.type_width,
            ignored_width => t.ignored_width,
        }
    }
}

fn width(s: &str) -> usize {
    s.chars().count()
}

impl Emitter<'_> {
    pub(crate) fn tables(&self) -> Result<Tables, String> {
        let included = self.included_rows()?;
        let left_out = self.left_out_rows();
        let ignored = self.ignored_rows();
        let col = |i: usize| included.iter().map(|r| width(&r[i])).max().unwrap_or(0);
        Ok(Tables {
            name_width: included
                .iter()
                .map(|r| width(&r[0]))
                .chain(left_out.iter().map(|r| width(&r[0])))
                .max()
                .unwrap_or(0),
            title_width: col(1),
            type_width: col(2),
            ignored_width: ignored.iter().map(|r| width(&r[0])).max().unwrap_or(0),
            included,
            left_out,
            ignored,
        })
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

    /// Keys written in the file that mean nothing on this target.
    fn ignored_rows(&self) -> Vec<[String; 2]> {
        let mut rows = Vec::new();
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
                rows.push([
                    format!("{}.{key}", d.name),
                    format!("{}; used on {only} only", self.loc(*span)),
                ]);
            }
        }
        rows
    }
}
