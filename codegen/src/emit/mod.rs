//! Emission: the wiring as Rust source, the report, and the target's deployment files.
//!
//! Rust is built as tokens ([`rust`]: quote, with the catalog's templates parsed by
//! syn) and laid out by prettyplease, the assembled file by [`rustfmt`] when the
//! toolchain has it; the text around it — the header comments, the
//! report, the deployment files — is rendered by minijinja templates
//! (`codegen/templates/`, `schemas/templates/`).

pub mod context;
pub mod deploy;
pub mod rust;
pub mod rustfmt;
pub mod tables;

use minijinja::{Environment, context};

use crate::archive::Archive;
use crate::catalog::{Catalog, Code, Component, FileDir, KeyType};
use crate::diag::{Diagnostic, Span};
use crate::model::{Appliance, Device, Origin, Scalar};
use crate::names;
use crate::templates;
use crate::wire::{Chosen, NodeKind, Wiring};

use self::context::{CodeContext, key_value};

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

/// Everything emission reads.
pub(crate) struct Emitter<'a> {
    pub a: &'a Appliance,
    pub cat: &'a Catalog,
    pub w: &'a Wiring<'a>,
    /// The file name shown in comments (`appliance.ron`).
    pub file: &'a str,
    /// The binary's path for deployment files (`{{ binary }}`).
    pub binary: &'a str,
    /// The archives compiled by build steps.
    pub archives: &'a [Archive],
    /// The keys read at boot on this target.
    pub boot: crate::boot::BootKeys,
    pub env: &'static Environment<'static>,
}

impl Emitter<'_> {
    pub(crate) fn loc(&self, span: Span) -> String {
        format!("{}:{}:{}", self.file, span.line, span.col)
    }

    pub(crate) fn origin(&self, o: Origin) -> String {
        match o {
            Origin::Source(s) => self.loc(s),
            Origin::Default => "default".into(),
            Origin::TargetDefault => format!("default on {}", self.w.target.name),
            Origin::Env => "from MORGANA_TARGET".into(),
        }
    }

    pub(crate) fn device(&self, node: usize) -> Option<(&Device, &Component)> {
        match self.w.nodes[node].kind {
            NodeKind::Declared(i) => {
                let d = &self.a.devices[i];
                Some((d, self.cat.component(&d.component)?))
            }
            NodeKind::Platform(_) => None,
        }
    }

    /// `dev`'s `instance` (see [`context::instance`]).
    pub(crate) fn instance(&self, dev: &Device) -> usize {
        let included = crate::wire::included_devices(&self.w.nodes, &self.w.order);
        context::instance(&self.a.devices, &included, dev)
    }

    pub(crate) fn alias(&self, node: usize) -> String {
        names::camel(&self.w.nodes[node].name)
    }

    pub(crate) fn static_name(&self, node: usize) -> String {
        names::screaming(&self.w.nodes[node].name)
    }

    pub(crate) fn const_name(&self, node: usize, key: &str) -> String {
        format!(
            "{}_{}",
            names::screaming(&self.w.nodes[node].name),
            names::screaming(key)
        )
    }

    pub(crate) fn is_static(&self, n: usize) -> bool {
        matches!(&self.w.chosen[n], Some(Chosen::Component(imp)) if matches!(imp.code, Code::Static { .. }))
    }

    /// The archive of node `n`, if its implementation has a build step.
    pub(crate) fn archive(&self, n: usize) -> Option<&Archive> {
        self.archives
            .iter()
            .find(|a| a.device == self.w.nodes[n].name)
    }

    /// The type of node `n` as used in another device's type.
    pub(crate) fn type_of(&self, n: usize) -> Result<String, String> {
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

    /// The value of node `n` as passed to `user` (a device, or `None`: main). A `cloned`
    /// handle is cloned for every user but the last (main comes last).
    pub(crate) fn value_of(&self, n: usize, user: Option<usize>) -> String {
        if self.is_static(n) {
            format!("&{}", self.static_name(n))
        } else if matches!(&self.w.chosen[n], Some(Chosen::Component(imp)) if imp.cloned)
            && self.last_user(n) != Some(user)
        {
            format!("{}.clone()", self.w.nodes[n].name)
        } else {
            self.w.nodes[n].name.clone()
        }
    }

    /// The last user of node `n` in the generated code: devices in connect order, then
    /// main (`None`).
    fn last_user(&self, n: usize) -> Option<Option<usize>> {
        if self.w.start.contains(&n) {
            return Some(None);
        }
        self.w
            .order
            .iter()
            .rev()
            .find(|&&m| self.w.nodes[m].deps.iter().any(|b| b.node == n))
            .map(|&m| Some(m))
    }

    fn template_name(&self, n: usize, part: &str) -> String {
        let (comp, file) = self.device(n).map_or(("?", "the catalog"), |(_, c)| {
            (c.name.as_str(), c.file.as_str())
        });
        format!("{comp}.{part} ({file})")
    }

    /// The rendered type template of a declared node.
    pub(crate) fn rendered_type(&self, n: usize) -> Result<String, String> {
        let Some(Chosen::Component(imp)) = &self.w.chosen[n] else {
            return Err("not a component".into());
        };
        let ty = match &imp.code {
            Code::Connect { ty, .. } | Code::Static { ty, .. } => ty,
            _ => return Err("no implementation".into()),
        };
        let mut ctx = CodeContext::default();
        ctx.code("target", self.w.target.name.clone());
        for b in &self.w.nodes[n].deps {
            ctx.code(&b.key, self.type_of(b.node)?);
        }
        // A choice may pick a type parameter (`Tls`'s `keys: Ecdsa`).
        if let Some((dev, comp)) = self.device(n) {
            for k in comp
                .keys
                .iter()
                .filter(|k| matches!(k.ty, KeyType::Choice(_)))
            {
                if let Some(s) = dev.setting(&k.name) {
                    ctx.value(&k.name, key_value(Some(k), &s.value, true));
                }
            }
        }
        templates::render_inline(self.env, &self.template_name(n, "type"), ty, ctx.build())
    }

    /// Renders a value template (`connect`, `init`, a `prepare` step) of declared node
    /// `n`; `steps` are the `prepare` values made so far: (name, variable).
    pub(crate) fn rendered_value(
        &self,
        n: usize,
        part: &str,
        text: &str,
        steps: &[(String, String)],
    ) -> Result<String, String> {
        let Some((dev, comp)) = self.device(n) else {
            return Err("not a component".into());
        };
        let mut ctx = CodeContext::default();
        ctx.code("Self", self.alias(n))
            .code("platform", "platform")
            .code("target", self.w.target.name.clone())
            .value("instance", minijinja::Value::from(self.instance(dev)));
        match self.archive(n).map(|a| &a.data) {
            Some(crate::archive::Compiled::Archive { .. }) => {
                ctx.code("archive", crate::archive::static_name(&dev.name));
            }
            Some(crate::archive::Compiled::Rust(r)) => {
                ctx.code("compiled", r.clone());
            }
            None => {}
        }
        for b in &self.w.nodes[n].deps {
            ctx.code(&b.key, self.value_of(b.node, Some(n)));
        }
        for (step, var) in steps {
            ctx.code(step, var.clone());
        }
        let mut consts = std::collections::BTreeMap::new();
        for k in &comp.keys {
            // A key read at boot: its field of `boot` (the value compiled in is the
            // field's default), for `config.<key>` and `<key>` alike.
            if let Some(b) = self.boot.get(n, &k.name) {
                if k.as_const {
                    consts.insert(k.name.clone(), minijinja::Value::from_safe_string(b.expr()));
                } else if let Some(s) = dev.setting(&k.name) {
                    ctx.value(&k.name, context::boot_key_value(k, &s.value, b.expr()));
                }
                continue;
            }
            if k.as_const {
                consts.insert(
                    k.name.clone(),
                    minijinja::Value::from_safe_string(format!(
                        "config::{}",
                        self.const_name(n, &k.name)
                    )),
                );
            } else if let Some(s) = dev.setting(&k.name) {
                ctx.value(&k.name, key_value(Some(k), &s.value, true));
            }
        }
        ctx.value("config", minijinja::Value::from(consts));
        templates::render_inline(self.env, &self.template_name(n, part), text, ctx.build())
    }

    /// `Network(stack: Host) on unix` / `Crunch(dir: "htdocs")` / `HttpServer`.
    pub(crate) fn long_description(&self, n: usize) -> String {
        let Some((dev, comp)) = self.device(n) else {
            return String::new();
        };
        let shown: Vec<String> = comp
            .keys
            .iter()
            .filter(|k| !k.as_const)
            .filter_map(|k| dev.setting(&k.name))
            .filter(|s| s.value != Scalar::Absent)
            // An empty default names nothing (`Block`'s `from`).
            .filter(|s| {
                !(matches!(&s.value, Scalar::Str(v) if v.is_empty()) && s.origin == Origin::Default)
            })
            .map(|s| {
                let optional = comp.keys.iter().any(|k| k.name == s.key && k.optional);
                if optional {
                    format!("{}: Some({})", s.key, s.value.ron())
                } else {
                    format!("{}: {}", s.key, s.value.ron())
                }
            })
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

    pub(crate) fn crates(&self) -> Vec<String> {
        let mut crates: Vec<String> = self.w.target.crates.clone();
        if self.boot.any() {
            crates.push("morgana-boot-args".into());
        }
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
    archives: &[Archive],
) -> Result<Output, Diagnostic> {
    let e = Emitter {
        a,
        cat,
        w,
        file,
        binary,
        archives,
        boot: crate::boot::BootKeys::resolve(a, cat, w),
        env: templates::environment(),
    };
    emit_inner(&e).map_err(|msg| {
        Diagnostic::error(format!(
            "internal error in morgana-codegen while emitting code: {msg}"
        ))
        .note("this is a bug in the catalog or in codegen, not in appliance.ron")
    })
}

fn emit_inner(e: &Emitter<'_>) -> Result<Output, String> {
    let tables = e.tables()?;
    let code = rust::Code::generate(e)?;
    let rust = templates::render(
        e.env,
        "appliance.rs.jinja",
        context! {
            file => e.file,
            name => &e.a.name,
            target => &e.w.target.name,
            target_origin => e.target_origin(),
            tables => minijinja::Value::from(&tables),
            aliases => code.aliases,
            config => code.config,
            statics => code.statics,
            boot => code.boot,
            connect_and_start => code.connect_and_start,
            entry => code.entry,
        },
    )?;
    let rust = rustfmt::format(&rust).unwrap_or(rust);

    let crates = e.crates();
    let (files, stale) = deploy::files(e)?;
    let order: Vec<String> =
        e.w.order
            .iter()
            .filter(|&&n| !e.is_static(n))
            .map(|&n| e.w.nodes[n].name.clone())
            .collect();
    let archives: Vec<_> = e.archives.iter().map(archive_row).collect();
    let report = templates::render(
        e.env,
        "report.txt.jinja",
        context! {
            file => e.file,
            name => &e.a.name,
            target => &e.w.target.name,
            target_origin => e.target_origin(),
            tables => minijinja::Value::from(&tables),
            order => order,
            crates => &crates,
            link_args => crate::reference::link_args(e.w.target),
            heap_mib => e.a.heap_mib,
            log_level => &e.a.log_level,
            files => files.iter().map(|f| (f.name.clone(), f.dir == FileDir::Profile)).collect::<Vec<_>>(),
            boot_keys => e.boot.keys.iter().map(|k| (format!("--{}", k.word), format!("{}.{}", k.device, k.key))).collect::<Vec<_>>(),
            boot_not_read => &e.boot.not_read,
            cmdline => &e.a.cmdline.0,
            archives => archives,
        },
    )?;

    Ok(Output {
        rust,
        report,
        files,
        stale,
        crates,
    })
}

/// An archive as the report template sees it.
fn archive_row(a: &Archive) -> minijinja::Value {
    let inputs: Vec<String> = a.inputs.iter().map(|p| p.display().to_string()).collect();
    context! {
        device => &a.device,
        compiler => &a.compiler,
        file => a.archive().map(|(f, _)| f),
        summary => &a.summary,
        bytes => a.archive().map(|(_, b)| b.len()),
        inputs => inputs.join(", "),
    }
}
