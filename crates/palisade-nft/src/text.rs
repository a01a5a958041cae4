//! The ruleset in nft's own syntax, formatted as `nft list table` prints it. Loadable with
//! `nft -f`; used for `palisade dataplane render` and for snapshot tests.

use std::fmt::Write;

use crate::intervals::{prefix_len, to_int};
use crate::ruleset::{Chain, Element, Field, Hook, Rule, Ruleset, Set, Statement, Value, Verdict, VerdictMap};

/// The table, as `nft list table inet <name>` shows it.
pub fn table(ruleset: &Ruleset) -> String {
    let mut blocks: Vec<String> = Vec::new();
    blocks.extend(ruleset.sets.iter().map(set));
    blocks.extend(ruleset.maps.iter().map(map));
    blocks.extend(ruleset.chains.iter().map(chain));
    format!("table inet {} {{\n{}}}\n", ruleset.table, blocks.join("\n"))
}

/// A file `nft -f` loads to replace the table in one transaction (creating it first, so the
/// delete never fails).
pub fn replace_script(ruleset: &Ruleset) -> String {
    format!("table inet {name}\ndelete table inet {name}\n{}", table(ruleset), name = ruleset.table)
}

fn set(s: &Set) -> String {
    let key: Vec<&str> = s.key.iter().map(|k| k.nft_name()).collect();
    let mut out = format!("\tset {} {{\n\t\ttype {}\n", s.name, key.join(" . "));
    if s.interval {
        out.push_str("\t\tflags interval\n");
    }
    if !s.elements.is_empty() {
        let elements: Vec<String> = s.elements.iter().map(element).collect();
        let _ = writeln!(out, "\t\telements = {{ {} }}", elements.join(", "));
    }
    out.push_str("\t}\n");
    out
}

fn map(m: &VerdictMap) -> String {
    let key: Vec<&str> = m.key.iter().map(|k| k.nft_name()).collect();
    let mut out = format!("\tmap {} {{\n\t\ttype {} : verdict\n", m.name, key.join(" . "));
    if m.interval {
        out.push_str("\t\tflags interval\n");
    }
    if !m.elements.is_empty() {
        let elements: Vec<String> = m.elements.iter().map(|(key, verdict)| format!("{} : {}", element(key), verdict_text(verdict))).collect();
        let _ = writeln!(out, "\t\telements = {{ {} }}", elements.join(", "));
    }
    out.push_str("\t}\n");
    out
}

fn chain(c: &Chain) -> String {
    let mut out = format!("\tchain {} {{\n", c.name);
    if let Some(base) = &c.base {
        let hook = match base.hook {
            Hook::Forward => "forward",
        };
        let priority = match base.priority {
            0 => "filter".to_string(),
            p if p > 0 => format!("filter + {p}"),
            p => format!("filter - {}", -p),
        };
        let _ = writeln!(out, "\t\ttype filter hook {hook} priority {priority}; policy accept;");
    }
    for r in &c.rules {
        let _ = writeln!(out, "\t\t{}", rule(r));
    }
    out.push_str("\t}\n");
    out
}

pub fn rule(r: &Rule) -> String {
    let mut words: Vec<String> = r.statements.iter().map(statement).collect();
    if let Some(comment) = &r.comment {
        words.push(format!("comment {}", quote(comment)));
    }
    words.join(" ")
}

fn field(f: Field) -> String {
    match f {
        Field::Saddr4 => "ip saddr".to_string(),
        Field::Daddr4 => "ip daddr".to_string(),
        Field::Saddr6 => "ip6 saddr".to_string(),
        Field::Daddr6 => "ip6 daddr".to_string(),
        Field::L4Proto => "meta l4proto".to_string(),
        Field::Dport => "th dport".to_string(),
        Field::Mark(mask) => format!("meta mark & 0x{mask:08x}"),
    }
}

/// A lookup's key: nft lists a lone masked mark compared with a set as `... == @set`.
fn lookup_key(list: &[Field], negated: bool) -> String {
    let key = list.iter().map(|f| field(*f)).collect::<Vec<_>>().join(" . ");
    match (list, negated) {
        (_, true) => format!("{key} !="),
        ([Field::Mark(_)], false) => format!("{key} =="),
        _ => key,
    }
}

fn statement(s: &Statement) -> String {
    match s {
        Statement::AcceptEstablished => "ct state established,related accept".to_string(),
        Statement::DropInvalid => "ct state invalid drop".to_string(),
        Statement::Lookup { fields, set } => format!("{} @{set}", lookup_key(fields, false)),
        Statement::Absent { fields, map } => format!("{} @{map}", lookup_key(fields, true)),
        Statement::Vmap { fields, map } => {
            let fields: Vec<String> = fields.iter().map(|f| field(*f)).collect();
            format!("{} vmap @{map}", fields.join(" . "))
        }
        // nft lists `(mark & m) | v` with the set bits folded into the mask.
        Statement::SetMark { mask, value: 0 } => format!("meta mark set meta mark & 0x{:08x}", !mask),
        Statement::SetMark { mask, value } => format!("meta mark set meta mark & 0x{:08x} | 0x{value:08x}", !mask | value),
        Statement::IsTcp => "meta l4proto tcp".to_string(),
        Statement::Counter => "counter".to_string(),
        Statement::Return => "return".to_string(),
        Statement::Jump(chain) => format!("jump {chain}"),
        Statement::Goto(chain) => format!("goto {chain}"),
        Statement::Drop => "drop".to_string(),
        Statement::RejectTcpReset => "reject with tcp reset".to_string(),
        Statement::RejectAdminProhibited => "reject with icmpx admin-prohibited".to_string(),
    }
}

fn verdict_text(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Jump(chain) => format!("jump {chain}"),
        Verdict::Goto(chain) => format!("goto {chain}"),
    }
}

pub fn element(e: &Element) -> String {
    e.iter().map(value).collect::<Vec<_>>().join(" . ")
}

/// Protocol names nft prints.
pub fn proto_name(p: u8) -> Option<&'static str> {
    match p {
        6 => Some("tcp"),
        17 => Some("udp"),
        132 => Some("sctp"),
        _ => None,
    }
}

fn value(v: &Value) -> String {
    match v {
        Value::Addr(lo, hi) => {
            let v6 = lo.is_ipv6();
            match prefix_len((to_int(*lo), to_int(*hi)), v6) {
                Some(len) if len == if v6 { 128 } else { 32 } => lo.to_string(),
                Some(len) => format!("{lo}/{len}"),
                None => format!("{lo}-{hi}"),
            }
        }
        Value::Proto(lo, hi) if lo == hi => proto_name(*lo).map_or_else(|| lo.to_string(), str::to_string),
        Value::Proto(lo, hi) => format!("{lo}-{hi}"),
        Value::Port(lo, hi) if lo == hi => lo.to_string(),
        Value::Port(lo, hi) => format!("{lo}-{hi}"),
        Value::Mark(lo, hi) if lo == hi => format!("0x{lo:08x}"),
        Value::Mark(lo, hi) => format!("0x{lo:08x}-0x{hi:08x}"),
    }
}

/// A double-quoted nft string (comments may not contain quotes; they are replaced).
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "'"))
}
