//! Cost of one query through the resolver logic, no sockets: a local A
//! answer, a shared alias with rotation, and the forward path (query out,
//! reply relayed back). `hickory_baseline` does the same local answer by
//! decoding and re-encoding through `hickory_proto::op::Message`, the
//! alternative the hand-written wire code was measured against.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use switchyard_dns::{
    ClientToken, EndpointRecord, NetworkPolicy, Outcome, Resolver, ResolverConfig, Scope, Transport,
};

const UPSTREAM: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
    53,
);

/// 20 networks of 25 containers each, plus 8 containers sharing "api" on n0.
fn resolver() -> Resolver {
    let mut r = Resolver::new(ResolverConfig {
        upstreams: vec![UPSTREAM],
        ..ResolverConfig::default()
    });
    for n in 0..20u8 {
        r.set_network(
            &format!("net{n:02}-0123456789abcdef0123456789abcdef0123456789abcdef012345"),
            NetworkPolicy {
                name: format!("net{n}"),
                names: true,
                forward: true,
            },
        );
        for c in 0..25u8 {
            r.upsert_endpoint(EndpointRecord {
                endpoint_id: format!("ep-{n}-{c}"),
                network_id: format!(
                    "net{n:02}-0123456789abcdef0123456789abcdef0123456789abcdef012345"
                ),
                name: format!("app{c}-{n}"),
                aliases: vec![format!("svc{c}")],
                ipv4: Some([172, 18 + n, 0, 2 + c].into()),
                ipv6: None,
            });
        }
    }
    for i in 0..8u8 {
        r.upsert_endpoint(EndpointRecord {
            endpoint_id: format!("api-{i}"),
            network_id: "net00-0123456789abcdef0123456789abcdef0123456789abcdef012345".into(),
            name: format!("api-{i}"),
            aliases: vec!["api".into()],
            ipv4: Some([172, 18, 1, 2 + i].into()),
            ipv6: None,
        });
    }
    r
}

fn scope() -> Scope {
    Scope::new(["net00-0123456789abcdef0123456789abcdef0123456789abcdef012345"])
}

fn query(name: &str, edns: bool) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn bench_local(c: &mut Criterion) {
    let mut group = c.benchmark_group("local");
    group.throughput(Throughput::Elements(1));
    let scope = scope();
    for (label, name, edns) in [
        ("a_udp", "app7-0", false),
        ("a_udp_edns", "app7-0", true),
        ("a_name_dot_network", "app7-0.net0", false),
        ("shared_alias_8", "api", false),
    ] {
        let mut r = resolver();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut out = Vec::with_capacity(4096);
        let q = query(name, edns);
        group.bench_function(label, |b| {
            b.iter(|| {
                let outcome = r.handle_query(
                    Duration::ZERO,
                    &scope,
                    ClientToken(1),
                    Transport::Udp,
                    black_box(&q),
                    &mut rng,
                    &mut out,
                );
                debug_assert!(matches!(outcome, Outcome::Reply { .. }));
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn bench_forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward");
    group.throughput(Throughput::Elements(1));
    let scope = scope();
    let mut r = resolver();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut out = Vec::with_capacity(4096);
    let mut reply = Vec::with_capacity(4096);
    let q = query("example.com", false);
    group.bench_function("unknown_name_round_trip", |b| {
        b.iter(|| {
            let outcome = r.handle_query(
                Duration::ZERO,
                &scope,
                ClientToken(1),
                Transport::Udp,
                black_box(&q),
                &mut rng,
                &mut out,
            );
            debug_assert!(matches!(outcome, Outcome::Forward { .. }));
            // The upstream's answer: the forwarded query with QR set.
            reply.clear();
            reply.extend_from_slice(&out);
            reply[2] |= 0x80;
            let outcome = r.handle_upstream_reply(
                Duration::ZERO,
                UPSTREAM,
                Transport::Udp,
                &reply,
                &mut rng,
                &mut out,
            );
            debug_assert!(matches!(outcome, Outcome::Reply { .. }));
            black_box(out.len())
        })
    });
    group.finish();
}

fn bench_hickory_baseline(c: &mut Criterion) {
    let mut group = c.benchmark_group("hickory_baseline");
    group.throughput(Throughput::Elements(1));
    let q = query("app7-0", false);
    group.bench_function("decode_and_encode_a_answer", |b| {
        b.iter(|| {
            let request = Message::from_vec(black_box(&q)).unwrap();
            let mut response = Message::response(request.metadata.id, OpCode::Query);
            response.metadata.recursion_desired = request.metadata.recursion_desired;
            response.metadata.authoritative = true;
            let name = request.queries[0].name.clone();
            response.add_queries(request.queries);
            response.add_answer(Record::from_rdata(
                name,
                5,
                RData::A(A([172, 18, 0, 9].into())),
            ));
            black_box(response.to_vec().unwrap().len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_local, bench_forward, bench_hickory_baseline);
criterion_main!(benches);
