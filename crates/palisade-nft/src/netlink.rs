//! Set and map elements straight to the kernel, as nf_tables netlink messages.
//!
//! The bulk of a node's table is elements, and nft's JSON (or text) costs one to two
//! kilobytes of user-space memory per element to build and parse, where a netlink element
//! is tens of bytes. Sets and maps are still declared through nft (which writes the type
//! information `nft list` prints from); their elements are encoded here, in transactions of
//! bounded size, into sets nothing references yet (see `apply.rs`), so memory does not grow
//! with the table and splitting the elements over several transactions is invisible to
//! packets.
//!
//! Encodings (what nft 1.0.6 sends, read with `nft --debug=netlink`): every key component
//! takes a multiple of four bytes (registers); addresses and ports in network byte order;
//! marks in host byte order, except in interval sets, which compare keys as big-endian
//! bytes; a single-field interval set holds a start element and an "interval end" element
//! one past its end (also where the next range starts there); a range running to the
//! top of its type has no end element and says so in its user data (nft prints it from
//! there); concatenated interval sets (pipapo) carry each element's last key as `KEY_END`.

use std::io;

use netlink_packet_core::{DefaultNla, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::nftables::{
    Bitwise, ChainAttribute, ChainMessage, DataAttribute, Expressions, ListAttribute, Meta, MetaKey, NfTablesMessage, Register, RuleAttribute, RuleMessage, SetAttribute, SetElementAttribute,
    SetElementFlags, SetElementList, SetElementMessage, SetMessage, Verdict as NlVerdict, VerdictAttribute,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

use crate::apply::ApplyError;
use crate::ruleset::{Element, KeyType, Value, Verdict};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFTA_DATA_VALUE: u16 = 1;
/// `NFTNL_UDATA_SET_ELEM_FLAGS` holding `NFTNL_SET_ELEM_F_INTERVAL_OPEN`.
const OPEN_INTERVAL: [u8; 6] = [1, 4, 1, 0, 0, 0];
/// Elements per message: a message's element list is one netlink attribute (64 KiB at
/// most); the largest element here (an IPv6 interval map element) is under 200 bytes.
const ELEMENTS_PER_MESSAGE: usize = 256;
/// Bytes per transaction: what the agent holds at once, whatever the table's size.
pub const TRANSACTION_BYTES: usize = 2 << 20;

/// How a set's elements are laid out in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// Exact keys (a hash).
    Exact,
    /// One field with ranges: start and end elements (an rbtree).
    Ranges,
    /// Several fields with ranges: each element with its last key (pipapo).
    ConcatRanges,
}

/// The set or map elements go into: its name (as the kernel knows it), key and layout.
pub struct Target<'a> {
    pub table: &'a str,
    pub name: &'a str,
    pub key: &'a [KeyType],
    pub interval: bool,
}

impl Target<'_> {
    fn layout(&self) -> Layout {
        match (self.interval, self.key.len()) {
            (false, _) => Layout::Exact,
            (true, 1) => Layout::Ranges,
            (true, _) => Layout::ConcatRanges,
        }
    }
}

/// One component's bytes, padded to registers. `first` picks the range's start or end;
/// `past` adds one (the end element of a single-field range).
fn component(value: &Value, interval: bool, first: bool, out: &mut Vec<u8>) {
    let start = out.len();
    match value {
        Value::Addr(lo, hi) => match if first { lo } else { hi } {
            std::net::IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            std::net::IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        },
        Value::Proto(lo, hi) => out.push(if first { *lo } else { *hi }),
        Value::Port(lo, hi) => out.extend_from_slice(&(if first { *lo } else { *hi }).to_be_bytes()),
        Value::Mark(lo, hi) => {
            let mark = if first { *lo } else { *hi };
            out.extend_from_slice(&if interval { mark.to_be_bytes() } else { mark.to_ne_bytes() });
        }
    }
    while !(out.len() - start).is_multiple_of(4) {
        out.push(0);
    }
}

/// Whether a value's range runs to the top of its type (no end element then).
fn reaches_top(value: &Value) -> bool {
    match value {
        Value::Addr(_, std::net::IpAddr::V4(a)) => u32::from(*a) == u32::MAX,
        Value::Addr(_, std::net::IpAddr::V6(a)) => u128::from(*a) == u128::MAX,
        Value::Proto(_, hi) => *hi == u8::MAX,
        Value::Port(_, hi) => *hi == u16::MAX,
        Value::Mark(_, hi) => *hi == u32::MAX,
    }
}

/// The big-endian bytes one past a range's end (the next range's first key).
fn one_past(value: &Value) -> Vec<u8> {
    let mut end = Vec::new();
    component(value, true, false, &mut end);
    let width = match value {
        Value::Proto(..) => 1,
        Value::Port(..) => 2,
        _ => end.len(),
    };
    for byte in end[..width].iter_mut().rev() {
        let (next, carry) = byte.overflowing_add(1);
        *byte = next;
        if !carry {
            break;
        }
    }
    end
}

fn key(bytes: Vec<u8>) -> DataAttribute {
    DataAttribute::Value(bytes)
}

fn verdict(verdict: &Verdict) -> DataAttribute {
    let (code, chain) = match verdict {
        Verdict::Jump(chain) => (NlVerdict::Jump, chain),
        Verdict::Goto(chain) => (NlVerdict::Goto, chain),
    };
    DataAttribute::Verdict(vec![VerdictAttribute::Code(code), VerdictAttribute::Chain(chain.clone())])
}

/// The kernel elements for `elements` (sorted, disjoint, as the renderer writes them), each
/// with its verdict for a map.
fn encode<'e>(target: &Target<'_>, elements: impl Iterator<Item = (&'e Element, Option<&'e Verdict>)>) -> Vec<Vec<SetElementAttribute>> {
    let layout = target.layout();
    let mut out = Vec::new();
    let mut pending_end: Option<Vec<u8>> = None;
    for (element, data) in elements {
        let mut start = Vec::new();
        for value in element {
            component(value, target.interval, true, &mut start);
        }
        // An end element even where the next range starts right after (nft sends both; the
        // flag tells them apart).
        if layout == Layout::Ranges
            && let Some(end) = pending_end.take()
        {
            out.push(vec![SetElementAttribute::Key(key(end)), SetElementAttribute::Flags(SetElementFlags::IntervalEnd)]);
        }
        let mut attributes = vec![SetElementAttribute::Key(key(start))];
        match layout {
            Layout::Exact => {}
            Layout::Ranges => {
                let value = &element[0];
                if reaches_top(value) {
                    attributes.push(SetElementAttribute::UserData(OPEN_INTERVAL.to_vec()));
                } else {
                    pending_end = Some(one_past(value));
                }
            }
            Layout::ConcatRanges => {
                let mut last = Vec::new();
                for value in element {
                    component(value, true, false, &mut last);
                }
                attributes.push(SetElementAttribute::KeyEnd(vec![DefaultNla::new(NFTA_DATA_VALUE, last)]));
            }
        }
        if let Some(data) = data {
            attributes.push(SetElementAttribute::Data(verdict(data)));
        }
        out.push(attributes);
    }
    if let Some(end) = pending_end {
        out.push(vec![SetElementAttribute::Key(key(end)), SetElementAttribute::Flags(SetElementFlags::IntervalEnd)]);
    }
    out
}

/// Netlink messages making up transactions; each `take` hands out one transaction's bytes
/// (begin, element messages, end) once it reaches [`TRANSACTION_BYTES`].
pub struct Batches {
    current: Vec<u8>,
    messages: usize,
    /// Where the last message of the transaction being built starts.
    last: usize,
    seq: u32,
    done: Vec<Vec<u8>>,
    /// Never cut a transaction short (an update's step must be one).
    whole: bool,
}

impl Default for Batches {
    fn default() -> Self {
        Self { current: Vec::new(), messages: 0, last: 0, seq: 1, done: Vec::new(), whole: false }
    }
}

/// Messages per transaction at most: the kernel echoes an error for each failing one.
const MESSAGES_PER_TRANSACTION: usize = 4096;

impl Batches {
    fn push(&mut self, inner: impl Into<netlink_packet_netfilter::NetfilterMessageInner>, flags: u16, res_id: u16, family: NetfilterProtoFamily) {
        let mut message = NetlinkMessage::from(NetfilterMessage::new(NetfilterHeader::new(family, 0, res_id), inner));
        message.header.flags = flags;
        message.header.sequence_number = self.seq;
        self.seq = self.seq.wrapping_add(1);
        message.finalize();
        let at = self.current.len();
        self.current.resize(at + message.buffer_len(), 0);
        message.serialize(&mut self.current[at..]);
        self.last = at;
    }

    /// Counts a content message, closing the transaction once it is full.
    fn added(&mut self, messages: usize) {
        self.messages += messages;
        if !self.whole && self.current.len() >= TRANSACTION_BYTES || self.messages >= MESSAGES_PER_TRANSACTION {
            self.cut();
        }
    }

    fn begin_if_needed(&mut self) {
        if self.current.is_empty() {
            self.push(ControlMessage::BatchBegin, NLM_F_REQUEST, NFNL_SUBSYS_NFTABLES, NetfilterProtoFamily::Unspec);
        }
    }

    /// Closes the transaction being built (if any) so the next elements start another.
    pub fn cut(&mut self) {
        if self.current.is_empty() {
            return;
        }
        // One answer for the whole transaction, on its last message: the kernel runs the
        // batch within `send` and reports each failing message on its own; an ack per
        // message overflows the socket's receive buffer on a table of thousands of chains.
        let flags = u16::from_ne_bytes(self.current[self.last + 6..self.last + 8].try_into().expect("two bytes")) | NLM_F_ACK;
        self.current[self.last + 6..self.last + 8].copy_from_slice(&flags.to_ne_bytes());
        self.push(ControlMessage::BatchEnd, NLM_F_REQUEST, NFNL_SUBSYS_NFTABLES, NetfilterProtoFamily::Unspec);
        self.done.push(std::mem::take(&mut self.current));
        self.messages = 0;
    }

    /// Adds `elements` to the target (which must hold none of them), cutting transactions
    /// as they fill.
    pub fn add<'e>(&mut self, target: &Target<'_>, elements: impl Iterator<Item = (&'e Element, Option<&'e Verdict>)>) {
        self.elements(true, target, elements);
    }

    /// Removes `elements` (each as it was added) from the target.
    pub fn remove<'e>(&mut self, target: &Target<'_>, elements: impl Iterator<Item = (&'e Element, Option<&'e Verdict>)>) {
        self.elements(false, target, elements);
    }

    fn elements<'e>(&mut self, add: bool, target: &Target<'_>, elements: impl Iterator<Item = (&'e Element, Option<&'e Verdict>)>) {
        let encoded = encode(target, elements);
        for chunk in encoded.chunks(ELEMENTS_PER_MESSAGE) {
            self.begin_if_needed();
            let message = SetElementMessage {
                attributes: vec![
                    SetElementList::Table(target.table.to_string()),
                    SetElementList::Set(target.name.to_string()),
                    SetElementList::Elements(chunk.iter().map(|attributes| ListAttribute::Element(attributes.clone())).collect()),
                ],
            };
            if add {
                self.push(NfTablesMessage::NewSetElement(message), NLM_F_REQUEST | NLM_F_CREATE, 0, NetfilterProtoFamily::Inet);
            } else {
                self.push(NfTablesMessage::DeleteSetElement(message), NLM_F_REQUEST, 0, NetfilterProtoFamily::Inet);
            }
            self.added(1);
        }
    }

    /// Encodes an update's command, unless it must go through nft (returns false then).
    pub fn command(&mut self, table: &str, command: &crate::diff::Command) -> bool {
        use crate::diff::Command;
        match command {
            Command::Nft(_) => return false,
            Command::SetElements { add, set, elements } => {
                let target = Target { table, name: &set.name, key: &set.key, interval: set.interval };
                self.elements(*add, &target, elements.iter().map(|e| (e, None)));
            }
            Command::MapElements { add, map, elements } => {
                let target = Target { table, name: &map.name, key: &map.key, interval: map.interval };
                self.elements(*add, &target, elements.iter().map(|(e, v)| (e, Some(v))));
            }
            Command::MarkChain { name, mask, value } => self.mark_chain(table, name, *mask, *value),
            Command::Flush(chain) => self.flush_chain(table, chain),
            Command::Delete(crate::diff::Object::Chain, name) => self.delete_chain(table, name),
            // Maps are sets to the kernel.
            Command::Delete(_, name) => self.delete_set(table, name),
        }
        true
    }

    /// A transaction of exactly `commands` (however big), or None when one of them must go
    /// through nft.
    pub fn transaction(table: &str, commands: &[crate::diff::Command]) -> Option<Vec<u8>> {
        let mut batches = Batches { whole: true, ..Batches::default() };
        for command in commands {
            if !batches.command(table, command) {
                return None;
            }
        }
        batches.cut();
        let mut done = batches.take();
        (done.len() == 1).then(|| done.remove(0))
    }

    /// Creates a regular chain whose one rule sets the bits under `mask` of the packet mark
    /// to `value` (a class chain, of which a table has thousands: as nft sends `meta mark
    /// set meta mark & ~mask | value`, meta load, bitwise, meta set).
    pub fn mark_chain(&mut self, table: &str, chain: &str, mask: u32, value: u32) {
        self.begin_if_needed();
        let create = NfTablesMessage::NewChain(ChainMessage { attributes: vec![ChainAttribute::Table(table.to_string()), ChainAttribute::Name(chain.to_string())] });
        self.push(create, NLM_F_REQUEST | NLM_F_CREATE, 0, NetfilterProtoFamily::Inet);
        let expressions: Vec<ListAttribute<_>> = vec![
            Expressions::Meta(vec![Meta::Key(MetaKey::Mark), Meta::DestinationRegister(Register::Reg1)]).into(),
            Expressions::Bitwise(vec![
                Bitwise::SourceRegister(Register::Reg1),
                Bitwise::DestinationRegister(Register::Reg1),
                // NFT_BITWISE_BOOL: (reg & mask) ^ xor, in host byte order as the mark is.
                Bitwise::Op(0),
                Bitwise::Length(4),
                Bitwise::Mask(DataAttribute::Value((!mask).to_ne_bytes().to_vec())),
                Bitwise::Xor(DataAttribute::Value(value.to_ne_bytes().to_vec())),
            ])
            .into(),
            Expressions::Meta(vec![Meta::Key(MetaKey::Mark), Meta::SourceRegister(Register::Reg1)]).into(),
        ];
        let rule =
            NfTablesMessage::NewRule(RuleMessage { attributes: vec![RuleAttribute::Table(table.to_string()), RuleAttribute::Chain(chain.to_string()), RuleAttribute::Expressions(expressions)] });
        self.push(rule, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND, 0, NetfilterProtoFamily::Inet);
        self.added(2);
    }

    /// Deletes the rules of a chain (`flush chain`).
    pub fn flush_chain(&mut self, table: &str, chain: &str) {
        let message = NfTablesMessage::DeleteRule(RuleMessage { attributes: vec![RuleAttribute::Table(table.to_string()), RuleAttribute::Chain(chain.to_string())] });
        self.simple(message);
    }

    /// Deletes a chain (empty, and no map element jumping to it).
    pub fn delete_chain(&mut self, table: &str, chain: &str) {
        let message = NfTablesMessage::DeleteChain(ChainMessage { attributes: vec![ChainAttribute::Table(table.to_string()), ChainAttribute::Name(chain.to_string())] });
        self.simple(message);
    }

    /// Deletes a set or map (no rule looking it up).
    pub fn delete_set(&mut self, table: &str, name: &str) {
        let message = NfTablesMessage::DeleteSet(SetMessage { attributes: vec![SetAttribute::Table(table.to_string()), SetAttribute::Name(name.to_string())] });
        self.simple(message);
    }

    fn simple(&mut self, message: NfTablesMessage) {
        self.begin_if_needed();
        self.push(message, NLM_F_REQUEST, 0, NetfilterProtoFamily::Inet);
        self.added(1);
    }

    /// Transactions complete so far (call [`Self::cut`] first for the last one).
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.done)
    }
}

/// A netfilter netlink socket of the calling thread's network namespace, bound.
fn open_socket() -> Result<Socket, ApplyError> {
    let failed = |what: &str, e: io::Error| ApplyError::Netlink(format!("{what}: {e}"));
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(|e| failed("opening a netfilter netlink socket", e))?;
    socket.bind_auto().map_err(|e| failed("binding the netlink socket", e))?;
    Ok(socket)
}

/// Sends one transaction (begin, messages, end) on a netfilter netlink socket of the calling
/// thread's network namespace and waits for the kernel's answer to each message.
pub fn transact(batch: &[u8]) -> Result<(), ApplyError> {
    let failed = |what: &str, e: io::Error| ApplyError::Netlink(format!("{what}: {e}"));
    let socket = open_socket()?;
    // Acks carry only headers (not the request back), and errors say why.
    socket.set_cap_ack(true).map_err(|e| failed("NETLINK_CAP_ACK", e))?;
    let _ = socket.set_ext_ack(true);
    let size = batch.len().saturating_mul(2).max(1 << 20);
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::SndBufForce, &size).map_err(|e| failed("SO_SNDBUFFORCE", e.into()))?;
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::RcvBufForce, &(1usize << 20)).map_err(|e| failed("SO_RCVBUFFORCE", e.into()))?;
    // The kernel runs the whole batch while `send` is in progress: every answer is queued
    // when it returns.
    let sent = socket.send(batch, 0).map_err(|e| failed("sending the transaction", e))?;
    if sent != batch.len() {
        return Err(ApplyError::Netlink(format!("sent {sent} of {} bytes", batch.len())));
    }
    let expected = count_acked(batch);
    socket.set_non_blocking(true).map_err(|e| failed("O_NONBLOCK", e))?;
    let mut acked = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match socket.recv(&mut &mut buf[..], 0) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(failed("reading the kernel's answer", e)),
        };
        let mut offset = 0;
        while offset < n {
            let message = NetlinkMessage::<NetfilterMessage>::deserialize(&buf[offset..n]).map_err(|e| ApplyError::Netlink(format!("an answer the kernel sent could not be read: {e}")))?;
            let length = message.header.length as usize;
            if let NetlinkPayload::Error(error) = &message.payload {
                match error.code {
                    None => acked += 1,
                    Some(code) => {
                        let errno = io::Error::from_raw_os_error(-code.get());
                        return Err(ApplyError::rejected(format!("netlink: the kernel refused the transaction: {errno}")));
                    }
                }
            }
            offset += length.max(1).next_multiple_of(4);
        }
    }
    if acked == expected { Ok(()) } else { Err(ApplyError::Netlink(format!("the kernel answered {acked} of {expected} messages"))) }
}

/// The names of the chains and of the sets and maps in a table, read from the kernel (a
/// netlink dump; elements are not read). Used to find objects Palisade made but no longer
/// knows of (an agent killed between preparing an update and recording it), not to decide
/// what the table should hold.
pub fn object_names(table: &str) -> Result<(Vec<String>, Vec<String>), ApplyError> {
    let failed = |what: &str, e: io::Error| ApplyError::Netlink(format!("{what}: {e}"));
    let socket = open_socket()?;
    let mut names = (Vec::new(), Vec::new());
    for chains in [true, false] {
        let request = if chains {
            NfTablesMessage::GetChain(ChainMessage { attributes: vec![ChainAttribute::Table(table.to_string())] })
        } else {
            NfTablesMessage::GetSet(SetMessage { attributes: vec![SetAttribute::Table(table.to_string())] })
        };
        let mut message = NetlinkMessage::from(NetfilterMessage::new(NetfilterHeader::new(NetfilterProtoFamily::Inet, 0, 0), request));
        message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        message.header.sequence_number = 1;
        message.finalize();
        let mut buf = vec![0u8; message.buffer_len()];
        message.serialize(&mut buf);
        socket.send(&buf, 0).map_err(|e| failed("asking for the table's objects", e))?;
        'answers: loop {
            let (answer, _) = socket.recv_from_full().map_err(|e| failed("reading the table's objects", e))?;
            let mut offset = 0;
            while offset < answer.len() {
                let message = NetlinkMessage::<NetfilterMessage>::deserialize(&answer[offset..]).map_err(|e| ApplyError::Netlink(format!("an answer the kernel sent could not be read: {e}")))?;
                offset += (message.header.length as usize).max(1).next_multiple_of(4);
                match message.payload {
                    NetlinkPayload::Done(_) => break 'answers,
                    // No such table: nothing in it.
                    NetlinkPayload::Error(error) if error.code.is_some() => break 'answers,
                    NetlinkPayload::InnerMessage(NetfilterMessage { inner: NetfilterMessageInner::NfTables(NfTablesMessage::NewChain(chain)), .. }) => {
                        names.0.extend(chain.attributes.into_iter().filter_map(|a| if let ChainAttribute::Name(n) = a { Some(n) } else { None }));
                    }
                    NetlinkPayload::InnerMessage(NetfilterMessage { inner: NetfilterMessageInner::NfTables(NfTablesMessage::NewSet(set)), .. }) => {
                        names.1.extend(set.attributes.into_iter().filter_map(|a| if let SetAttribute::Name(n) = a { Some(n) } else { None }));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(names)
}

/// How many messages of a batch asked for an answer.
fn count_acked(batch: &[u8]) -> usize {
    let mut offset = 0;
    let mut count = 0;
    while offset + 16 <= batch.len() {
        let length = u32::from_ne_bytes(batch[offset..offset + 4].try_into().expect("four bytes")) as usize;
        let flags = u16::from_ne_bytes(batch[offset + 6..offset + 8].try_into().expect("two bytes"));
        if flags & NLM_F_ACK != 0 {
            count += 1;
        }
        offset += length.max(16).next_multiple_of(4);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(lo: &str, hi: &str) -> Value {
        Value::Addr(lo.parse().unwrap(), hi.parse().unwrap())
    }

    fn keys(encoded: &[Vec<SetElementAttribute>]) -> Vec<(Vec<u8>, bool)> {
        encoded
            .iter()
            .map(|attributes| {
                let key = attributes.iter().find_map(|a| if let SetElementAttribute::Key(DataAttribute::Value(v)) = a { Some(v.clone()) } else { None }).unwrap();
                let end = attributes.iter().any(|a| matches!(a, SetElementAttribute::Flags(f) if f.contains(SetElementFlags::IntervalEnd)));
                (key, end)
            })
            .collect()
    }

    #[test]
    fn single_field_ranges_are_start_and_end_elements_as_nft_sends_them() {
        let target = Target { table: "t", name: "s", key: &[KeyType::Ipv4], interval: true };
        // 10.0.0.0/8 and the adjacent 11.0.0.0-11.0.0.5: an end element between them too.
        let elements = [smallvec::smallvec![addr("10.0.0.0", "10.255.255.255")], smallvec::smallvec![addr("11.0.0.0", "11.0.0.5")], smallvec::smallvec![addr("200.0.0.0", "255.255.255.255")]];
        let encoded = encode(&target, elements.iter().map(|e| (e, None)));
        assert_eq!(keys(&encoded), vec![(vec![10, 0, 0, 0], false), (vec![11, 0, 0, 0], true), (vec![11, 0, 0, 0], false), (vec![11, 0, 0, 6], true), (vec![200, 0, 0, 0], false)]);
        // The last range runs to the top: no end element, the start says so.
        assert!(encoded[4].contains(&SetElementAttribute::UserData(OPEN_INTERVAL.to_vec())));
    }

    #[test]
    fn marks_are_host_order_in_hashes_and_big_endian_in_ranges() {
        let mark = Value::Mark(0x0005_0000, 0x0005_0000);
        let exact = Target { table: "t", name: "s", key: &[KeyType::Mark], interval: false };
        assert_eq!(keys(&encode(&exact, std::iter::once((&smallvec::smallvec![mark.clone()], None))))[0].0, 0x0005_0000u32.to_ne_bytes().to_vec());
        let ranged = Target { table: "t", name: "m", key: &[KeyType::Mark, KeyType::Proto, KeyType::Service], interval: true };
        let element = smallvec::smallvec![Value::Mark(0x0005_0000, 0x0007_0000), Value::Proto(6, 6), Value::Port(80, 90)];
        let encoded = encode(&ranged, std::iter::once((&element, Some(&Verdict::Goto("c".into())))));
        assert_eq!(keys(&encoded)[0].0, vec![0, 5, 0, 0, 6, 0, 0, 0, 0, 80, 0, 0]);
        assert!(encoded[0].contains(&SetElementAttribute::KeyEnd(vec![DefaultNla::new(NFTA_DATA_VALUE, vec![0, 7, 0, 0, 6, 0, 0, 0, 0, 90, 0, 0])])));
    }
}
