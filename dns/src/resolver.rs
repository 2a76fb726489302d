//! The resolver state machine: records in, query bytes in, decisions and
//! reply bytes out. The caller owns every socket, clock and random source.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use crate::answer::{self, Reply};
use crate::forward::{InFlight, Pending};
use crate::query::{self, NameKey, Query, Reject};
use crate::records::{EndpointRecord, Family, NetId, NetworkPolicy, Records, Scope};
use crate::reverse;
use crate::wire::{self, field, flags, rcode, rtype, CLASS_IN};

/// Default TTL of local answers, in seconds (see the crate docs for why 5).
pub const DEFAULT_TTL: u32 = 5;
/// Default time to wait for one upstream before trying the next.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Default bound on queries waiting for upstreams.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Most upstream servers used, as glibc's MAXNS.
pub const MAX_UPSTREAMS: usize = 3;
/// How long an upstream that let a query time out is tried after the
/// others: long enough that a dead first server does not cost every query
/// its timeout, short enough that a server back up is used again soon.
pub const UPSTREAM_SUSPECT_FOR: Duration = Duration::from_secs(30);
/// Hard ceiling on queries in flight: upstream ids are 16 bits, and keeping
/// the id space at most half used keeps random id draws cheap.
pub const MAX_IN_FLIGHT_CEILING: usize = 32_768;

/// How the resolver behaves; everything has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolverConfig {
    /// TTL of local answers, seconds.
    pub ttl: u32,
    /// Upstream servers, tried in order (at most [`MAX_UPSTREAMS`] are used;
    /// one that recently timed out goes last, see [`UPSTREAM_SUSPECT_FOR`]).
    pub upstreams: Vec<SocketAddr>,
    /// How long to wait for one upstream before moving on.
    pub upstream_timeout: Duration,
    /// Most queries waiting for upstreams at once (capped at
    /// [`MAX_IN_FLIGHT_CEILING`]); beyond it queries get SERVFAIL at once.
    pub max_in_flight: usize,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            ttl: DEFAULT_TTL,
            upstreams: Vec::new(),
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// The transport a message came over; forwarding keeps it (UDP→UDP,
/// TCP→TCP) and it decides the reply size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Transport {
    /// Datagrams: replies limited by the client's EDNS size (512 without).
    Udp,
    /// A stream with 2-byte length framing: replies up to 65535 bytes.
    Tcp,
}

/// The caller's handle for where a reply goes (a socket address, a TCP
/// connection, a simulated container). Opaque to the resolver: it is only
/// stored with a forwarded query and handed back with its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientToken(pub u64);

/// What the caller must do after handing the resolver a message. The bytes
/// to send are in the `out` buffer the caller passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Send the bytes to this client over this transport.
    Reply {
        /// Who gets the reply.
        client: ClientToken,
        /// Over which transport.
        transport: Transport,
    },
    /// Send the bytes (the client's query under a fresh id) to this upstream
    /// over this transport; its reply goes to
    /// [`Resolver::handle_upstream_reply`].
    Forward {
        /// Where to send.
        upstream: SocketAddr,
        /// UDP or TCP, as the client used.
        transport: Transport,
    },
    /// Send nothing.
    Drop(DropReason),
}

/// Why a message was dropped without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DropReason {
    /// Shorter than a DNS header: there is no id to answer to.
    TooShort,
    /// A response (QR set) sent to the server port: never answered, so two
    /// servers cannot be made to bounce messages forever.
    NotAQuery,
    /// An upstream message whose header and question cannot be read.
    MalformedReply,
    /// An upstream reply that matches no query in flight (wrong source,
    /// transport, id or question): late, duplicated or spoofed.
    Unmatched,
    /// SERVFAIL or REFUSED from an upstream whose attempt already timed
    /// out: the query is waiting on another upstream now.
    LateFailure,
}

/// Counters for `lab show`, metrics and tests. A query may move several
/// (a forwarded query that times out everywhere counts in `forwarded`,
/// `upstream_timeouts` and `servfail`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolverStats {
    /// Client messages handed to [`Resolver::handle_query`].
    pub queries: u64,
    /// Local answers with at least one record.
    pub answered_local: u64,
    /// Local NOERROR answers with no records (known name, other type).
    pub nodata: u64,
    /// NXDOMAIN answers (unknown name, and the sandbox may not forward).
    pub nxdomain: u64,
    /// Local answers cut to the question with TC set, and upstream replies
    /// cut the same way because the UDP client could not take them.
    pub truncated: u64,
    /// Client queries sent upstream (first attempt).
    pub forwarded: u64,
    /// Further attempts at the next upstream.
    pub upstream_retries: u64,
    /// Attempts that timed out.
    pub upstream_timeouts: u64,
    /// Upstream replies of SERVFAIL or REFUSED (each moves on to the next).
    pub upstream_failures: u64,
    /// Upstream replies relayed to clients.
    pub relayed: u64,
    /// SERVFAIL replies we generated (all upstreams failed, none configured,
    /// or over capacity).
    pub servfail: u64,
    /// FORMERR replies.
    pub formerr: u64,
    /// NOTIMP replies (opcode other than QUERY).
    pub notimp: u64,
    /// BADVERS replies (EDNS version other than 0).
    pub badvers: u64,
    /// Client messages dropped: shorter than a header, or not queries.
    pub dropped_malformed: u64,
    /// Upstream messages dropped: unreadable or matching nothing in flight.
    pub dropped_unmatched: u64,
    /// Queries refused with SERVFAIL because too many were in flight.
    pub over_capacity: u64,
    /// First attempts that skipped an upstream because it recently timed
    /// out.
    pub suspect_skipped: u64,
    /// Answers relayed from an upstream after its attempt had timed out
    /// (the query was waiting on the next upstream).
    pub late_relayed: u64,
    /// SERVFAIL or REFUSED from an upstream whose attempt had already timed
    /// out, dropped (the query goes on waiting on the next upstream).
    pub late_failures: u64,
}

/// The embedded resolver for 127.0.0.11: one per daemon (or simulated
/// host), shared by all its sandboxes, each query carrying the asking
/// sandbox's [`Scope`].
pub struct Resolver {
    config: ResolverConfig,
    /// Per upstream (same index as the list): until when it is tried after
    /// the others because a query to it timed out. Zero: healthy.
    suspect_until: [Duration; MAX_UPSTREAMS],
    records: Records,
    in_flight: InFlight,
    stats: ResolverStats,
    // Scratch space reused across queries so answering does not allocate.
    scratch_nets: Vec<NetId>,
    scratch_addrs: Vec<IpAddr>,
    scratch_names: Vec<u8>,
    scratch_ranges: Vec<Range<usize>>,
    scratch_out: Vec<u8>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("config", &self.config)
            .field("endpoints", &self.records.endpoint_count())
            .field("in_flight", &self.in_flight.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver with no records and no networks.
    pub fn new(mut config: ResolverConfig) -> Self {
        config.upstreams = distinct_upstreams(&config.upstreams);
        config.max_in_flight = config.max_in_flight.min(MAX_IN_FLIGHT_CEILING);
        Resolver {
            config,
            suspect_until: [Duration::ZERO; MAX_UPSTREAMS],
            records: Records::default(),
            in_flight: InFlight::default(),
            stats: ResolverStats::default(),
            scratch_nets: Vec::new(),
            scratch_addrs: Vec::new(),
            scratch_names: Vec::new(),
            scratch_ranges: Vec::new(),
            scratch_out: Vec::new(),
        }
    }

    /// The configuration in force (upstreams truncated, bound capped).
    pub fn config(&self) -> &ResolverConfig {
        &self.config
    }

    /// Replaces the upstream servers (e.g. after the host's resolv.conf
    /// changed). The first [`MAX_UPSTREAMS`] distinct ones are kept, all
    /// presumed healthy.
    /// Queries in flight keep their current attempt; their retries use the
    /// new list.
    pub fn set_upstreams(&mut self, upstreams: &[SocketAddr]) {
        self.suspect_until = [Duration::ZERO; MAX_UPSTREAMS];
        self.config.upstreams = distinct_upstreams(upstreams);
    }

    /// Sets or replaces a network's policy and name (on network create, or
    /// when the controller learns it). Takes effect on the next query.
    pub fn set_network(&mut self, network_id: &str, policy: NetworkPolicy) {
        self.records.set_network(network_id, policy);
    }

    /// Forgets a network's policy (on network removal): its names stop
    /// resolving and it stops allowing forwarding.
    pub fn remove_network(&mut self, network_id: &str) {
        self.records.remove_network(network_id);
    }

    /// The policy set for a network.
    pub fn network(&self, network_id: &str) -> Option<&NetworkPolicy> {
        self.records.network(network_id)
    }

    /// Adds or replaces an endpoint's record (connect, rename, alias or
    /// address change). Takes effect on the next query.
    pub fn upsert_endpoint(&mut self, record: EndpointRecord) {
        self.records.upsert_endpoint(record);
    }

    /// Removes an endpoint's record (disconnect); unknown ids are ignored.
    pub fn remove_endpoint(&mut self, endpoint_id: &str) {
        self.records.remove_endpoint(endpoint_id);
    }

    /// An endpoint's current record.
    pub fn endpoint(&self, endpoint_id: &str) -> Option<&EndpointRecord> {
        self.records.endpoint(endpoint_id)
    }

    /// How many endpoint records are held.
    pub fn endpoint_count(&self) -> usize {
        self.records.endpoint_count()
    }

    /// How many queries are waiting for upstreams.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The counters.
    pub fn stats(&self) -> &ResolverStats {
        &self.stats
    }

    /// When [`Resolver::poll_timeouts`] next has work: the earliest upstream
    /// deadline, if anything is in flight.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.in_flight.next_deadline()
    }

    /// Addresses `name` resolves to for a sandbox with this scope, sorted,
    /// without wire format or rotation (for `lab show` and tests). Follows
    /// the same rules as queries: `NAME` or `NAME.NETWORK`, any case.
    pub fn lookup(&self, scope: &Scope, name: &str, family: Family) -> Vec<IpAddr> {
        let Some(key) = NameKey::from_dotted(name) else {
            return Vec::new();
        };
        let mut nets = Vec::new();
        self.records.resolve_scope(scope, &mut nets);
        let mut addrs = Vec::new();
        self.records
            .find(&nets, &key, |rec| family.pick(rec, &mut addrs));
        addrs.sort_unstable();
        addrs.dedup();
        addrs
    }

    /// Names a PTR query for `addr` answers for a sandbox with this scope, in
    /// answer order (container name, then `NAME.NETWORK`, per endpoint).
    pub fn lookup_ptr(&self, scope: &Scope, addr: IpAddr) -> Vec<String> {
        let mut nets = Vec::new();
        self.records.resolve_scope(scope, &mut nets);
        let mut names: Vec<String> = Vec::new();
        self.records.ptr_targets(&nets, addr, |name, net| {
            let mut text = labels_to_dotted(name);
            if let Some(net) = net {
                text.push('.');
                text.push_str(&labels_to_dotted(net));
            }
            if !names.iter().any(|n| n.eq_ignore_ascii_case(&text)) {
                names.push(text);
            }
        });
        names
    }

    /// Handles one message from a client in a sandbox with `scope`. The reply
    /// or the query to forward is written into `out` (cleared first; reuse
    /// it across calls to avoid allocating).
    #[allow(
        clippy::too_many_arguments,
        reason = "sans-I/O entry point: each argument is one thing the caller owns"
    )]
    pub fn handle_query(
        &mut self,
        now: Duration,
        scope: &Scope,
        client: ClientToken,
        transport: Transport,
        query: &[u8],
        rng: &mut dyn RngCore,
        out: &mut Vec<u8>,
    ) -> Outcome {
        self.stats.queries += 1;
        out.clear();
        let reply = Outcome::Reply { client, transport };
        let q = match query::parse(query) {
            Ok(q) => q,
            Err(Reject::TooShort) => {
                self.stats.dropped_malformed += 1;
                return Outcome::Drop(DropReason::TooShort);
            }
            Err(Reject::NotAQuery) => {
                self.stats.dropped_malformed += 1;
                return Outcome::Drop(DropReason::NotAQuery);
            }
            Err(Reject::NotImp { id, flags }) => {
                self.stats.notimp += 1;
                answer::write_header_only(out, id, flags, rcode::NOTIMP);
                return reply;
            }
            Err(Reject::FormErr { id, flags }) => {
                self.stats.formerr += 1;
                answer::write_header_only(out, id, flags, rcode::FORMERR);
                return reply;
            }
        };
        let tcp = transport == Transport::Tcp;
        if q.edns.is_some_and(|e| e.version != 0) {
            self.stats.badvers += 1;
            answer::write_rcode(out, &q, rcode::BADVERS, false, false, tcp);
            return reply;
        }

        let mut nets = std::mem::take(&mut self.scratch_nets);
        let forward = self.records.resolve_scope(scope, &mut nets);
        let answered =
            q.qclass == CLASS_IN && self.answer_locally(&q, &nets, forward, tcp, rng, out);
        self.scratch_nets = nets;
        if answered {
            return reply;
        }
        if !forward {
            // No network of this sandbox may forward (e.g. all --internal):
            // NXDOMAIN is definitive, so getaddrinfo fails at once
            // (EAI_NONAME) instead of retrying as it would on REFUSED or
            // SERVFAIL.
            self.stats.nxdomain += 1;
            answer::write_rcode(out, &q, rcode::NXDOMAIN, true, false, tcp);
            return reply;
        }
        self.forward(now, &q, query, client, transport, rng, out)
    }

    /// Answers from the records if the name is ours; false if it is not.
    fn answer_locally(
        &mut self,
        q: &Query<'_>,
        nets: &[NetId],
        forward: bool,
        tcp: bool,
        rng: &mut dyn RngCore,
        out: &mut Vec<u8>,
    ) -> bool {
        if nets.is_empty() {
            return false;
        }
        if let Some(addr) = reverse::parse(&q.name) {
            return self.answer_ptr(q, nets, addr, forward, tcp, out);
        }
        let family = match q.qtype {
            rtype::A => Some(Family::V4),
            rtype::AAAA => Some(Family::V6),
            _ => None,
        };
        let addrs = &mut self.scratch_addrs;
        addrs.clear();
        let known = self.records.find(nets, &q.name, |rec| {
            if let Some(family) = family {
                family.pick(rec, addrs);
            }
        });
        if !known {
            return false;
        }
        addrs.sort_unstable();
        addrs.dedup();
        if addrs.len() > 1 {
            // Round robin: a random rotation of a canonical order, drawn
            // from the injected generator so simulations replay exactly.
            let start = rng.next_u32() as usize % addrs.len();
            addrs.rotate_left(start);
        }
        let ttl = self.config.ttl;
        let mut reply = Reply::start(out, q, rcode::NOERROR, true, forward, tcp);
        for addr in addrs.iter() {
            match *addr {
                IpAddr::V4(v4) => reply.push_a(ttl, v4),
                IpAddr::V6(v6) => reply.push_aaaa(ttl, v6),
            }
        }
        let nodata = addrs.is_empty();
        let truncated = reply.finish();
        self.count_local(nodata, truncated);
        true
    }

    /// Answers a reverse name if one of our endpoints holds the address.
    fn answer_ptr(
        &mut self,
        q: &Query<'_>,
        nets: &[NetId],
        addr: IpAddr,
        forward: bool,
        tcp: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        let names = &mut self.scratch_names;
        let ranges = &mut self.scratch_ranges;
        names.clear();
        ranges.clear();
        self.records.ptr_targets(nets, addr, |name, net| {
            let start = names.len();
            names.extend_from_slice(name);
            if let Some(net) = net {
                names.extend_from_slice(net);
            }
            let new = start..names.len();
            let duplicate = ranges
                .iter()
                .any(|r| names[r.clone()].eq_ignore_ascii_case(&names[new.clone()]));
            if duplicate {
                names.truncate(start);
            } else {
                ranges.push(new);
            }
        });
        if ranges.is_empty() {
            return false;
        }
        let mut reply = Reply::start(out, q, rcode::NOERROR, true, forward, tcp);
        let nodata = q.qtype != rtype::PTR;
        if !nodata {
            for range in ranges.iter() {
                reply.push_ptr(self.config.ttl, &names[range.clone()]);
            }
        }
        let truncated = reply.finish();
        self.count_local(nodata, truncated);
        true
    }

    fn count_local(&mut self, nodata: bool, truncated: bool) {
        if nodata {
            self.stats.nodata += 1;
        } else {
            self.stats.answered_local += 1;
        }
        if truncated {
            self.stats.truncated += 1;
        }
    }

    /// Starts forwarding a query, or answers SERVFAIL when it cannot.
    #[allow(
        clippy::too_many_arguments,
        reason = "internal continuation of handle_query with the same inputs"
    )]
    fn forward(
        &mut self,
        now: Duration,
        q: &Query<'_>,
        packet: &[u8],
        client: ClientToken,
        transport: Transport,
        rng: &mut dyn RngCore,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let tcp = transport == Transport::Tcp;
        let reply = Outcome::Reply { client, transport };
        if self.config.upstreams.is_empty() {
            tracing::debug!("no upstream servers configured; answering SERVFAIL");
            self.stats.servfail += 1;
            answer::servfail(out, q, tcp);
            return reply;
        }
        if self.in_flight.len() >= self.config.max_in_flight {
            self.stats.over_capacity += 1;
            self.stats.servfail += 1;
            answer::servfail(out, q, tcp);
            return reply;
        }
        let mut copy = self.in_flight.take_buffer();
        copy.extend_from_slice(packet);
        let pending = Pending {
            client,
            transport,
            client_id: q.id,
            query: copy,
            question_len: q.question.len(),
            client_limit: answer::reply_limit(q.edns.as_ref(), tcp),
            tried: 0,
            upstream: self.config.upstreams[0],
            earlier: [None; MAX_UPSTREAMS - 1],
            deadline: now,
        };
        self.stats.forwarded += 1;
        self.send_next(now, pending, rng, out)
    }

    /// Sends a pending query to its next upstream, or, when none is left,
    /// answers the client SERVFAIL.
    fn send_next(
        &mut self,
        now: Duration,
        mut pending: Pending,
        rng: &mut dyn RngCore,
        out: &mut Vec<u8>,
    ) -> Outcome {
        out.clear();
        let Some(index) = self.next_upstream(now, pending.tried) else {
            return self.fail(pending, out);
        };
        let retry = pending.tried != 0;
        let id = if retry {
            self.stats.upstream_retries += 1;
            if let Some(slot) = pending.earlier.iter_mut().find(|s| s.is_none()) {
                *slot = Some(pending.upstream);
            }
            // The query keeps its id: a late answer to an earlier attempt
            // still matches.
            wire::get_u16(&pending.query, field::ID.start)
        } else {
            if index != 0 {
                self.stats.suspect_skipped += 1;
            }
            self.in_flight.free_id(rng)
        };
        let upstream = self.config.upstreams[index];
        pending.tried |= 1 << index;
        pending.upstream = upstream;
        pending.deadline = now.saturating_add(self.config.upstream_timeout);
        let transport = pending.transport;
        self.in_flight.insert(id, pending);
        if let Some(bytes) = self.in_flight.query_bytes(id) {
            out.extend_from_slice(bytes);
        }
        Outcome::Forward {
            upstream,
            transport,
        }
    }

    /// The upstream to try next, given those already `tried` (a bitmask):
    /// the first untried one in list order that is not suspect, else the
    /// first untried one.
    fn next_upstream(&self, now: Duration, tried: u8) -> Option<usize> {
        let mut untried = (0..self.config.upstreams.len()).filter(|&i| tried & (1 << i) == 0);
        let first = untried.clone().next();
        untried.find(|&i| self.suspect_until[i] <= now).or(first)
    }

    /// Marks `upstream` (if still in the list) as answering, or as suspect
    /// until `UPSTREAM_SUSPECT_FOR` from `now`.
    fn note_upstream(&mut self, now: Duration, upstream: SocketAddr, answered: bool) {
        if let Some(i) = self.config.upstreams.iter().position(|&u| u == upstream) {
            self.suspect_until[i] = if answered {
                Duration::ZERO
            } else {
                now.saturating_add(UPSTREAM_SUSPECT_FOR)
            };
        }
    }

    /// Every upstream failed: SERVFAIL to the client, under its own id.
    fn fail(&mut self, mut pending: Pending, out: &mut Vec<u8>) -> Outcome {
        self.stats.servfail += 1;
        wire::set_u16(&mut pending.query, field::ID.start, pending.client_id);
        let tcp = pending.transport == Transport::Tcp;
        match query::parse(&pending.query) {
            Ok(q) => answer::servfail(out, &q, tcp),
            // Unreachable in practice (the query was validated on the way
            // in), but a header-only SERVFAIL is still a correct reply.
            Err(_) => answer::write_header_only(out, pending.client_id, 0, rcode::SERVFAIL),
        }
        let outcome = Outcome::Reply {
            client: pending.client,
            transport: pending.transport,
        };
        self.in_flight.recycle(pending.query);
        outcome
    }

    /// Handles a message from an upstream server. A matching answer is
    /// relayed to its client under the client's id (TC answers pass through
    /// as they are, so the client retries over TCP); SERVFAIL and REFUSED
    /// move on to the next upstream; anything unmatched is dropped.
    pub fn handle_upstream_reply(
        &mut self,
        now: Duration,
        from: SocketAddr,
        transport: Transport,
        reply: &[u8],
        rng: &mut dyn RngCore,
        out: &mut Vec<u8>,
    ) -> Outcome {
        out.clear();
        let Some(head) = query::parse_reply_head(reply) else {
            self.stats.dropped_unmatched += 1;
            return Outcome::Drop(DropReason::MalformedReply);
        };
        let Some(matched) = self.in_flight.match_reply(from, transport, &head) else {
            self.stats.dropped_unmatched += 1;
            return Outcome::Drop(DropReason::Unmatched);
        };
        // Any matched reply, even SERVFAIL, shows the server is up.
        self.note_upstream(now, matched.upstream, true);
        let code = head.flags & flags::RCODE_MASK;
        let failed = code == rcode::SERVFAIL || code == rcode::REFUSED;
        if failed && matched.late {
            // That server already had its turn; the current attempt goes on.
            self.stats.late_failures += 1;
            return Outcome::Drop(DropReason::LateFailure);
        }
        let Some(pending) = self.in_flight.remove(head.id) else {
            // Not reachable: match_reply just found the query under this id.
            self.stats.dropped_unmatched += 1;
            return Outcome::Drop(DropReason::Unmatched);
        };
        if failed {
            self.stats.upstream_failures += 1;
            return self.send_next(now, pending, rng, out);
        }
        if matched.late {
            self.stats.late_relayed += 1;
        }
        out.extend_from_slice(reply);
        wire::set_u16(out, field::ID.start, pending.client_id);
        // Echo the client's question exactly, whatever case the upstream used.
        let question = field::HEADER_LEN..field::HEADER_LEN + pending.question_len;
        out[question.clone()].copy_from_slice(&pending.query[question]);
        if pending.transport == Transport::Udp && out.len() > pending.client_limit {
            answer::truncate_relayed(out, pending.question_len);
            self.stats.truncated += 1;
        }
        self.stats.relayed += 1;
        let outcome = Outcome::Reply {
            client: pending.client,
            transport: pending.transport,
        };
        self.in_flight.recycle(pending.query);
        outcome
    }

    /// Moves every attempt whose deadline has passed on to the next upstream,
    /// or answers its client SERVFAIL when none is left. `emit` gets each
    /// resulting outcome with the bytes to send (valid during the call).
    pub fn poll_timeouts(
        &mut self,
        now: Duration,
        rng: &mut dyn RngCore,
        mut emit: impl FnMut(Outcome, &[u8]),
    ) {
        let mut buf = std::mem::take(&mut self.scratch_out);
        while let Some(pending) = self.in_flight.pop_expired(now) {
            self.stats.upstream_timeouts += 1;
            self.note_upstream(now, pending.upstream, false);
            let outcome = self.send_next(now, pending, rng, &mut buf);
            emit(outcome, &buf);
        }
        self.scratch_out = buf;
    }
}

/// The first [`MAX_UPSTREAMS`] distinct servers, in order: a server listed
/// twice would be asked twice, and its health tracked in two places.
fn distinct_upstreams(upstreams: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut distinct: Vec<SocketAddr> = Vec::with_capacity(MAX_UPSTREAMS);
    for &u in upstreams {
        if distinct.len() == MAX_UPSTREAMS {
            break;
        }
        if !distinct.contains(&u) {
            distinct.push(u);
        }
    }
    distinct
}

/// Wire labels (no root) as dotted text.
fn labels_to_dotted(labels: &[u8]) -> String {
    let mut text = String::with_capacity(labels.len());
    let mut at = 0;
    while at < labels.len() {
        let len = labels[at] as usize;
        if at > 0 {
            text.push('.');
        }
        let end = (at + 1 + len).min(labels.len());
        text.push_str(&String::from_utf8_lossy(&labels[at + 1..end]));
        at = end;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_to_dotted_joins_labels() {
        assert_eq!(labels_to_dotted(b"\x03web\x03net"), "web.net");
    }

    #[test]
    fn new_caps_upstreams_and_in_flight_bound() {
        let r = Resolver::new(ResolverConfig {
            upstreams: (1..=5)
                .map(|i| SocketAddr::from(([192, 0, 2, i], 53)))
                .collect(),
            max_in_flight: 1 << 20,
            ..ResolverConfig::default()
        });
        assert_eq!(r.config().upstreams.len(), MAX_UPSTREAMS);
        assert_eq!(r.config().max_in_flight, MAX_IN_FLIGHT_CEILING);
    }
}
