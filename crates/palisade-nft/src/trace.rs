//! Follows the first packet of a new connection through a rendered ruleset, as the kernel
//! would: the base chain, verdict maps, jumps, set lookups. Lets tests check the rules
//! themselves without root, for every protocol (this machine's kernel has no SCTP sockets).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::intervals::to_int;
use crate::ruleset::{Chain, Element, Field, Ruleset, Statement, Value, Verdict};

/// The first packet of a new connection (conntrack state `new`).
#[derive(Clone, Copy, Debug)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP).
    pub protocol: u8,
    pub dport: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Accept,
    Reject,
    Drop,
}

enum Flow {
    Continue,
    Return,
    Final(Fate),
}

struct Tracer<'r> {
    ruleset: &'r Ruleset,
    chains: HashMap<&'r str, &'r Chain>,
}

/// What the ruleset does with the packet.
pub fn trace(ruleset: &Ruleset, packet: &Packet) -> Fate {
    let tracer = Tracer { ruleset, chains: ruleset.chains.iter().map(|c| (c.name.as_str(), c)).collect() };
    let base = ruleset.chains.iter().find(|c| c.base.is_some()).expect("the ruleset has a base chain");
    let mut mark = 0;
    match tracer.chain(base, packet, &mut mark, 0) {
        Flow::Final(fate) => fate,
        // The base chain's policy is accept.
        Flow::Continue | Flow::Return => Fate::Accept,
    }
}

/// A field's value for the packet, `mark` being the packet's mark as the rules left it.
fn field(packet: &Packet, mark: u32, f: Field) -> Option<Value> {
    let addr = |ip: IpAddr, v6: bool| (ip.is_ipv6() == v6).then_some(Value::Addr(ip, ip));
    match f {
        Field::Saddr4 => addr(packet.src, false),
        Field::Daddr4 => addr(packet.dst, false),
        Field::Saddr6 => addr(packet.src, true),
        Field::Daddr6 => addr(packet.dst, true),
        Field::L4Proto => Some(Value::Proto(packet.protocol, packet.protocol)),
        Field::Dport => Some(Value::Port(packet.dport, packet.dport)),
        Field::Mark(mask) => Some(Value::Mark(mark & mask, mark & mask)),
    }
}

/// Whether a single value falls in an element component (a value or a range).
fn within(value: &Value, component: &Value) -> bool {
    match (value, component) {
        (Value::Addr(ip, _), Value::Addr(lo, hi)) => lo.is_ipv6() == ip.is_ipv6() && to_int(*lo) <= to_int(*ip) && to_int(*ip) <= to_int(*hi),
        (Value::Proto(p, _), Value::Proto(lo, hi)) => lo <= p && p <= hi,
        (Value::Port(p, _), Value::Port(lo, hi)) => lo <= p && p <= hi,
        (Value::Mark(m, _), Value::Mark(lo, hi)) => lo <= m && m <= hi,
        _ => false,
    }
}

fn member(key: &[Value], elements: &[Element]) -> bool {
    elements.iter().any(|e| e.len() == key.len() && key.iter().zip(e).all(|(v, c)| within(v, c)))
}

impl<'r> Tracer<'r> {
    fn chain(&self, chain: &Chain, packet: &Packet, mark: &mut u32, depth: usize) -> Flow {
        assert!(depth < 16, "jump loop in the ruleset");
        for rule in &chain.rules {
            match self.rule(&rule.statements, packet, mark, depth) {
                Flow::Continue => {}
                other => return other,
            }
        }
        Flow::Continue
    }

    /// Runs a rule's statements; `Continue` means the rule did not match (or matched
    /// without a verdict) and the next rule runs.
    fn rule(&self, statements: &[Statement], packet: &Packet, mark: &mut u32, depth: usize) -> Flow {
        for statement in statements {
            match statement {
                // The packet starts a new connection: neither state matches.
                Statement::AcceptEstablished | Statement::DropInvalid => return Flow::Continue,
                Statement::Lookup { fields, set } => {
                    let Some(key) = fields.iter().map(|f| field(packet, *mark, *f)).collect::<Option<Vec<_>>>() else {
                        return Flow::Continue;
                    };
                    let set = self.ruleset.sets.iter().find(|s| &s.name == set).expect("lookup names a set");
                    if !member(&key, &set.elements) {
                        return Flow::Continue;
                    }
                }
                Statement::Absent { fields, map } => {
                    let Some(key) = fields.iter().map(|f| field(packet, *mark, *f)).collect::<Option<Vec<_>>>() else {
                        return Flow::Continue;
                    };
                    let map = self.ruleset.maps.iter().find(|m| &m.name == map).expect("the absence test names a map");
                    if map.elements.iter().any(|(e, _)| e.len() == key.len() && key.iter().zip(e).all(|(v, c)| within(v, c))) {
                        return Flow::Continue;
                    }
                }
                Statement::Vmap { fields, map } => {
                    let Some(key) = fields.iter().map(|f| field(packet, *mark, *f)).collect::<Option<Vec<_>>>() else {
                        return Flow::Continue;
                    };
                    let map = self.ruleset.maps.iter().find(|m| &m.name == map).expect("vmap names a map");
                    let Some((_, verdict)) = map.elements.iter().find(|(e, _)| e.len() == key.len() && key.iter().zip(e).all(|(v, c)| within(v, c))) else {
                        return Flow::Continue;
                    };
                    let target = self.chains.get(verdict.chain()).expect("map elements name chains");
                    return match (self.chain(target, packet, mark, depth + 1), verdict) {
                        (Flow::Final(fate), _) => Flow::Final(fate),
                        // A jump: the target's return (or end) continues after this rule.
                        (Flow::Continue | Flow::Return, Verdict::Jump(_)) => Flow::Continue,
                        // A goto does not come back: the target's return ends this chain too.
                        (Flow::Continue | Flow::Return, Verdict::Goto(_)) => Flow::Return,
                    };
                }
                Statement::IsTcp => {
                    if packet.protocol != 6 {
                        return Flow::Continue;
                    }
                }
                Statement::Counter => {}
                Statement::SetMark { mask, value } => *mark = (*mark & !mask) | value,
                Statement::Return => return Flow::Return,
                Statement::Jump(target) => {
                    let target = self.chains.get(target.as_str()).expect("jump names a chain");
                    // A jump comes back: the target's return (or end) goes on with this rule.
                    if let Flow::Final(fate) = self.chain(target, packet, mark, depth + 1) {
                        return Flow::Final(fate);
                    }
                }
                Statement::Goto(target) => {
                    let target = self.chains.get(target.as_str()).expect("goto names a chain");
                    // A goto does not come back: the target's return ends this chain too.
                    return match self.chain(target, packet, mark, depth + 1) {
                        Flow::Final(fate) => Flow::Final(fate),
                        Flow::Continue | Flow::Return => Flow::Return,
                    };
                }
                Statement::Drop => return Flow::Final(Fate::Drop),
                Statement::RejectTcpReset | Statement::RejectAdminProhibited => return Flow::Final(Fate::Reject),
            }
        }
        Flow::Continue
    }
}
