//! A small lab for resolver tests: networks, endpoints, queries built and
//! replies decoded with hickory-proto (an independent implementation of the
//! wire format), a seeded generator and a virtual clock.

#![allow(dead_code, reason = "each test file uses a different part of the lab")]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use switchyard_dns::{
    ClientToken, EndpointRecord, NetworkPolicy, Outcome, Resolver, ResolverConfig, Scope, Transport,
};

pub const CLIENT: ClientToken = ClientToken(42);
pub const CLIENT_ID: u16 = 0xBEEF;

pub fn upstream(n: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, n], 53))
}

/// A query as a stub resolver sends it: id 0xBEEF, RD set, no EDNS.
pub fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    query_message(name, rtype)
        .to_vec()
        .expect("encodable query")
}

/// The same with an EDNS OPT advertising `payload`.
pub fn query_edns(name: &str, rtype: RecordType, payload: u16) -> Vec<u8> {
    let mut m = query_message(name, rtype);
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    m.set_edns(edns);
    m.to_vec().expect("encodable query")
}

pub fn query_message(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::new(CLIENT_ID, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    let mut name = Name::from_ascii(name).expect("name");
    name.set_fqdn(true);
    m.add_query(Query::query(name, rtype));
    m
}

pub fn decode(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).expect("reply must decode")
}

/// IPv4 addresses in the answer section, in order.
pub fn v4_answers(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(A(a)) => Some(*a),
            _ => None,
        })
        .collect()
}

/// IPv6 addresses in the answer section, in order.
pub fn v6_answers(m: &Message) -> Vec<Ipv6Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::AAAA(AAAA(a)) => Some(*a),
            _ => None,
        })
        .collect()
}

/// PTR targets in the answer section, dotted without the trailing dot.
pub fn ptr_answers(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(p) => Some(p.0.to_ascii().trim_end_matches('.').to_owned()),
            _ => None,
        })
        .collect()
}

/// An upstream's answer to a query we forwarded: same id and question,
/// `rcode`, and one A record when `addr` is given.
pub fn upstream_reply(forwarded: &[u8], rcode: ResponseCode, addr: Option<Ipv4Addr>) -> Vec<u8> {
    let q = decode(forwarded);
    let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    r.metadata.response_code = rcode;
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.add_queries(q.queries.clone());
    if let Some(addr) = addr {
        r.add_answer(Record::from_rdata(
            q.queries[0].name.clone(),
            60,
            RData::A(A(addr)),
        ));
    }
    r.to_vec().expect("encodable reply")
}

/// A resolver with three upstreams, a seeded generator and a clock.
pub struct Lab {
    pub resolver: Resolver,
    pub rng: ChaCha8Rng,
    pub now: Duration,
    pub out: Vec<u8>,
}

impl Lab {
    pub fn new() -> Self {
        Self::with_config(ResolverConfig {
            upstreams: vec![upstream(1), upstream(2), upstream(3)],
            ..ResolverConfig::default()
        })
    }

    pub fn with_config(config: ResolverConfig) -> Self {
        Lab {
            resolver: Resolver::new(config),
            rng: ChaCha8Rng::seed_from_u64(7),
            now: Duration::from_secs(100),
            out: Vec::new(),
        }
    }

    pub fn network(&mut self, id: &str, name: &str, names: bool, forward: bool) {
        self.resolver.set_network(
            id,
            NetworkPolicy {
                name: name.into(),
                names,
                forward,
            },
        );
    }

    /// A user-defined network: names on, forwarding on.
    pub fn user_network(&mut self, id: &str, name: &str) {
        self.network(id, name, true, true);
    }

    pub fn endpoint(
        &mut self,
        id: &str,
        net: &str,
        name: &str,
        aliases: &[&str],
        v4: Option<&str>,
        v6: Option<&str>,
    ) {
        self.resolver.upsert_endpoint(EndpointRecord {
            endpoint_id: id.into(),
            network_id: net.into(),
            name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            ipv4: v4.map(|a| a.parse().expect("ipv4")),
            ipv6: v6.map(|a| a.parse().expect("ipv6")),
        });
    }

    /// Sends raw bytes as a client query.
    pub fn send(&mut self, scope: &[&str], transport: Transport, bytes: &[u8]) -> Outcome {
        let scope = Scope::new(scope.iter().copied());
        self.resolver.handle_query(
            self.now,
            &scope,
            CLIENT,
            transport,
            bytes,
            &mut self.rng,
            &mut self.out,
        )
    }

    /// Asks over UDP; returns the decoded local reply, or `None` with the
    /// outcome when the query was forwarded or dropped.
    pub fn ask(&mut self, scope: &[&str], name: &str, rtype: RecordType) -> Message {
        let outcome = self.send(scope, Transport::Udp, &query(name, rtype));
        assert_eq!(
            outcome,
            Outcome::Reply {
                client: CLIENT,
                transport: Transport::Udp
            },
            "expected a local reply for {name} {rtype:?}"
        );
        decode(&self.out)
    }

    /// Asks over UDP and returns the outcome (for forwarded queries).
    pub fn ask_outcome(&mut self, scope: &[&str], name: &str, rtype: RecordType) -> Outcome {
        self.send(scope, Transport::Udp, &query(name, rtype))
    }

    /// An upstream's message arrives.
    pub fn upstream_sends(
        &mut self,
        from: SocketAddr,
        transport: Transport,
        bytes: &[u8],
    ) -> Outcome {
        self.resolver.handle_upstream_reply(
            self.now,
            from,
            transport,
            bytes,
            &mut self.rng,
            &mut self.out,
        )
    }

    /// Advances the clock and collects what timeouts produce.
    pub fn advance(&mut self, by: Duration) -> Vec<(Outcome, Vec<u8>)> {
        self.now += by;
        let mut emitted = Vec::new();
        self.resolver
            .poll_timeouts(self.now, &mut self.rng, |o, bytes| {
                emitted.push((o, bytes.to_vec()))
            });
        emitted
    }
}

pub fn reply_to_client(transport: Transport) -> Outcome {
    Outcome::Reply {
        client: CLIENT,
        transport,
    }
}

pub fn is_local_reply(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Reply { .. })
}

pub fn rcode(m: &Message) -> ResponseCode {
    m.metadata.response_code
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}
