//! Reading and validating a client's query without allocating.
//!
//! A query we accept has a readable header, opcode QUERY, exactly one
//! question whose name uses no compression, well-formed records in the other
//! sections, at most one OPT record (in the additional section, owned by the
//! root) and no trailing bytes. Anything else is answered FORMERR or NOTIMP,
//! or dropped when not even a header can be read or it is not a query.

use crate::wire::{self, field, flags, rtype, MAX_NAME_LEN};

/// Most labels a name can have: each takes at least two bytes of the 254
/// available before the root.
const MAX_LABELS: usize = 127;

/// A question name, lowercased, as wire labels without the root byte, with
/// the offset of each label so `NAME.NETWORK` suffixes can be tried without
/// re-scanning. Lives on the stack: building one never allocates.
#[derive(Clone)]
pub(crate) struct NameKey {
    bytes: [u8; MAX_NAME_LEN],
    len: u8,
    offsets: [u8; MAX_LABELS],
    labels: u8,
}

impl NameKey {
    /// The empty (root) name.
    pub(crate) fn root() -> Self {
        NameKey {
            bytes: [0; MAX_NAME_LEN],
            len: 0,
            offsets: [0; MAX_LABELS],
            labels: 0,
        }
    }

    /// Builds the key from a dotted name; `None` when DNS cannot carry it.
    pub(crate) fn from_dotted(name: &str) -> Option<Self> {
        let labels = wire::encode_labels(name)?;
        Self::from_wire_labels(&labels)
    }

    /// Builds the key from uncompressed wire labels (no root byte).
    fn from_wire_labels(labels: &[u8]) -> Option<Self> {
        let mut key = NameKey::root();
        let mut at = 0;
        while at < labels.len() {
            let len = labels[at] as usize;
            if len == 0 || len > wire::MAX_LABEL_LEN || at + 1 + len > labels.len() {
                return None;
            }
            key.push_label(&labels[at + 1..at + 1 + len])?;
            at += 1 + len;
        }
        Some(key)
    }

    fn push_label(&mut self, label: &[u8]) -> Option<()> {
        let start = self.len as usize;
        let end = start + 1 + label.len();
        // Leave room for the root byte the wire form adds.
        if end + 1 > MAX_NAME_LEN || self.labels as usize >= MAX_LABELS {
            return None;
        }
        self.offsets[self.labels as usize] = start as u8;
        self.labels += 1;
        self.bytes[start] = label.len() as u8;
        self.bytes[start + 1..end].copy_from_slice(label);
        wire::lowercase_in_place(&mut self.bytes[start + 1..end]);
        self.len = end as u8;
        Some(())
    }

    /// The whole name as lowercase wire labels, no root byte.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// How many labels the name has.
    #[inline]
    pub(crate) fn label_count(&self) -> usize {
        self.labels as usize
    }

    /// The name split before label `i` (0 < i < label_count): the leading
    /// labels and the trailing ones.
    #[inline]
    pub(crate) fn split_at_label(&self, i: usize) -> (&[u8], &[u8]) {
        let at = self.offsets[i] as usize;
        self.as_bytes().split_at(at)
    }

    /// The text of label `i` (lowercase).
    pub(crate) fn label(&self, i: usize) -> &[u8] {
        let at = self.offsets[i] as usize;
        let len = self.bytes[at] as usize;
        &self.bytes[at + 1..at + 1 + len]
    }
}

/// The EDNS facts of a query that shape the reply (RFC 6891).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edns {
    /// The requester's UDP payload size, as sent (not yet clamped).
    pub(crate) payload: u16,
    /// EDNS version; we speak version 0 only.
    pub(crate) version: u8,
    /// DNSSEC OK, echoed back (RFC 3225).
    pub(crate) dnssec_ok: bool,
}

/// A validated query, borrowing the packet it came from.
pub(crate) struct Query<'a> {
    pub(crate) id: u16,
    /// The raw flags word of the query (RD and CD get echoed).
    pub(crate) flags: u16,
    /// The question section, verbatim (original case), to echo in replies.
    pub(crate) question: &'a [u8],
    pub(crate) qtype: u16,
    pub(crate) qclass: u16,
    pub(crate) edns: Option<Edns>,
    /// The question name, lowercased: the index is searched with this.
    pub(crate) name: NameKey,
}

/// Why a packet is not a query we can answer normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Shorter than a header: nobody to answer.
    TooShort,
    /// QR set: a response sent to the server port, never answered (that is
    /// how reflection loops start).
    NotAQuery,
    /// An opcode other than QUERY.
    NotImp { id: u16, flags: u16 },
    /// Structurally wrong: wrong question count, truncated or bad names or
    /// records, a second OPT, an OPT not owned by the root, trailing bytes.
    FormErr { id: u16, flags: u16 },
}

/// Parses and validates a query.
pub(crate) fn parse(packet: &[u8]) -> Result<Query<'_>, Reject> {
    if packet.len() < field::HEADER_LEN {
        return Err(Reject::TooShort);
    }
    let id = wire::get_u16(packet, field::ID.start);
    let flags_word = wire::get_u16(packet, field::FLAGS.start);
    if flags_word & flags::QR != 0 {
        return Err(Reject::NotAQuery);
    }
    if wire::opcode(flags_word) != 0 {
        return Err(Reject::NotImp {
            id,
            flags: flags_word,
        });
    }
    let formerr = Reject::FormErr {
        id,
        flags: flags_word,
    };
    if wire::get_u16(packet, field::QDCOUNT.start) != 1 {
        return Err(formerr);
    }

    // The question name: plain labels only (a pointer here could only point
    // into the header, which is never a name).
    let mut name = NameKey::root();
    let mut at = field::HEADER_LEN;
    loop {
        let len = *packet.get(at).ok_or(formerr)? as usize;
        if len == 0 {
            at += 1;
            break;
        }
        if len > wire::MAX_LABEL_LEN {
            return Err(formerr);
        }
        let label = packet.get(at + 1..at + 1 + len).ok_or(formerr)?;
        name.push_label(label).ok_or(formerr)?;
        at += 1 + len;
    }
    let fixed = packet.get(at..at + 4).ok_or(formerr)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    at += 4;
    let question = &packet[field::HEADER_LEN..at];

    let ancount = wire::get_u16(packet, field::ANCOUNT.start) as usize;
    let nscount = wire::get_u16(packet, field::NSCOUNT.start) as usize;
    let arcount = wire::get_u16(packet, field::ARCOUNT.start) as usize;
    let mut edns = None;
    for index in 0..ancount + nscount + arcount {
        let additional = index >= ancount + nscount;
        let owner = at;
        at = wire::skip_name(packet, at).map_err(|_| formerr)?;
        let rr = packet.get(at..at + 10).ok_or(formerr)?;
        let rr_type = u16::from_be_bytes([rr[0], rr[1]]);
        let class = u16::from_be_bytes([rr[2], rr[3]]);
        let ttl = u32::from_be_bytes([rr[4], rr[5], rr[6], rr[7]]);
        let rdlen = u16::from_be_bytes([rr[8], rr[9]]) as usize;
        at += 10;
        if packet.len() < at + rdlen {
            return Err(formerr);
        }
        at += rdlen;
        if rr_type == rtype::OPT {
            // RFC 6891 §6.1.1: one OPT, in the additional section, owned by root.
            if !additional || edns.is_some() || packet[owner] != 0 {
                return Err(formerr);
            }
            edns = Some(Edns {
                payload: class,
                version: (ttl >> 16) as u8,
                dnssec_ok: ttl & 0x8000 != 0,
            });
        }
    }
    if at != packet.len() {
        return Err(formerr);
    }
    Ok(Query {
        id,
        flags: flags_word,
        question,
        qtype,
        qclass,
        edns,
        name,
    })
}

/// The header and question of an upstream reply, for matching it to the
/// query we sent. `None` when they cannot be read.
pub(crate) struct ReplyHead<'a> {
    pub(crate) id: u16,
    pub(crate) flags: u16,
    /// The question section, verbatim.
    pub(crate) question: &'a [u8],
}

/// Reads the header and the single question of a response.
pub(crate) fn parse_reply_head(packet: &[u8]) -> Option<ReplyHead<'_>> {
    if packet.len() < field::HEADER_LEN {
        return None;
    }
    let flags_word = wire::get_u16(packet, field::FLAGS.start);
    if flags_word & flags::QR == 0 || wire::get_u16(packet, field::QDCOUNT.start) != 1 {
        return None;
    }
    let mut at = field::HEADER_LEN;
    let mut encoded = 0;
    loop {
        let len = *packet.get(at)? as usize;
        encoded += len + 1;
        if len > wire::MAX_LABEL_LEN || encoded > MAX_NAME_LEN {
            return None;
        }
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    at += 4;
    let question = packet.get(field::HEADER_LEN..at)?;
    Some(ReplyHead {
        id: wire::get_u16(packet, field::ID.start),
        flags: flags_word,
        question,
    })
}

/// Compares two question sections: names case-insensitively (servers may
/// echo case differently, RFC 4343), type and class exactly.
pub(crate) fn same_question(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() || a.len() < 5 {
        return false;
    }
    let split = a.len() - 4;
    a[..split].eq_ignore_ascii_case(&b[..split]) && a[split..] == b[split..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(name);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn question_name_is_lowercased_with_label_offsets() {
        let packet = query(b"\x03WeB\x03Net\x00", 1);
        let q = parse(&packet).expect("valid");
        assert_eq!(q.name.as_bytes(), b"\x03web\x03net");
        assert_eq!(q.name.label_count(), 2);
        assert_eq!(q.name.split_at_label(1), (&b"\x03web"[..], &b"\x03net"[..]));
        assert_eq!(q.question, &packet[12..]);
    }

    #[test]
    fn compressed_question_name_is_formerr() {
        let packet = query(b"\xC0\x0C", 1);
        assert!(matches!(parse(&packet), Err(Reject::FormErr { .. })));
    }

    #[test]
    fn trailing_bytes_are_formerr() {
        let mut packet = query(b"\x01a\x00", 1);
        packet.push(0);
        assert!(matches!(parse(&packet), Err(Reject::FormErr { .. })));
    }

    #[test]
    fn opt_record_is_read() {
        let mut packet = query(b"\x01a\x00", 1);
        packet[11] = 1;
        packet.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0, 0, 0]);
        let q = parse(&packet).expect("valid");
        assert_eq!(
            q.edns,
            Some(Edns {
                payload: 1232,
                version: 0,
                dnssec_ok: true
            })
        );
    }

    #[test]
    fn two_opt_records_are_formerr() {
        let mut packet = query(b"\x01a\x00", 1);
        packet[11] = 2;
        for _ in 0..2 {
            packet.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
        }
        assert!(matches!(parse(&packet), Err(Reject::FormErr { .. })));
    }

    #[test]
    fn same_question_ignores_name_case_only() {
        assert!(same_question(
            b"\x01A\x00\x00\x01\x00\x01",
            b"\x01a\x00\x00\x01\x00\x01"
        ));
        // 'A' (0x41) vs 'a' (0x61) in the type field must not compare equal.
        assert!(!same_question(
            b"\x01a\x00\x00\x41\x00\x01",
            b"\x01a\x00\x00\x61\x00\x01"
        ));
    }

    #[test]
    fn name_key_from_dotted_matches_wire_form() {
        let key = NameKey::from_dotted("Web.NET.").expect("valid");
        assert_eq!(key.as_bytes(), b"\x03web\x03net");
        assert_eq!(key.label(1), b"net");
    }
}
