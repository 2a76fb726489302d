//! Writing replies straight into the caller's buffer.
//!
//! Every local reply is built by hand: header, the question copied verbatim
//! from the query (so the answer echoes the client's case), answer records
//! whose owner is a compression pointer to that question, and an OPT record
//! when the client sent one. If the answers would not fit the client's limit,
//! the reply is cut back to the question alone with TC set, so the client
//! retries over TCP (RFC 2181 §9, RFC 7766).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::query::{Edns, Query};
use crate::wire::{self, field, flags, rcode, rtype, CLASS_IN};

/// Pointer to the question name at offset 12: every answer's owner.
const QUESTION_POINTER: [u8; 2] = [0xC0, 0x0C];

/// The largest reply a client can take over a transport.
pub(crate) fn reply_limit(edns: Option<&Edns>, tcp: bool) -> usize {
    if tcp {
        return wire::MAX_TCP_PAYLOAD;
    }
    match edns {
        None => wire::MIN_UDP_PAYLOAD,
        Some(e) => (e.payload as usize).clamp(wire::MIN_UDP_PAYLOAD, wire::MAX_UDP_PAYLOAD),
    }
}

/// Header flags of a reply: QR, the query's opcode, RD and CD echoed, AA and
/// RA as told, and the low four bits of the response code.
fn reply_flags(query_flags: u16, rcode_value: u16, authoritative: bool, recursion: bool) -> u16 {
    let mut f = flags::QR | (query_flags & (flags::OPCODE_MASK | flags::RD | flags::CD));
    if authoritative {
        f |= flags::AA;
    }
    if recursion {
        f |= flags::RA;
    }
    f | (rcode_value & flags::RCODE_MASK)
}

/// Writes a header-only reply (no question): what FORMERR and NOTIMP get,
/// since the question may be unreadable or meaningless.
pub(crate) fn write_header_only(out: &mut Vec<u8>, id: u16, query_flags: u16, rcode_value: u16) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&reply_flags(query_flags, rcode_value, false, false).to_be_bytes());
    out.extend_from_slice(&[0; 8]);
}

/// A reply being written into the caller's buffer.
pub(crate) struct Reply<'o> {
    out: &'o mut Vec<u8>,
    question_end: usize,
    answers: u16,
    edns: Option<Edns>,
    rcode: u16,
    limit: usize,
}

impl<'o> Reply<'o> {
    /// Starts a reply to `query`: header and echoed question.
    pub(crate) fn start(
        out: &'o mut Vec<u8>,
        query: &Query<'_>,
        rcode_value: u16,
        authoritative: bool,
        recursion: bool,
        tcp: bool,
    ) -> Self {
        out.clear();
        out.extend_from_slice(&query.id.to_be_bytes());
        let f = reply_flags(query.flags, rcode_value, authoritative, recursion);
        out.extend_from_slice(&f.to_be_bytes());
        out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(query.question);
        Reply {
            question_end: out.len(),
            out,
            answers: 0,
            edns: query.edns,
            rcode: rcode_value,
            limit: reply_limit(query.edns.as_ref(), tcp),
        }
    }

    fn record_head(&mut self, rr_type: u16, ttl: u32, rdlen: u16) {
        self.out.extend_from_slice(&QUESTION_POINTER);
        self.out.extend_from_slice(&rr_type.to_be_bytes());
        self.out.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.out.extend_from_slice(&ttl.to_be_bytes());
        self.out.extend_from_slice(&rdlen.to_be_bytes());
        self.answers = self.answers.saturating_add(1);
    }

    /// Adds an A record for the question name.
    pub(crate) fn push_a(&mut self, ttl: u32, addr: Ipv4Addr) {
        self.record_head(rtype::A, ttl, 4);
        self.out.extend_from_slice(&addr.octets());
    }

    /// Adds an AAAA record for the question name.
    pub(crate) fn push_aaaa(&mut self, ttl: u32, addr: Ipv6Addr) {
        self.record_head(rtype::AAAA, ttl, 16);
        self.out.extend_from_slice(&addr.octets());
    }

    /// Adds a PTR record whose target is `target` (wire labels, no root).
    pub(crate) fn push_ptr(&mut self, ttl: u32, target: &[u8]) {
        self.record_head(rtype::PTR, ttl, (target.len() + 1) as u16);
        self.out.extend_from_slice(target);
        self.out.push(0);
    }

    /// Finishes the reply: truncates it (TC, question only) when it would
    /// exceed the client's limit, then appends our OPT if the client used
    /// EDNS. Returns whether the reply was truncated.
    pub(crate) fn finish(self) -> bool {
        let opt_len = if self.edns.is_some() {
            wire::OPT_RECORD_LEN
        } else {
            0
        };
        let mut answers = self.answers;
        let truncated = self.out.len() + opt_len > self.limit;
        if truncated {
            self.out.truncate(self.question_end);
            answers = 0;
            let f = wire::get_u16(self.out, field::FLAGS.start) | flags::TC;
            wire::set_u16(self.out, field::FLAGS.start, f);
        }
        wire::set_u16(self.out, field::ANCOUNT.start, answers);
        if let Some(edns) = self.edns {
            write_opt(self.out, edns, self.rcode);
            wire::set_u16(self.out, field::ARCOUNT.start, 1);
        }
        truncated
    }
}

/// Appends our OPT record: our payload size, the high bits of the response
/// code, version 0, DO echoed, no options.
fn write_opt(out: &mut Vec<u8>, edns: Edns, rcode_value: u16) {
    out.push(0);
    out.extend_from_slice(&rtype::OPT.to_be_bytes());
    out.extend_from_slice(&(wire::MAX_UDP_PAYLOAD as u16).to_be_bytes());
    let extended = ((rcode_value >> 4) & 0xFF) as u32;
    let do_bit = if edns.dnssec_ok { 0x8000 } else { 0 };
    out.extend_from_slice(&((extended << 24) | do_bit).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
}

/// Writes a reply carrying only a response code (NXDOMAIN, SERVFAIL,
/// BADVERS, NODATA) to `query`.
pub(crate) fn write_rcode(
    out: &mut Vec<u8>,
    query: &Query<'_>,
    rcode_value: u16,
    authoritative: bool,
    recursion: bool,
    tcp: bool,
) {
    Reply::start(out, query, rcode_value, authoritative, recursion, tcp).finish();
}

/// Rewrites an upstream reply that is too large for a UDP client into the
/// header and question alone with TC set, keeping the upstream's flags and
/// response code, so the client retries over TCP.
pub(crate) fn truncate_relayed(out: &mut Vec<u8>, question_len: usize) {
    out.truncate(field::HEADER_LEN + question_len);
    let f = wire::get_u16(out, field::FLAGS.start) | flags::TC;
    wire::set_u16(out, field::FLAGS.start, f);
    wire::set_u16(out, field::ANCOUNT.start, 0);
    wire::set_u16(out, field::NSCOUNT.start, 0);
    wire::set_u16(out, field::ARCOUNT.start, 0);
}

/// The SERVFAIL we send when no upstream could answer.
pub(crate) fn servfail(out: &mut Vec<u8>, query: &Query<'_>, tcp: bool) {
    write_rcode(out, query, rcode::SERVFAIL, false, true, tcp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_limit_without_edns_is_512() {
        assert_eq!(reply_limit(None, false), 512);
    }

    #[test]
    fn udp_limit_is_clamped_between_512_and_4096() {
        let small = Edns {
            payload: 100,
            version: 0,
            dnssec_ok: false,
        };
        let big = Edns {
            payload: 65000,
            ..small
        };
        assert_eq!(reply_limit(Some(&small), false), 512);
        assert_eq!(reply_limit(Some(&big), false), 4096);
    }

    #[test]
    fn tcp_limit_is_65535() {
        assert_eq!(reply_limit(None, true), 65535);
    }
}
