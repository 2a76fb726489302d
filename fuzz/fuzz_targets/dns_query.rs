//! Arbitrary bytes through the embedded resolver: as a UDP query, as a TCP
//! stream, and as an upstream reply. Nothing may panic; every reply must
//! answer the query's id with QR set and fit the transport; a forwarded query
//! must be the client's bytes under a new id.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use switchyard_dns::{
    ClientToken, EndpointRecord, NetworkPolicy, Outcome, Resolver, ResolverConfig, Scope,
    TcpDeframer, Transport,
};

/// A tiny deterministic generator: fuzzing must replay exactly.
struct XorShift(u64);

impl rand_core::RngCore for XorShift {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for b in dst {
            *b = self.next_u64() as u8;
        }
    }
}

fn resolver() -> Resolver {
    let mut r = Resolver::new(ResolverConfig {
        upstreams: vec![
            "192.0.2.1:53".parse().unwrap(),
            "192.0.2.2:53".parse().unwrap(),
        ],
        ..ResolverConfig::default()
    });
    r.set_network(
        "n1",
        NetworkPolicy {
            name: "front".into(),
            names: true,
            forward: true,
        },
    );
    r.set_network(
        "n2",
        NetworkPolicy {
            name: "inner".into(),
            names: true,
            forward: false,
        },
    );
    for i in 0..40u8 {
        r.upsert_endpoint(EndpointRecord {
            endpoint_id: format!("e{i}"),
            network_id: if i % 2 == 0 { "n1" } else { "n2" }.into(),
            name: format!("c{i}"),
            aliases: vec!["web".into(), "api".into()],
            ipv4: Some([10, 0, 0, i].into()),
            ipv6: Some([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(i)].into()),
        });
    }
    r
}

fn check(query: &[u8], transport: Transport, outcome: Outcome, out: &[u8]) {
    match outcome {
        Outcome::Reply { .. } => {
            assert!(out.len() >= 12, "reply shorter than a header");
            assert_eq!(&out[..2], &query[..2], "reply id differs from query id");
            assert!(out[2] & 0x80 != 0, "reply without QR");
            let limit = if transport == Transport::Udp {
                4096
            } else {
                65535
            };
            assert!(
                out.len() <= limit,
                "reply of {} bytes over {limit}",
                out.len()
            );
        }
        Outcome::Forward { transport: t, .. } => {
            assert_eq!(t, transport);
            assert_eq!(
                &out[2..],
                &query[2..],
                "forwarded query changed beyond its id"
            );
        }
        Outcome::Drop(_) => assert!(out.is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = resolver();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::new();
    let scope = Scope::new(["n1", "n2"]);
    let now = Duration::from_secs(1);

    let outcome = r.handle_query(
        now,
        &scope,
        ClientToken(1),
        Transport::Udp,
        data,
        &mut rng,
        &mut out,
    );
    check(data, Transport::Udp, outcome, &out);

    let mut deframer = TcpDeframer::new();
    if deframer.push(data).is_ok() {
        let mut messages = Vec::new();
        while let Some(m) = deframer.next_message() {
            messages.push(m.to_vec());
        }
        for m in messages {
            let outcome = r.handle_query(
                now,
                &scope,
                ClientToken(2),
                Transport::Tcp,
                &m,
                &mut rng,
                &mut out,
            );
            check(&m, Transport::Tcp, outcome, &out);
        }
    }

    // As an upstream reply to a forwarded query, with the id made to match.
    let probe =
        b"\x00\x07\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";
    if let Outcome::Forward { upstream, .. } = r.handle_query(
        now,
        &scope,
        ClientToken(3),
        Transport::Udp,
        probe,
        &mut rng,
        &mut out,
    ) {
        let mut reply = data.to_vec();
        if reply.len() >= 2 {
            reply[..2].copy_from_slice(&out[..2]);
        }
        let outcome =
            r.handle_upstream_reply(now, upstream, Transport::Udp, &reply, &mut rng, &mut out);
        if let Outcome::Reply { .. } = outcome {
            assert_eq!(&out[..2], &probe[..2]);
            assert!(out.len() <= 512);
        }
    }
    // Every query in flight ends, one upstream timeout after another.
    while let Some(deadline) = r.next_deadline() {
        r.poll_timeouts(deadline, &mut rng, |_, bytes| assert!(bytes.len() >= 12));
    }
    assert_eq!(r.in_flight(), 0);
});
