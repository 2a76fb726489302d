//! The table of queries in flight to upstream servers.
//!
//! Each forwarded query gets a fresh id drawn from the injected generator,
//! unique among everything in flight, and keeps it across its attempts at
//! each upstream, so the only replies we accept are ones an off-path
//! attacker would have to guess: an upstream this query was sent to, same
//! transport, same id, same question. A slow upstream's answer that arrives
//! after its attempt timed out is still taken while the query waits. Deadlines are kept in an ordered set so
//! the earliest one is always at hand for the caller's timer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use rand_core::RngCore;

use crate::query::{same_question, ReplyHead};
use crate::resolver::{ClientToken, Transport, MAX_UPSTREAMS};
use crate::wire::{self, field};

/// How many random draws to try before scanning for a free id; with the
/// table at most half full each draw succeeds with probability ≥ ½.
const RANDOM_ID_TRIES: usize = 16;
/// How many spare query buffers to keep for reuse.
const SPARE_BUFFERS: usize = 64;

/// One client query waiting for an upstream.
pub(crate) struct Pending {
    pub(crate) client: ClientToken,
    pub(crate) transport: Transport,
    /// The id the client used, restored in the reply.
    pub(crate) client_id: u16,
    /// The client's query, verbatim except for the id field, which holds the
    /// id of the current upstream attempt.
    pub(crate) query: Vec<u8>,
    /// Length of the question section at offset 12 of `query`.
    pub(crate) question_len: usize,
    /// The largest reply the client can take (UDP).
    pub(crate) client_limit: usize,
    /// Upstreams (bit `i` for index `i` of the list) this query was sent to.
    pub(crate) tried: u8,
    /// Where the current attempt went.
    pub(crate) upstream: SocketAddr,
    /// Where earlier attempts of this query went (they timed out or
    /// failed); an answer from one of them still counts.
    pub(crate) earlier: [Option<SocketAddr>; MAX_UPSTREAMS - 1],
    /// When the current attempt times out.
    pub(crate) deadline: Duration,
}

impl Pending {
    /// The question section of the stored query.
    fn question(&self) -> &[u8] {
        &self.query[field::HEADER_LEN..field::HEADER_LEN + self.question_len]
    }
}

/// Which attempt of a query in flight a reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplyMatch {
    /// The upstream of that attempt, as it stands in the list.
    pub(crate) upstream: SocketAddr,
    /// The attempt already timed out or failed: the query has moved on.
    pub(crate) late: bool,
}

/// Queries in flight, by upstream id, with their deadlines.
#[derive(Default)]
pub(crate) struct InFlight {
    by_id: BTreeMap<u16, Pending>,
    deadlines: BTreeSet<(Duration, u16)>,
    spare: Vec<Vec<u8>>,
}

impl InFlight {
    /// How many queries are waiting.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// An id no query in flight uses. The caller keeps the table below
    /// 65536 entries, so one always exists.
    pub(crate) fn free_id(&self, rng: &mut dyn RngCore) -> u16 {
        for _ in 0..RANDOM_ID_TRIES {
            let id = rng.next_u32() as u16;
            if !self.by_id.contains_key(&id) {
                return id;
            }
        }
        let start = rng.next_u32() as u16;
        (0..=u16::MAX)
            .map(|k| start.wrapping_add(k))
            .find(|id| !self.by_id.contains_key(id))
            .unwrap_or(start)
    }

    /// Records an attempt under `id` (from [`InFlight::free_id`]), writing
    /// the id into the stored query.
    pub(crate) fn insert(&mut self, id: u16, mut pending: Pending) {
        wire::set_u16(&mut pending.query, field::ID.start, id);
        self.deadlines.insert((pending.deadline, id));
        self.by_id.insert(id, pending);
    }

    /// The stored query bytes of an attempt, to send upstream.
    pub(crate) fn query_bytes(&self, id: u16) -> Option<&[u8]> {
        self.by_id.get(&id).map(|p| p.query.as_slice())
    }

    /// Which query a reply answers, if any: the id must be in flight, over
    /// that transport, for the same question, from the upstream of the
    /// current attempt or of an earlier one (a query keeps its id across
    /// attempts, so a slow server's answer still counts). Looks only: a
    /// reply that matches nothing leaves the table untouched, so a spoofed
    /// one cannot cancel the real query.
    pub(crate) fn match_reply(
        &self,
        from: SocketAddr,
        transport: Transport,
        head: &ReplyHead<'_>,
    ) -> Option<ReplyMatch> {
        let pending = self.by_id.get(&head.id)?;
        if pending.transport != transport || !same_question(pending.question(), head.question) {
            return None;
        }
        if same_endpoint(pending.upstream, from) {
            return Some(ReplyMatch {
                upstream: pending.upstream,
                late: false,
            });
        }
        let upstream = *pending
            .earlier
            .iter()
            .flatten()
            .find(|&&u| same_endpoint(u, from))?;
        Some(ReplyMatch {
            upstream,
            late: true,
        })
    }

    /// Takes a query out of the table (answered, or failed for good).
    pub(crate) fn remove(&mut self, id: u16) -> Option<Pending> {
        let pending = self.by_id.remove(&id)?;
        self.deadlines.remove(&(pending.deadline, id));
        Some(pending)
    }

    /// Takes the attempt with the earliest deadline if it is due.
    pub(crate) fn pop_expired(&mut self, now: Duration) -> Option<Pending> {
        let &(deadline, id) = self.deadlines.first()?;
        if deadline > now {
            return None;
        }
        self.remove(id)
    }

    /// The earliest deadline, for the caller's timer.
    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        self.deadlines.first().map(|&(d, _)| d)
    }

    /// An empty buffer for a query copy, reused when one is spare.
    pub(crate) fn take_buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// Returns a query buffer for reuse.
    pub(crate) fn recycle(&mut self, mut buffer: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            buffer.clear();
            self.spare.push(buffer);
        }
    }
}

/// Whether a datagram's source is the upstream we sent to. IPv4-mapped IPv6
/// sources (from a dual-stack socket) equal their IPv4 form; IPv6 flow
/// labels are ignored, scope ids are not.
fn same_endpoint(sent_to: SocketAddr, from: SocketAddr) -> bool {
    if sent_to.port() != from.port() {
        return false;
    }
    match (sent_to, from) {
        (SocketAddr::V6(a), SocketAddr::V6(b)) => {
            a.ip() == b.ip() && (a.scope_id() == b.scope_id() || a.scope_id() == 0)
        }
        _ => sent_to.ip().to_canonical() == from.ip().to_canonical(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn ipv4_mapped_source_matches_ipv4_upstream() {
        let a: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let b: SocketAddr = "[::ffff:192.0.2.1]:53".parse().unwrap();
        assert!(same_endpoint(a, b));
    }

    #[test]
    fn different_port_is_another_endpoint() {
        let a: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:5353".parse().unwrap();
        assert!(!same_endpoint(a, b));
    }

    #[test]
    fn free_id_never_returns_an_id_in_flight() {
        let mut table = InFlight::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for i in 0..2000u32 {
            let id = table.free_id(&mut rng);
            assert!(!table.by_id.contains_key(&id));
            let mut query = vec![0u8; 17];
            query[12] = 0;
            table.insert(
                id,
                Pending {
                    client: ClientToken(i as u64),
                    transport: Transport::Udp,
                    client_id: 0,
                    query,
                    question_len: 5,
                    client_limit: 512,
                    tried: 1,
                    upstream: "192.0.2.1:53".parse().unwrap(),
                    earlier: [None; MAX_UPSTREAMS - 1],
                    deadline: Duration::from_secs(u64::from(i)),
                },
            );
        }
        assert_eq!(table.len(), 2000);
    }
}
