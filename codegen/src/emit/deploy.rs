//! Deployment files: the target's templates (`schemas/templates/`), with what the
//! included devices contribute to their `deploy` slots.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::Value;
use minijinja::value::{Object, ObjectRepr};

use crate::emit::context::plain_keys;
use crate::emit::{DeployFile, Emitter};
use crate::templates;
use crate::wire::Chosen;

/// The `deploy` variable: the slots rendered so far. A slot nobody contributes to is
/// empty (in a file and in a contribution); in a contribution an unfinished slot is an
/// error (the contribution is rendered again once that slot is done).
#[derive(Debug)]
struct Slots {
    done: BTreeMap<String, String>,
    /// The slots some included device contributes to.
    known: Vec<String>,
    in_file: bool,
}

impl Object for Slots {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        match self.done.get(key) {
            Some(v) => Some(Value::from_safe_string(v.clone())),
            // Safe, so that an empty slot stays empty in a JSON or XML file.
            None if self.in_file || !self.known.iter().any(|k| k == key) => {
                Some(Value::from_safe_string(String::new()))
            }
            None => None,
        }
    }
}

/// Every slot's text: the contributions of the included devices, in connect order.
fn slots(e: &Emitter<'_>) -> Result<BTreeMap<String, String>, String> {
    // The contributing devices in connect order, except that the devices of one
    // component keep the order of the file among themselves (their `instance`): a
    // kernel's second `Block` is the second disk of the `.qemu` and the `.xl`.
    let mut nodes: Vec<usize> = e.w.order.clone();
    let component = |n: usize| e.device(n).map(|(d, _)| d.component.clone());
    let declared = |n: usize| e.device(n).map_or(0, |(d, _)| e.instance(d));
    let mut comps: Vec<String> = nodes.iter().filter_map(|&n| component(n)).collect();
    comps.sort();
    comps.dedup();
    for c in comps {
        let at: Vec<usize> = (0..nodes.len())
            .filter(|&i| component(nodes[i]).as_deref() == Some(c.as_str()))
            .collect();
        let mut group: Vec<usize> = at.iter().map(|&i| nodes[i]).collect();
        group.sort_by_key(|&n| declared(n));
        for (i, n) in at.into_iter().zip(group) {
            nodes[i] = n;
        }
    }
    // (slot, node, device, template), in that order.
    let mut pieces = Vec::new();
    for n in nodes {
        let (Some(Chosen::Component(imp)), Some((dev, _))) = (&e.w.chosen[n], e.device(n)) else {
            continue;
        };
        for (slot, text) in &imp.deploy {
            pieces.push((slot.clone(), n, dev, text.clone()));
        }
    }
    let mut names: Vec<String> = pieces.iter().map(|p| p.0.clone()).collect();
    names.sort();
    names.dedup();
    let mut done: BTreeMap<String, String> = BTreeMap::new();
    // A slot may use other slots: render until every slot is done, or a round makes no
    // progress (slots that use each other, or an unknown slot).
    loop {
        let before = done.len();
        let mut last_error = String::new();
        for slot in &names {
            if done.contains_key(slot) {
                continue;
            }
            let mut text = String::new();
            let mut ok = true;
            for (_, n, dev, template) in pieces.iter().filter(|p| &p.0 == slot) {
                let mut ctx = plain_keys(dev);
                ctx.insert("instance".into(), Value::from(e.instance(dev)));
                ctx.insert("requires".into(), requires(e, *n));
                // The device's keys read at boot, by key: their `--word`.
                let words: BTreeMap<String, String> = e
                    .boot
                    .keys
                    .iter()
                    .filter(|k| k.node == *n)
                    .map(|k| (k.key.clone(), format!("--{}", k.word)))
                    .collect();
                ctx.insert("boot_words".into(), Value::from(words));
                ctx.insert(
                    "deploy".into(),
                    Value::from_object(Slots {
                        done: done.clone(),
                        known: names.clone(),
                        in_file: false,
                    }),
                );
                let name = format!("deploy slot `{slot}` of `{}`", dev.name);
                match templates::render_inline(e.env, &name, template, Value::from(ctx)) {
                    Ok(t) => text.push_str(&t),
                    Err(err) => {
                        last_error = err;
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                done.insert(slot.clone(), text);
            }
        }
        if done.len() == names.len() {
            return Ok(done);
        }
        if done.len() == before {
            return Err(format!(
                "deploy slots that use each other in a cycle: {last_error}"
            ));
        }
    }
}

/// The `requires` variable of a device's slots: for each requirement, the component of
/// the device wired to it (`Tls`), or the platform device's name (`clock`). An
/// `HttpServer` over a `Tls` device says `https://`.
fn requires(e: &Emitter<'_>, n: usize) -> Value {
    let map: BTreeMap<String, Value> = e.w.nodes[n]
        .deps
        .iter()
        .map(|b| {
            let of = match e.device(b.node) {
                Some((_, comp)) => comp.name.clone(),
                None => e.w.nodes[b.node].name.clone(),
            };
            (b.key.clone(), Value::from(of))
        })
        .collect();
    Value::from(map)
}

/// The file variables besides `deploy`.
fn file_context(e: &Emitter<'_>, target: &str) -> BTreeMap<String, Value> {
    let mut ctx = BTreeMap::new();
    ctx.insert("name".to_string(), Value::from(e.a.name.clone()));
    ctx.insert("file".to_string(), Value::from(e.file));
    ctx.insert("target".to_string(), Value::from(target));
    ctx.insert("heap_mib".to_string(), Value::from(e.a.heap_mib));
    ctx.insert("memory_mib".to_string(), Value::from(e.a.memory_mib));
    ctx.insert("binary".to_string(), Value::from(e.binary));
    // The binary's file name: the appliance's name, or `<name>-<target>` for a later
    // target of `target: [..]` (its files are `<stem>.xl`, ...).
    let stem = std::path::Path::new(e.binary)
        .file_name()
        .map_or_else(|| e.a.name.clone(), |f| f.to_string_lossy().into_owned());
    ctx.insert("stem".to_string(), Value::from(stem));
    ctx.insert("cmdline".to_string(), Value::from(e.a.cmdline.0.clone()));
    ctx
}

/// The target's deployment files, and the ones other targets write that this one
/// does not (stale after switching target).
pub(crate) fn files(e: &Emitter<'_>) -> Result<(Vec<DeployFile>, Vec<DeployFile>), String> {
    let target = e.w.target;
    let done = slots(e)?;
    let mut files = Vec::new();
    for f in &target.files {
        let mut ctx = file_context(e, &target.name);
        let name = templates::render_inline(e.env, "file name", &f.name, Value::from(ctx.clone()))?;
        ctx.insert(
            "deploy".into(),
            Value::from_object(Slots {
                done: done.clone(),
                known: Vec::new(),
                in_file: true,
            }),
        );
        let text = templates::render(e.env, &f.template, Value::from(ctx))?;
        files.push(DeployFile {
            name,
            dir: f.dir,
            text,
        });
    }
    let mut stale: Vec<DeployFile> = Vec::new();
    for t in e.cat.targets.iter().filter(|t| t.name != target.name) {
        for f in &t.files {
            let ctx = Value::from(file_context(e, &t.name));
            let name = templates::render_inline(e.env, "file name", &f.name, ctx)?;
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
