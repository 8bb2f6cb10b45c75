//! Wiring: which device satisfies each requirement, what is included and why, the
//! dependency order, and which implementation each device gets on the target
//! (MirageOS's `match_impl`).

use crate::catalog::{Catalog, Code, Component, Impl, PlatformImpl, Requirement, Status, Target};
use crate::diag::{Diagnostic, Span};
use crate::model::{Appliance, Device, Origin, Scalar};
use crate::names::{self, did_you_mean};

/// A device of the appliance: declared, or provided by the platform.
#[derive(Clone, Debug)]
pub enum NodeKind {
    /// Index into `Catalog::platform_devices`.
    Platform(usize),
    /// Index into `Appliance::devices`.
    Declared(usize),
}

/// A requirement bound to a device.
#[derive(Clone, Debug)]
pub struct Binding {
    /// The requirement key, e.g. `net`.
    pub key: String,
    /// The node that satisfies it.
    pub node: usize,
    /// Where the binding is written, if explicit.
    pub span: Option<Span>,
}

/// One device in the graph.
#[derive(Clone, Debug)]
pub struct Node {
    /// Its name.
    pub name: String,
    /// Declared or platform.
    pub kind: NodeKind,
    /// Signatures it provides.
    pub provides: Vec<String>,
    /// Its requirements, bound.
    pub deps: Vec<Binding>,
}

/// What a node becomes on the target.
#[derive(Clone, Debug)]
pub enum Chosen<'c> {
    /// A platform device.
    Platform(&'c PlatformImpl),
    /// A component implementation (`Connect` or `Static`).
    Component(&'c Impl),
}

/// The solved wiring.
#[derive(Clone, Debug)]
pub struct Wiring<'c> {
    /// The target.
    pub target: &'c Target,
    /// Platform devices then declared devices.
    pub nodes: Vec<Node>,
    /// Included nodes in dependency order.
    pub order: Vec<usize>,
    /// Why each node is included (empty: left out).
    pub reasons: Vec<Vec<String>>,
    /// The implementation of each included node.
    pub chosen: Vec<Option<Chosen<'c>>>,
    /// `start`, as nodes.
    pub start: Vec<usize>,
}

impl Wiring<'_> {
    /// Whether node `i` is included.
    pub fn included(&self, i: usize) -> bool {
        !self.reasons[i].is_empty()
    }
}

/// `Network(stack: Host)`: the component and the keys that select its implementation.
pub fn describe(dev: &Device, comp: &Component) -> String {
    let sel: Vec<String> = selectors(dev, comp)
        .map(|s| format!("{}: {}", s.key, s.value.ron()))
        .collect();
    if sel.is_empty() {
        comp.name.clone()
    } else {
        format!("{}({})", comp.name, sel.join(", "))
    }
}

/// The settings of `dev` that select an implementation: its `Choice` keys.
pub fn selectors<'d>(
    dev: &'d Device,
    comp: &Component,
) -> impl Iterator<Item = &'d crate::model::Setting> {
    let choices: Vec<&str> = comp
        .keys
        .iter()
        .filter(|k| matches!(k.ty, crate::catalog::KeyType::Choice(_)))
        .map(|k| k.name.as_str())
        .collect();
    dev.settings
        .iter()
        .filter(move |s| choices.contains(&s.key.as_str()))
}

/// Solves the wiring; problems go to `errs` (the result is `None` if there are any).
pub fn wire<'c>(a: &Appliance, cat: &'c Catalog, errs: &mut Vec<Diagnostic>) -> Option<Wiring<'c>> {
    let first_error = errs.len();
    let target = cat.target(&a.target)?;
    if let Status::Planned(why) = &target.status {
        errs.push(planned_target(a, cat, target, why));
    }

    // Requirement problems make the rest meaningless; a planned target does not.
    let before = errs.len();
    let mut nodes: Vec<Node> = cat
        .platform_devices
        .iter()
        .enumerate()
        .map(|(i, p)| Node {
            name: p.name.clone(),
            kind: NodeKind::Platform(i),
            provides: p.provides.clone(),
            deps: Vec::new(),
        })
        .collect();
    for (i, d) in a.devices.iter().enumerate() {
        let comp = cat.component(&d.component)?;
        nodes.push(Node {
            name: d.name.clone(),
            kind: NodeKind::Declared(i),
            provides: comp.provides.clone(),
            deps: Vec::new(),
        });
    }
    bind(a, cat, &mut nodes, errs)?;
    if errs.len() > before {
        return None;
    }
    if let Some(cycle) = find_cycle(&nodes) {
        errs.push(cycle_error(a, &nodes, &cycle));
        return None;
    }

    let (start, reasons, order) = included(a, cat, &nodes)?;
    let chosen = choose(a, cat, target, &nodes, &order, &reasons, errs)?;
    claims(a, target, &nodes, &order, &chosen, errs);
    single_users(a, &nodes, &order, &start, &chosen, errs);

    if errs.len() > first_error {
        return None;
    }
    Some(Wiring {
        target,
        nodes,
        order,
        reasons,
        chosen,
        start,
    })
}

fn planned_target(a: &Appliance, cat: &Catalog, target: &Target, why: &str) -> Diagnostic {
    let mut d = Diagnostic::error(format!(
        "target {} is not available yet: {why}",
        target.name
    ));
    d = match a.target_origin {
        Origin::Source(span) => d.primary(span, "not available yet"),
        Origin::Env => d.note("the target comes from the environment variable MORGANA_TARGET"),
        Origin::Default | Origin::TargetDefault => d.note("this is the default target"),
    };
    let ready: Vec<String> = cat
        .targets
        .iter()
        .filter(|t| t.status == Status::Ready)
        .map(|t| t.variant.clone())
        .collect();
    d.help(format!("targets available now: {}", ready.join(", ")))
}

/// Binds every requirement of every declared device to a node.
fn bind(
    a: &Appliance,
    cat: &Catalog,
    nodes: &mut [Node],
    errs: &mut Vec<Diagnostic>,
) -> Option<()> {
    let first_declared = cat.platform_devices.len();
    for (i, dev) in a.devices.iter().enumerate() {
        let me = first_declared + i;
        let comp = cat.component(&dev.component)?;
        for req in &comp.requires {
            if !crate::check::device_holds(dev, &req.when) {
                continue;
            }
            let binding = match dev.refs.iter().find(|r| r.key == req.name) {
                Some(r) => bind_named(a, cat, nodes, me, dev, req, r),
                None => bind_only(a, cat, nodes, me, dev, comp, req),
            };
            match binding {
                Ok(b) => nodes[me].deps.push(b),
                Err(d) => errs.push(d),
            }
        }
    }
    Some(())
}

/// A requirement whose key names the device.
fn bind_named(
    a: &Appliance,
    cat: &Catalog,
    nodes: &[Node],
    me: usize,
    dev: &Device,
    req: &Requirement,
    r: &crate::model::Reference,
) -> Result<Binding, Diagnostic> {
    let Some(n) = nodes.iter().position(|n| n.name == r.device) else {
        let all: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        let providers = providers(nodes, &req.signature, me);
        let listed = if providers.is_empty() {
            format!(
                "no device provides it (components that do: {})",
                components_providing(cat, &req.signature)
            )
        } else {
            format!("devices providing it: {}", quoted(&providers, nodes))
        };
        return Err(Diagnostic::error(format!("unknown device `{}`", r.device))
            .primary(r.span, "no device has this name")
            .help(format!(
                "{}`{}.{}` names a device providing `{}`; {listed}",
                did_you_mean(&r.device, all.iter().copied()),
                dev.name,
                req.name,
                req.signature,
            )));
    };
    if !nodes[n].provides.contains(&req.signature) {
        let providers = providers(nodes, &req.signature, me);
        let mut d = Diagnostic::error(format!(
            "device `{}` cannot be `{}.{}`: it does not provide `{}`",
            r.device, dev.name, req.name, req.signature
        ))
        .primary(
            r.span,
            format!("expected a device providing `{}`", req.signature),
        );
        if let Some(span) = node_span(a, &nodes[n]) {
            d = d.secondary(span, format!("`{}` is declared here", r.device));
        }
        return Err(d.help(if providers.is_empty() {
            format!(
                "no device provides `{}`; components that do: {}",
                req.signature,
                components_providing(cat, &req.signature)
            )
        } else {
            format!(
                "devices providing `{}`: {}",
                req.signature,
                quoted(&providers, nodes)
            )
        }));
    }
    Ok(Binding {
        key: req.name.clone(),
        node: n,
        span: Some(r.span),
    })
}

/// A requirement without a key: the only device providing the signature.
fn bind_only(
    a: &Appliance,
    cat: &Catalog,
    nodes: &[Node],
    me: usize,
    dev: &Device,
    comp: &Component,
    req: &Requirement,
) -> Result<Binding, Diagnostic> {
    let candidates = providers(nodes, &req.signature, me);
    match candidates.as_slice() {
        [one] => Ok(Binding {
            key: req.name.clone(),
            node: *one,
            span: None,
        }),
        [] => Err(Diagnostic::error(format!(
            "`{}` needs a device providing `{}` as `{}`, and there is none",
            dev.name, req.signature, req.name
        ))
        .primary(
            dev.component_span,
            format!("{} requires `{}`: {}", comp.name, req.name, req.doc),
        )
        .help(format!(
            "declare a device that provides `{}`; components that do: {}",
            req.signature,
            components_providing(cat, &req.signature)
        ))),
        many => {
            let mut d = Diagnostic::error(format!(
                "`{}` needs a device providing `{}` as `{}`, and there are {}: {}",
                dev.name,
                req.signature,
                req.name,
                many.len(),
                quoted(many, nodes)
            ))
            .primary(dev.component_span, format!("which `{}`?", req.name));
            for &c in many {
                if let Some(span) = node_span(a, &nodes[c]) {
                    d = d.secondary(span, format!("provides `{}`", req.signature));
                }
            }
            Err(d.help(format!(
                "say which one, e.g. `{}: \"{}\"` in `{}`",
                req.name, nodes[many[0]].name, dev.name
            )))
        }
    }
}

fn cycle_error(a: &Appliance, nodes: &[Node], cycle: &[usize]) -> Diagnostic {
    let path: Vec<String> = cycle
        .iter()
        .map(|&n| format!("`{}`", nodes[n].name))
        .collect();
    let mut d = Diagnostic::error(format!("dependency cycle: {}", path.join(" -> ")));
    for (k, w) in cycle.windows(2).enumerate() {
        let (from, to) = (w[0], w[1]);
        let b = nodes[from].deps.iter().find(|b| b.node == to);
        let span = b
            .and_then(|b| b.span)
            .or_else(|| node_span(a, &nodes[from]));
        if let (Some(span), Some(b)) = (span, b) {
            let label = format!(
                "`{}` needs `{}` as `{}`",
                nodes[from].name, nodes[to].name, b.key
            );
            d = if k == 0 {
                d.primary(span, label)
            } else {
                d.secondary(span, label)
            };
        }
    }
    d.help("a device cannot depend on itself, directly or through other devices; break the cycle by naming a different device")
}

/// What is included, and why: `start`'s nodes, the reasons of each node, the included
/// nodes in dependency order.
#[allow(clippy::type_complexity)]
fn included(
    a: &Appliance,
    cat: &Catalog,
    nodes: &[Node],
) -> Option<(Vec<usize>, Vec<Vec<String>>, Vec<usize>)> {
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); nodes.len()];
    let mut start = Vec::new();
    for (pos, (name, _)) in a.start.iter().enumerate() {
        let n = nodes.iter().position(|n| &n.name == name)?;
        start.push(n);
        reasons[n].push(format!("argument {} of main", pos + 1));
    }
    let mut stack: Vec<usize> = start.clone();
    let mut reached = vec![false; nodes.len()];
    while let Some(n) = stack.pop() {
        if std::mem::replace(&mut reached[n], true) {
            continue;
        }
        stack.extend(nodes[n].deps.iter().map(|b| b.node));
    }
    let order = topo_order(nodes, &reached);
    for &n in &order {
        let NodeKind::Declared(di) = nodes[n].kind else {
            continue;
        };
        let comp = cat.component(&a.devices[di].component)?;
        for b in &nodes[n].deps {
            let purpose = comp
                .requires
                .iter()
                .find(|r| r.name == b.key)
                .map(|r| r.purpose.as_str())
                .unwrap_or_default();
            let why = if purpose.is_empty() {
                format!("required by {}", nodes[n].name)
            } else {
                format!("required by {} ({purpose})", nodes[n].name)
            };
            reasons[b.node].push(why);
        }
    }
    Some((start, reasons, order))
}

/// The implementation of each included node on the target.
fn choose<'c>(
    a: &Appliance,
    cat: &'c Catalog,
    target: &'c Target,
    nodes: &[Node],
    order: &[usize],
    reasons: &[Vec<String>],
    errs: &mut Vec<Diagnostic>,
) -> Option<Vec<Option<Chosen<'c>>>> {
    let mut chosen: Vec<Option<Chosen<'c>>> = vec![None; nodes.len()];
    for &n in order {
        match nodes[n].kind {
            NodeKind::Platform(_) => match target.devices.iter().find(|(d, _)| *d == nodes[n].name)
            {
                Some((_, imp)) => chosen[n] = Some(Chosen::Platform(imp)),
                None if target.status == Status::Ready => errs.push(
                    Diagnostic::error(format!(
                        "platform device `{}` is not available on target {}",
                        nodes[n].name, target.name
                    ))
                    .note(format!(
                        "it is included because it is {}",
                        reasons[n].join("; ")
                    )),
                ),
                None => {}
            },
            NodeKind::Declared(di) => {
                let dev = &a.devices[di];
                let comp = cat.component(&dev.component)?;
                match select(dev, comp, target) {
                    Ok(imp) => chosen[n] = Some(Chosen::Component(imp)),
                    Err(d) => errs.push(d),
                }
            }
        }
    }
    Some(chosen)
}

/// The indices (in `Appliance::devices`) of the included declared devices.
pub(crate) fn included_devices(nodes: &[Node], order: &[usize]) -> Vec<usize> {
    order
        .iter()
        .filter_map(|&n| match nodes[n].kind {
            NodeKind::Declared(di) => Some(di),
            NodeKind::Platform(_) => None,
        })
        .collect()
}

/// A resource (a NIC) belongs to one device.
fn claims(
    a: &Appliance,
    target: &Target,
    nodes: &[Node],
    order: &[usize],
    chosen: &[Option<Chosen<'_>>],
    errs: &mut Vec<Diagnostic>,
) {
    let env = crate::templates::environment();
    let mut claimed: Vec<(String, usize)> = Vec::new();
    let included = included_devices(nodes, order);
    for &n in order {
        let (Some(Chosen::Component(imp)), NodeKind::Declared(di)) = (&chosen[n], &nodes[n].kind)
        else {
            continue;
        };
        if let Some(max) = imp.max_devices {
            let dev = &a.devices[*di];
            let instance = crate::emit::context::instance(&a.devices, &included, dev);
            if instance == max {
                errs.push(
                    Diagnostic::error(format!(
                        "more than {max} `{}` devices on target {}",
                        dev.component, target.name
                    ))
                    .primary(
                        dev.component_span,
                        format!("`{}` number {}", dev.component, instance + 1),
                    )
                    .help(format!(
                        "an appliance has at most {max} `{}` devices on target {}: remove some of them",
                        dev.component, target.name
                    )),
                );
            }
        }
        if imp.claims.is_empty() {
            continue;
        }
        let dev = &a.devices[*di];
        let mut ctx = crate::emit::context::plain_keys(dev);
        ctx.insert(
            "instance".into(),
            minijinja::Value::from(crate::emit::context::instance(&a.devices, &included, dev)),
        );
        let ctx = minijinja::Value::from(ctx);
        let Ok(claim) = crate::templates::render_inline(env, "claims", &imp.claims, ctx) else {
            continue;
        };
        if let Some((_, first)) = claimed.iter().find(|(c, _)| *c == claim) {
            let NodeKind::Declared(fi) = nodes[*first].kind else {
                continue;
            };
            let other = &a.devices[fi];
            errs.push(
                Diagnostic::error(format!(
                    "devices `{}` and `{}` both use the {claim} on target {}",
                    other.name, dev.name, target.name
                ))
                .primary(dev.component_span, format!("uses the {claim}"))
                .secondary(other.component_span, format!("also uses the {claim}"))
                .help(format!("the {claim} belongs to one device: remove one of them, or make it use something else")),
            );
            continue;
        }
        claimed.push((claim, n));
    }
}

/// A device that is moved into its user can have only one user.
fn single_users(
    a: &Appliance,
    nodes: &[Node],
    order: &[usize],
    start: &[usize],
    chosen: &[Option<Chosen<'_>>],
    errs: &mut Vec<Diagnostic>,
) {
    let mut uses: Vec<Vec<(Option<Span>, String)>> = vec![Vec::new(); nodes.len()];
    for (pos, &n) in start.iter().enumerate() {
        uses[n].push((Some(a.start[pos].1), "passed to main".to_string()));
    }
    for &n in order {
        for b in &nodes[n].deps {
            let span = b.span.or_else(|| node_span(a, &nodes[n]));
            uses[b.node].push((
                span,
                format!("required by `{}` as `{}`", nodes[n].name, b.key),
            ));
        }
    }
    for &n in order {
        let shared = match &chosen[n] {
            Some(Chosen::Platform(_)) | None => true,
            Some(Chosen::Component(imp)) => {
                imp.shared || imp.cloned || matches!(imp.code, Code::Static { .. })
            }
        };
        if shared || uses[n].len() < 2 {
            continue;
        }
        let NodeKind::Declared(di) = nodes[n].kind else {
            continue;
        };
        let dev = &a.devices[di];
        let mut d = Diagnostic::error(format!(
            "device `{}` is used {} times, but a {} can be handed to one user only",
            dev.name,
            uses[n].len(),
            dev.component
        ));
        let mut primary = true;
        for (span, label) in &uses[n] {
            if let Some(span) = span {
                d = if primary {
                    d.primary(*span, label.clone())
                } else {
                    d.secondary(*span, label.clone())
                };
                primary = false;
            }
        }
        errs.push(d.help("declare one device per user"));
    }
}

/// Picks the implementation of `dev` on `target`.
fn select<'c>(dev: &Device, comp: &'c Component, target: &Target) -> Result<&'c Impl, Diagnostic> {
    let what = describe(dev, comp);
    let matches = |imp: &Impl| {
        imp.when.iter().all(|(k, v)| {
            dev.setting(k)
                .is_some_and(|s| s.value == Scalar::Choice(v.clone()))
        })
    };
    let found = comp
        .impls
        .iter()
        .find(|imp| imp.for_target(&target.name) && matches(imp));
    let err = |msg: String, label: &str| {
        Diagnostic::error(msg).primary(dev.component_span, label.to_string())
    };
    match found {
        Some(imp) => match &imp.code {
            Code::Connect { .. } | Code::Static { .. } => Ok(imp),
            Code::Planned(why) => Err(err(
                format!(
                    "`{what}` is not available yet on target {}: {why}",
                    target.name
                ),
                "not available yet",
            )),
            Code::Unsupported(why) => Err(err(
                format!("`{what}` is not available on target {}: {why}", target.name),
                "not available on this target",
            )),
        },
        None => {
            let elsewhere: Vec<String> = comp
                .impls
                .iter()
                .filter(|imp| {
                    matches(imp) && matches!(imp.code, Code::Connect { .. } | Code::Static { .. })
                })
                .flat_map(|imp| imp.targets.clone())
                .collect();
            let mut d = err(
                format!("`{what}` is not available on target {}", target.name),
                "not available on this target",
            );
            if !elsewhere.is_empty() {
                d = d.help(format!("it is available on: {}", elsewhere.join(", ")));
            }
            Err(d)
        }
    }
}

fn providers(nodes: &[Node], signature: &str, except: usize) -> Vec<usize> {
    (0..nodes.len())
        .filter(|&i| i != except && nodes[i].provides.iter().any(|s| s == signature))
        .collect()
}

fn quoted(list: &[usize], nodes: &[Node]) -> String {
    let v: Vec<String> = list
        .iter()
        .map(|&i| format!("`{}`", nodes[i].name))
        .collect();
    names::and_list(&v)
}

fn components_providing(cat: &Catalog, signature: &str) -> String {
    let v: Vec<String> = cat
        .components
        .iter()
        .filter(|c| c.provides.iter().any(|s| s == signature))
        .map(|c| c.name.clone())
        .collect();
    let mut v = v;
    v.sort();
    if v.is_empty() {
        "none yet".into()
    } else {
        v.join(", ")
    }
}

fn node_span(a: &Appliance, n: &Node) -> Option<Span> {
    match n.kind {
        NodeKind::Declared(i) => Some(a.devices[i].name_span),
        NodeKind::Platform(_) => None,
    }
}

/// The first cycle found (in declaration order), as a path that ends where it starts.
fn find_cycle(nodes: &[Node]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        n: usize,
        nodes: &[Node],
        mark: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        mark[n] = Mark::Active;
        path.push(n);
        for b in &nodes[n].deps {
            match mark[b.node] {
                Mark::Active => {
                    let from = path.iter().position(|&p| p == b.node).unwrap_or(0);
                    let mut cycle = path[from..].to_vec();
                    cycle.push(b.node);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(b.node, nodes, mark, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        mark[n] = Mark::Done;
        None
    }
    let mut mark = vec![Mark::New; nodes.len()];
    for n in 0..nodes.len() {
        if mark[n] == Mark::New
            && let Some(c) = visit(n, nodes, &mut mark, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// Kahn's algorithm, stable: among ready nodes, the earliest declared goes first.
fn topo_order(nodes: &[Node], keep: &[bool]) -> Vec<usize> {
    let mut placed = vec![false; nodes.len()];
    let mut order = Vec::new();
    loop {
        let next = (0..nodes.len())
            .find(|&i| keep[i] && !placed[i] && nodes[i].deps.iter().all(|b| placed[b.node]));
        match next {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => return order,
        }
    }
}
