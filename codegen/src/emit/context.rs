//! What a component's templates see: the variables of `type`, `connect`, `init`,
//! `prepare` steps (Rust), and of `claims` and `deploy` slots (plain text).

use std::collections::BTreeMap;

use minijinja::Value;

use crate::catalog::KeySpec;
use crate::model::{Device, Scalar};
use crate::templates::KeyValue;

/// A key's value as a Rust literal: `Some(..)` or `None` for an optional key.
pub fn literal(spec: &KeySpec, value: &Scalar) -> String {
    match (spec.optional, value) {
        (true, Scalar::Absent) => "None".into(),
        (true, v) => format!("Some({})", v.rust()),
        (false, v) => v.rust(),
    }
}

/// The named parts of a value, as Rust (`in_code`) or plain text.
fn parts(value: &Scalar, in_code: bool) -> Vec<(&'static str, String)> {
    let (address, len) = match value {
        Scalar::Ipv4Cidr(a, len) => (Scalar::Ipv4(*a), *len),
        Scalar::Ipv6Cidr(a, len) => (Scalar::Ipv6(*a), *len),
        // An IPv6 address alone: its groups (`[u16; 8]`), e.g. for a gateway.
        Scalar::Ipv6(a) => {
            return vec![("groups", format!("[{}]", crate::model::groups(a)))];
        }
        _ => return Vec::new(),
    };
    let groups = match &address {
        Scalar::Ipv6(a) => Some(("groups", format!("[{}]", crate::model::groups(a)))),
        _ => None,
    };
    let address = if in_code {
        address.rust()
    } else {
        address.plain()
    };
    let mut out = vec![("address", address), ("prefix_len", len.to_string())];
    out.extend(groups);
    out
}

/// A key's value for a template: a Rust literal in code, plain text elsewhere.
pub fn key_value(spec: Option<&KeySpec>, value: &Scalar, in_code: bool) -> Value {
    let text = match (in_code, spec) {
        (true, Some(spec)) => literal(spec, value),
        (true, None) => value.rust(),
        (false, _) => value.plain(),
    };
    let mut parts = parts(value, in_code);
    if in_code {
        // Not read at boot: no `boot` expression, the literal is the value.
        parts.push(("literal", text.clone()));
        parts.push(("boot", String::new()));
    }
    Value::from_object(KeyValue {
        text,
        variant: match value {
            Scalar::Choice(c) => Some(c.clone()),
            _ => None,
        },
        parts,
        // In conditions: an optional key that is set, a boolean that is true.
        set: *value != Scalar::Absent && *value != Scalar::Bool(false),
    })
}

/// The value of a key read at boot, in code: renders as `expr` (its field of `boot`);
/// `.boot` is that expression too (empty for a key that is not read at boot), and
/// `.literal` the value compiled in, for a `const` that must not depend on the boot.
pub fn boot_key_value(spec: &KeySpec, value: &Scalar, expr: String) -> Value {
    let mut parts = parts(value, true);
    parts.push(("literal", literal(spec, value)));
    parts.push(("boot", expr.clone()));
    Value::from_object(KeyValue {
        text: expr,
        variant: match value {
            Scalar::Choice(c) => Some(c.clone()),
            _ => None,
        },
        parts,
        set: true,
    })
}

/// The `instance` variable: how many included devices of the same component
/// appliance.ron declares before `dev` (0 for the first); `included` holds the indices
/// (in `devices`) of the included devices. A kernel's `Block`s find their disk by it,
/// and their deployment slots name the disk by it, so both agree on the order.
pub fn instance(devices: &[Device], included: &[usize], dev: &Device) -> usize {
    devices
        .iter()
        .enumerate()
        .take_while(|(_, d)| d.name != dev.name)
        .filter(|(i, d)| d.component == dev.component && included.contains(i))
        .count()
}

/// The device's keys as plain text (for `claims` and `deploy` slots).
pub fn plain_keys(dev: &Device) -> BTreeMap<String, Value> {
    dev.settings
        .iter()
        .map(|s| (s.key.clone(), key_value(None, &s.value, false)))
        .collect()
}

/// Builds the variables of a code template.
#[derive(Default)]
pub struct CodeContext {
    vars: BTreeMap<String, Value>,
}

impl CodeContext {
    /// Adds a variable that renders as `text` (Rust code, not escaped).
    pub fn code(&mut self, name: &str, text: impl Into<String>) -> &mut Self {
        self.vars
            .insert(name.to_string(), Value::from_safe_string(text.into()));
        self
    }

    /// Adds a variable.
    pub fn value(&mut self, name: &str, v: Value) -> &mut Self {
        self.vars.insert(name.to_string(), v);
        self
    }

    /// The context.
    pub fn build(&self) -> Value {
        Value::from(self.vars.clone())
    }
}
