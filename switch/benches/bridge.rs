//! Decisions per second of the switch core: known unicast (2 and 64 ports,
//! and with a million FDB entries), floods, an overlay network's tunnel
//! mesh (split horizon, static entries), garbage being dropped, and the
//! neighbour table answering ARP and neighbour solicitations (hit, miss,
//! and the ordinary traffic it lets by).
//!
//! Every iteration processes a batch of pre-built frames, so the numbers
//! are the core's own cost, not frame construction. Run with
//! `cargo bench -p switchyard-switch --bench bridge -- --warm-up-time 1 --measurement-time 3`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use switchyard_switch::neighbor::MAX_REPLY_LEN;
use switchyard_switch::wire::ipv6::{multicast_mac, solicited_node};
use switchyard_switch::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, Icmpv6Packet,
    Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
};
use switchyard_switch::{
    Answer, Bridge, BridgeConfig, Egress, HorizonGroup, Instant, MacAddr, NeighborTable,
    PortBinding, PortConfig, PortId, SegmentId,
};

/// 64-byte frames, as the classic packet-rate benchmarks use.
const FRAME: usize = 64;
/// Frames per criterion iteration.
const BATCH: usize = 4096;

fn mac(seg: u32, n: u32) -> MacAddr {
    MacAddr([
        0x02,
        0x42,
        (seg >> 8) as u8,
        seg as u8,
        (n >> 8) as u8,
        n as u8,
    ])
}

fn ip(seg: u32, n: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, seg as u8, (n >> 8) as u8, n as u8)
}

fn endpoint(seg: u32, n: u32) -> PortConfig {
    PortConfig {
        segment: SegmentId(seg),
        binding: PortBinding::Endpoint {
            mac: mac(seg, n),
            ipv4: Some(ip(seg, n)),
            ipv6: None,
        },
        label: String::new(),
        mtu: PortConfig::DEFAULT_MTU,
        horizon: None,
    }
}

fn trunk(seg: u32) -> PortConfig {
    PortConfig {
        segment: SegmentId(seg),
        binding: PortBinding::Trunk,
        label: String::new(),
        mtu: PortConfig::DEFAULT_MTU,
        horizon: None,
    }
}

/// A 64-byte IPv4/UDP frame.
fn ipv4_frame(dst: MacAddr, src: MacAddr, src_ip: Ipv4Addr, dst_ip: Ipv4Addr) -> [u8; FRAME] {
    let mut buf = [0u8; FRAME];
    let eth = EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        vlan: None,
        ethertype: EtherType::IPV4,
    };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    let ip = Ipv4Repr {
        src_addr: src_ip,
        dst_addr: dst_ip,
        next_header: IpProtocol::UDP,
        payload_len: FRAME - 14 - 20,
        hop_limit: 64,
    };
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]));
    buf
}

/// Pre-built traffic: (ingress, frame) pairs processed round-robin.
struct Traffic {
    ingress: Vec<PortId>,
    frames: Vec<[u8; FRAME]>,
}

impl Traffic {
    fn run(&self, bridge: &mut Bridge, out: &mut Egress, now: Instant) {
        for (port, frame) in self.ingress.iter().zip(&self.frames) {
            black_box(bridge.process(now, *port, black_box(&frame[..]), out));
        }
    }
}

const NOW: Instant = Instant::from_secs(10);

/// `n` endpoint ports in one segment, each having spoken once, and frames
/// between random pairs of them.
fn endpoints(n: u32, rng: &mut ChaCha8Rng) -> (Bridge, Traffic) {
    let mut bridge = Bridge::new(BridgeConfig::default());
    let ports: Vec<PortId> = (0..n)
        .map(|i| bridge.add_port(endpoint(1, i + 1)))
        .collect();
    let mut out = bridge.egress();
    for (i, &p) in ports.iter().enumerate() {
        let i = i as u32 + 1;
        let f = ipv4_frame(MacAddr::BROADCAST, mac(1, i), ip(1, i), Ipv4Addr::BROADCAST);
        bridge.process(NOW, p, &f, &mut out);
    }
    let mut traffic = Traffic {
        ingress: Vec::new(),
        frames: Vec::new(),
    };
    for k in 0..BATCH as u32 {
        let (a, b) = if n == 2 {
            (k % 2, (k + 1) % 2)
        } else {
            let a = rng.next_u32() % n;
            (a, (a + 1 + rng.next_u32() % (n - 1)) % n)
        };
        traffic.ingress.push(ports[a as usize]);
        traffic.frames.push(ipv4_frame(
            mac(1, b + 1),
            mac(1, a + 1),
            ip(1, a + 1),
            ip(1, b + 1),
        ));
    }
    (bridge, traffic)
}

/// 128 segments, two trunk ports each, 8192 stations per segment (half
/// behind each port): 1,048,576 FDB entries.
fn million(rng: &mut ChaCha8Rng) -> (Bridge, Vec<[PortId; 2]>) {
    let mut bridge = Bridge::new(BridgeConfig::default());
    let ports: Vec<[PortId; 2]> = (0..128)
        .map(|s| [bridge.add_port(trunk(s)), bridge.add_port(trunk(s))])
        .collect();
    let mut out = bridge.egress();
    let _ = rng;
    for (s, pair) in ports.iter().enumerate() {
        for n in 0..8192u32 {
            let f = ipv4_frame(
                MacAddr::BROADCAST,
                mac(s as u32, n),
                ip(s as u32, n),
                Ipv4Addr::BROADCAST,
            );
            bridge.process(NOW, pair[(n % 2) as usize], &f, &mut out);
        }
    }
    assert_eq!(bridge.fdb_len(), 1 << 20);
    (bridge, ports)
}

fn known_unicast(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut group = c.benchmark_group("known_unicast");
    group.throughput(Throughput::Elements(BATCH as u64));
    for n in [2u32, 64] {
        let (mut bridge, traffic) = endpoints(n, &mut rng);
        let mut out = bridge.egress();
        group.bench_function(format!("{n}_endpoint_ports"), |b| {
            b.iter(|| traffic.run(&mut bridge, &mut out, NOW));
        });
        assert_eq!(bridge.stats().unicast, bridge.stats().frames - u64::from(n));
    }

    let (mut bridge, ports) = million(&mut rng);
    let mut out = bridge.egress();
    // One busy pair among a million entries: the table is big, the hot
    // rows stay in cache.
    let mut hot = Traffic {
        ingress: Vec::new(),
        frames: Vec::new(),
    };
    for k in 0..BATCH as u32 {
        let (a, b) = (k % 2, (k + 1) % 2);
        hot.ingress.push(ports[5][a as usize]);
        hot.frames
            .push(ipv4_frame(mac(5, b), mac(5, a), ip(5, a), ip(5, b)));
    }
    group.bench_function("1m_fdb_hot_pair", |b| {
        b.iter(|| hot.run(&mut bridge, &mut out, NOW))
    });
    // Random stations all over the million: every lookup is a cache miss.
    let mut random = Traffic {
        ingress: Vec::new(),
        frames: Vec::new(),
    };
    for _ in 0..(BATCH * 16) {
        let s = rng.next_u32() % 128;
        let a = rng.next_u32() % 8192;
        let b = (rng.next_u32() % 4096) * 2 + (1 - a % 2); // behind the other port
        random.ingress.push(ports[s as usize][(a % 2) as usize]);
        random
            .frames
            .push(ipv4_frame(mac(s, b), mac(s, a), ip(s, a), ip(s, b)));
    }
    group.throughput(Throughput::Elements((BATCH * 16) as u64));
    group.bench_function("1m_fdb_random_stations", |b| {
        b.iter(|| random.run(&mut bridge, &mut out, NOW))
    });
    let unicast_before = bridge.stats().unicast;
    random.run(&mut bridge, &mut out, NOW);
    assert_eq!(
        bridge.stats().unicast - unicast_before,
        (BATCH * 16) as u64,
        "all known unicast"
    );
    group.finish();
}

fn flood(c: &mut Criterion) {
    let mut group = c.benchmark_group("flood");
    group.throughput(Throughput::Elements(BATCH as u64));
    for n in [8u32, 64] {
        let mut bridge = Bridge::new(BridgeConfig::default());
        let ports: Vec<PortId> = (0..n)
            .map(|i| bridge.add_port(endpoint(1, i + 1)))
            .collect();
        let mut out = bridge.egress();
        let mut traffic = Traffic {
            ingress: Vec::new(),
            frames: Vec::new(),
        };
        for k in 0..BATCH as u32 {
            let a = k % n;
            traffic.ingress.push(ports[a as usize]);
            traffic.frames.push(ipv4_frame(
                MacAddr::BROADCAST,
                mac(1, a + 1),
                ip(1, a + 1),
                Ipv4Addr::BROADCAST,
            ));
        }
        group.bench_function(format!("broadcast_{n}_ports"), |b| {
            b.iter(|| traffic.run(&mut bridge, &mut out, NOW));
        });
        assert_eq!(bridge.stats().flooded, bridge.stats().frames);
    }
    group.finish();
}

/// One host of an overlay network: 8 local endpoints and 16 VXLAN tunnel
/// ports in one horizon group, 64 remote stations programmed statically
/// behind the tunnels. Broadcasts from a tunnel (reach only the local
/// ports) and unicast from the locals to the static remote stations.
fn overlay(c: &mut Criterion) {
    let mut bridge = Bridge::new(BridgeConfig::default());
    let locals: Vec<PortId> = (0..8)
        .map(|i| bridge.add_port(endpoint(1, i + 1)))
        .collect();
    let tunnels: Vec<PortId> = (0..16)
        .map(|_| {
            bridge.add_port(PortConfig {
                horizon: Some(HorizonGroup(1)),
                mtu: 1450,
                ..trunk(1)
            })
        })
        .collect();
    for r in 0..64u32 {
        let port = tunnels[(r % 16) as usize];
        bridge
            .add_static_entry(NOW, SegmentId(1), mac(1, 1000 + r), port)
            .unwrap();
    }
    let mut out = bridge.egress();
    let mut from_tunnels = Traffic {
        ingress: Vec::new(),
        frames: Vec::new(),
    };
    let mut to_remotes = Traffic {
        ingress: Vec::new(),
        frames: Vec::new(),
    };
    for k in 0..BATCH as u32 {
        let r = 1000 + k % 64;
        // From the tunnel its static entry names, as the peer database says.
        from_tunnels
            .ingress
            .push(tunnels[((r - 1000) % 16) as usize]);
        from_tunnels.frames.push(ipv4_frame(
            MacAddr::BROADCAST,
            mac(1, r),
            ip(1, r),
            Ipv4Addr::BROADCAST,
        ));
        let l = k % 8;
        to_remotes.ingress.push(locals[l as usize]);
        to_remotes
            .frames
            .push(ipv4_frame(mac(1, r), mac(1, l + 1), ip(1, l + 1), ip(1, r)));
    }
    let mut group = c.benchmark_group("overlay");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("broadcast_from_a_tunnel_16_tunnels_8_locals", |b| {
        b.iter(|| from_tunnels.run(&mut bridge, &mut out, NOW))
    });
    group.bench_function("unicast_to_static_remote_stations", |b| {
        b.iter(|| to_remotes.run(&mut bridge, &mut out, NOW))
    });
    group.finish();
    let before = bridge.stats().unicast;
    to_remotes.run(&mut bridge, &mut out, NOW);
    assert_eq!(bridge.stats().unicast - before, BATCH as u64);
    from_tunnels.run(&mut bridge, &mut out, NOW);
    assert_eq!(out.len(), 8, "a tunnel's broadcast reaches the locals only");
    assert_eq!(bridge.stats().static_conflicts, 0);
}

fn garbage(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut bridge = Bridge::new(BridgeConfig::default());
    let ep = bridge.add_port(endpoint(1, 1));
    let tr = bridge.add_port(trunk(1));
    let mut out = bridge.egress();
    let frames: Vec<Vec<u8>> = (0..BATCH)
        .map(|_| {
            let len = (rng.next_u32() % 128) as usize;
            let mut f = vec![0u8; len];
            rng.fill_bytes(&mut f);
            f
        })
        .collect();
    let mut group = c.benchmark_group("garbage");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, port) in [("endpoint_port", ep), ("trunk_port", tr)] {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || (),
                |_| {
                    for f in &frames {
                        black_box(bridge.process(NOW, port, black_box(f), &mut out));
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// "Who has `target`?" from `asker` (station `n` of its segment).
fn arp_request(asker: MacAddr, asker_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut buf = vec![0u8; 42];
    EthernetRepr {
        src_addr: asker,
        dst_addr: MacAddr::BROADCAST,
        vlan: None,
        ethertype: EtherType::ARP,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: asker,
        source_protocol_addr: asker_ip,
        target_hardware_addr: MacAddr::ZERO,
        target_protocol_addr: target,
    }
    .emit(&mut ArpPacket::new_unchecked(&mut buf[14..]));
    buf
}

/// A Neighbor Solicitation for `target` to its solicited-node group.
fn ns_request(asker: MacAddr, asker_ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let msg = Icmpv6Repr::NeighborSolicit {
        target,
        lladdr: Some(asker),
    };
    let mut buf = vec![0u8; 14 + 40 + msg.buffer_len()];
    EthernetRepr {
        src_addr: asker,
        dst_addr: multicast_mac(group),
        vlan: None,
        ethertype: EtherType::IPV6,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    Ipv6Repr {
        src_addr: asker_ip,
        dst_addr: group,
        next_header: IpProtocol::ICMPV6,
        payload_len: msg.buffer_len(),
        hop_limit: 255,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut buf[14..54]));
    let mut icmp = Icmpv6Packet::new_unchecked(&mut buf[54..]);
    msg.emit(&mut icmp);
    icmp.fill_checksum(asker_ip, group);
    buf
}

fn ip6(seg: u32, n: u32) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, seg as u16, 0, 0, (n >> 16) as u16, n as u16)
}

/// 16 segments of 1024 endpoints, each with an IPv4 and an IPv6 entry
/// (32 768 entries), and a batch of requests from random askers for
/// random targets: known ones, or addresses nobody has (`hit` false).
fn neighbor(c: &mut Criterion) {
    const SEGMENTS: u32 = 16;
    const STATIONS: u32 = 1024;
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut table = NeighborTable::new(rng.next_u64());
    for s in 0..SEGMENTS {
        for n in 1..=STATIONS {
            table
                .add(SegmentId(s), IpAddr::V4(ip(s, n)), mac(s, n))
                .unwrap();
            table
                .add(SegmentId(s), IpAddr::V6(ip6(s, n)), mac(s, n))
                .unwrap();
        }
    }
    let mut batch = |ns: bool, hit: bool| -> Vec<(SegmentId, Vec<u8>)> {
        (0..BATCH)
            .map(|_| {
                let s = rng.next_u32() % SEGMENTS;
                let asker = 1 + rng.next_u32() % STATIONS;
                let mut target = 1 + rng.next_u32() % STATIONS;
                if target == asker {
                    target = target % STATIONS + 1;
                }
                if !hit {
                    target += STATIONS;
                }
                let frame = if ns {
                    ns_request(mac(s, asker), ip6(s, asker), ip6(s, target))
                } else {
                    arp_request(mac(s, asker), ip(s, asker), ip(s, target))
                };
                (SegmentId(s), frame)
            })
            .collect()
    };
    let cases = [
        ("arp_hit", batch(false, true), true),
        ("arp_miss", batch(false, false), false),
        ("ns_hit", batch(true, true), true),
        ("ns_miss", batch(true, false), false),
    ];
    let udp: Vec<(SegmentId, Vec<u8>)> = (0..BATCH as u32)
        .map(|k| {
            let f = ipv4_frame(mac(1, 2), mac(1, 1), ip(1, 1), ip(1, k % 1000 + 2));
            (SegmentId(1), f.to_vec())
        })
        .collect();
    let mut group = c.benchmark_group("neighbor");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut out = [0u8; MAX_REPLY_LEN];
    for (name, frames, hit) in &cases {
        // The batch is what its name says.
        let replied = frames
            .iter()
            .filter(|(s, f)| matches!(table.answer(*s, f, &mut out), Answer::Reply(_)))
            .count();
        assert_eq!(replied, if *hit { BATCH } else { 0 }, "{name}");
        group.bench_function(*name, |b| {
            b.iter(|| {
                for (s, f) in frames {
                    black_box(table.answer(*s, black_box(f), &mut out));
                }
            })
        });
    }
    group.bench_function("ipv4_udp_passes", |b| {
        b.iter(|| {
            for (s, f) in &udp {
                black_box(table.answer(*s, black_box(f), &mut out));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, known_unicast, flood, neighbor, overlay, garbage);
criterion_main!(benches);
