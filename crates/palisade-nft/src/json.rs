//! The ruleset as nft's JSON API (libnftables-json(5)), which `nft -j -f -` applies as one
//! transaction. Written by hand because the `nftables` crate cannot express named verdict
//! maps (nftables-rs#237); the spellings here are the ones `nft -j list` prints.

use serde_json::{Value as Json, json};

use crate::intervals::{prefix_len, to_int};
use crate::ruleset::{Chain, Element, Field, Hook, KeyType, Rule, Ruleset, Set, Statement, Value, Verdict, VerdictMap};
use crate::text::proto_name;

/// Commands that replace the whole table in one transaction.
pub fn replace_commands(ruleset: &Ruleset) -> Vec<Json> {
    let table = json!({"family": "inet", "name": ruleset.table});
    let mut commands = vec![json!({"add": {"table": table}}), json!({"delete": {"table": table}}), json!({"add": {"table": table}})];
    commands.extend(create_commands(ruleset));
    commands
}

/// Commands that create every object of the table (which must exist and be empty).
pub fn create_commands(ruleset: &Ruleset) -> Vec<Json> {
    let mut commands = create_unhooked_commands(ruleset);
    commands.extend(hook_commands(ruleset));
    commands
}

/// Commands that delete every object of a ruleset, in two transactions: first the base
/// chains (no new packet enters the old rules), then everything else.
pub fn delete_commands(ruleset: &Ruleset) -> (Vec<Json>, Vec<Json>) {
    let t = &ruleset.table;
    let unhook = ruleset.chains.iter().filter(|c| c.base.is_some()).flat_map(|c| [by_name("flush", "chain", t, &c.name), by_name("delete", "chain", t, &c.name)]).collect();
    let regular: Vec<&Chain> = ruleset.chains.iter().filter(|c| c.base.is_none()).collect();
    let mut commands = Vec::new();
    commands.extend(regular.iter().map(|c| by_name("flush", "chain", t, &c.name)));
    commands.extend(ruleset.maps.iter().map(|m| by_name("delete", "map", t, &m.name)));
    commands.extend(regular.iter().map(|c| by_name("delete", "chain", t, &c.name)));
    commands.extend(ruleset.sets.iter().map(|s| by_name("delete", "set", t, &s.name)));
    (unhook, commands)
}

/// `{verb: {kind: {family, table, name}}}`: a command on an object named in the table
/// (flush a chain, delete a chain, set or map).
pub fn by_name(verb: &str, kind: &str, table: &str, name: &str) -> Json {
    command(verb, kind, json!({"family": "inet", "table": table, "name": name}))
}

/// Commands that create every object of the ruleset nothing can reach yet: sets with their
/// elements, regular chains with their rules, verdict maps (base chains: `hook_commands`).
pub fn create_unhooked_commands(ruleset: &Ruleset) -> Vec<Json> {
    create_unhooked(ruleset, true)
}

/// The same, with the sets and maps empty or with their elements.
pub fn create_unhooked(ruleset: &Ruleset, with_elements: bool) -> Vec<Json> {
    create_unhooked_except(ruleset, with_elements, |_| false)
}

/// The same, leaving out the chains `elsewhere` picks (made by other means, before the
/// maps' elements that jump to them).
pub fn create_unhooked_except(ruleset: &Ruleset, with_elements: bool, elsewhere: impl Fn(&Chain) -> bool) -> Vec<Json> {
    unhooked_commands(ruleset, with_elements, elsewhere).collect()
}

/// [`create_unhooked_except`]'s commands one at a time, in an order each can be sent after
/// the ones before it (sets, empty chains, maps, rules): a big table goes to the kernel in
/// several transactions without its whole JSON in memory at once.
pub fn unhooked_commands<'r>(ruleset: &'r Ruleset, with_elements: bool, elsewhere: impl Fn(&Chain) -> bool) -> impl Iterator<Item = Json> + 'r {
    let t = &ruleset.table;
    let regular: Vec<&Chain> = ruleset.chains.iter().filter(|c| c.base.is_none() && !elsewhere(c)).collect();
    let sets = ruleset.sets.iter().map(move |s| command("add", "set", set(t, s, with_elements)));
    let chains = regular.clone().into_iter().map(move |c| command("add", "chain", chain(t, c)));
    // Maps after chains: their elements jump to chains.
    let maps = ruleset.maps.iter().map(move |m| command("add", "map", map(t, m, with_elements)));
    let rules = regular.into_iter().flat_map(move |c| c.rules.iter().map(move |r| command("add", "rule", rule(t, &c.name, r))));
    sets.chain(chains).chain(maps).chain(rules)
}

/// Commands that create the base chains (hooked: packets enter them) with their rules.
pub fn hook_commands(ruleset: &Ruleset) -> Vec<Json> {
    let t = &ruleset.table;
    let mut commands = Vec::new();
    for c in ruleset.chains.iter().filter(|c| c.base.is_some()) {
        commands.push(command("add", "chain", chain(t, c)));
        commands.extend(c.rules.iter().map(|r| command("add", "rule", rule(t, &c.name, r))));
    }
    commands
}

/// Wraps commands into the document `nft -j -f` reads.
pub fn document(commands: &[Json]) -> String {
    let list = serde_json::to_string(commands).expect("JSON values always serialize");
    format!("{{\"nftables\":{list}}}")
}

/// `{verb: {kind: object}}`. Built by hand because `json!` copies every value it is given
/// through serialization, which for a map of 2,000 elements cost more than rendering it.
pub fn command(verb: &str, kind: &str, object: Json) -> Json {
    let inner = serde_json::Map::from_iter([(kind.to_string(), object)]);
    Json::Object(serde_json::Map::from_iter([(verb.to_string(), Json::Object(inner))]))
}

/// Adds or deletes elements of a set or map (`elem` as `elements` or `map_elements` build it).
pub fn element_command(verb: &str, table: &str, name: &str, elem: Json) -> Json {
    let mut object = json!({"family": "inet", "table": table, "name": name});
    object["elem"] = elem;
    command(verb, "element", object)
}

fn key_type(key: &[KeyType]) -> Json {
    match key {
        [one] => json!(one.nft_name()),
        many => json!(many.iter().map(|k| k.nft_name()).collect::<Vec<_>>()),
    }
}

pub fn set(table: &str, s: &Set, with_elements: bool) -> Json {
    let mut object = json!({"family": "inet", "table": table, "name": s.name, "type": key_type(&s.key)});
    if s.interval {
        object["flags"] = json!(["interval"]);
    }
    if with_elements && !s.elements.is_empty() {
        object["elem"] = elements(&s.elements, s.interval);
    }
    object
}

/// Elements of a set (`interval`: of an interval set, see [`element`]).
pub fn elements(elements: &[Element], interval: bool) -> Json {
    Json::Array(elements.iter().map(|e| element(e, interval)).collect())
}

/// In a concatenation of an interval set, a mark is written as a range even when it is one
/// value: nft 1.0.6 puts single marks there in host byte order when deleting them, where it
/// stored them big-endian, so the deletion of `0x00070000 . tcp . 8080` fails ("No such
/// file or directory") where that of `0x00070000-0x00070000 . tcp . 8080` succeeds.
fn element(e: &Element, interval: bool) -> Json {
    match e.as_slice() {
        [one] => value(one),
        many => Json::Object(serde_json::Map::from_iter([("concat".to_string(), Json::Array(many.iter().map(|v| concat_value(v, interval)).collect()))])),
    }
}

fn concat_value(v: &Value, interval: bool) -> Json {
    match v {
        Value::Mark(lo, hi) if interval => json!({"range": [lo, hi]}),
        _ => value(v),
    }
}

fn value(v: &Value) -> Json {
    match v {
        Value::Addr(lo, hi) => {
            let v6 = lo.is_ipv6();
            match prefix_len((to_int(*lo), to_int(*hi)), v6) {
                Some(len) if len == if v6 { 128 } else { 32 } => json!(lo.to_string()),
                Some(len) => json!({"prefix": {"addr": lo.to_string(), "len": len}}),
                None => json!({"range": [lo.to_string(), hi.to_string()]}),
            }
        }
        Value::Proto(lo, hi) if lo == hi => proto_name(*lo).map_or_else(|| json!(lo), |name| json!(name)),
        Value::Proto(lo, hi) => json!({"range": [lo, hi]}),
        Value::Port(lo, hi) if lo == hi => json!(lo),
        Value::Port(lo, hi) => json!({"range": [lo, hi]}),
        Value::Mark(lo, hi) if lo == hi => json!(lo),
        Value::Mark(lo, hi) => json!({"range": [lo, hi]}),
    }
}

pub fn map(table: &str, m: &VerdictMap, with_elements: bool) -> Json {
    let mut object = json!({"family": "inet", "table": table, "name": m.name, "type": key_type(&m.key), "map": "verdict"});
    if m.interval {
        object["flags"] = json!(["interval"]);
    }
    if with_elements && !m.elements.is_empty() {
        object["elem"] = map_elements(&m.elements, m.interval);
    }
    object
}

/// Elements of a verdict map (`interval`: of an interval map, see [`element`]).
pub fn map_elements(elements: &[(Element, Verdict)], interval: bool) -> Json {
    Json::Array(elements.iter().map(|(key, verdict)| Json::Array(vec![element(key, interval), verdict_json(verdict)])).collect())
}

fn verdict_json(verdict: &Verdict) -> Json {
    match verdict {
        Verdict::Jump(chain) => json!({"jump": {"target": chain}}),
        Verdict::Goto(chain) => json!({"goto": {"target": chain}}),
    }
}

fn fields(list: &[Field]) -> Json {
    match list {
        [one] => field(*one),
        many => json!({"concat": many.iter().map(|f| field(*f)).collect::<Vec<_>>()}),
    }
}

pub fn chain(table: &str, c: &Chain) -> Json {
    let mut object = json!({"family": "inet", "table": table, "name": c.name});
    if let Some(base) = &c.base {
        let hook = match base.hook {
            Hook::Forward => "forward",
        };
        object["type"] = json!("filter");
        object["hook"] = json!(hook);
        object["prio"] = json!(base.priority);
        object["policy"] = json!("accept");
    }
    object
}

pub fn rule(table: &str, chain: &str, r: &Rule) -> Json {
    let mut expr = Vec::new();
    for s in &r.statements {
        match statement(s) {
            Json::Array(items) => expr.extend(items),
            one => expr.push(one),
        }
    }
    let mut object = json!({"family": "inet", "table": table, "chain": chain, "expr": expr});
    if let Some(comment) = &r.comment {
        object["comment"] = json!(comment);
    }
    object
}

fn field(f: Field) -> Json {
    match f {
        Field::Saddr4 => json!({"payload": {"protocol": "ip", "field": "saddr"}}),
        Field::Daddr4 => json!({"payload": {"protocol": "ip", "field": "daddr"}}),
        Field::Saddr6 => json!({"payload": {"protocol": "ip6", "field": "saddr"}}),
        Field::Daddr6 => json!({"payload": {"protocol": "ip6", "field": "daddr"}}),
        Field::L4Proto => json!({"meta": {"key": "l4proto"}}),
        Field::Dport => json!({"payload": {"protocol": "th", "field": "dport"}}),
        Field::Mark(mask) => json!({"&": [{"meta": {"key": "mark"}}, mask]}),
    }
}

/// One statement; those that are two expressions in nft's JSON come back as an array.
fn statement(s: &Statement) -> Json {
    match s {
        Statement::AcceptEstablished => {
            json!([{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}])
        }
        Statement::DropInvalid => json!([{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "invalid"}}, {"drop": null}]),
        Statement::Lookup { fields: list, set } => json!({"match": {"op": "==", "left": fields(list), "right": format!("@{set}")}}),
        Statement::Absent { fields: list, map } => json!({"match": {"op": "!=", "left": fields(list), "right": format!("@{map}")}}),
        Statement::Vmap { fields: list, map } => json!({"vmap": {"key": fields(list), "data": format!("@{map}")}}),
        Statement::SetMark { mask, value } => {
            let kept = json!({"&": [{"meta": {"key": "mark"}}, !mask]});
            let value = if *value == 0 { kept } else { json!({"|": [kept, value]}) };
            json!({"mangle": {"key": {"meta": {"key": "mark"}}, "value": value}})
        }
        Statement::IsTcp => json!({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}),
        Statement::Counter => json!({"counter": null}),
        Statement::Return => json!({"return": null}),
        Statement::Jump(chain) => json!({"jump": {"target": chain}}),
        Statement::Goto(chain) => json!({"goto": {"target": chain}}),
        Statement::Drop => json!({"drop": null}),
        Statement::RejectTcpReset => json!({"reject": {"type": "tcp reset"}}),
        Statement::RejectAdminProhibited => json!({"reject": {"type": "icmpx", "expr": "admin-prohibited"}}),
    }
}
