//! Random port operations (endpoint, trunk and router ports, horizon
//! groups, MTUs), static FDB entries and frames (plain or GSO) against the
//! bridge. Whatever the input: no panic, no frame crosses segments, echoes
//! to its ingress port, reaches a port of the ingress port's horizon group
//! or (unless GSO) exceeds its egress port's MTU; static entries stay where
//! they were programmed; every frame is counted once as forwarded or
//! dropped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use switchyard_switch::{
    Action, Bridge, BridgeConfig, Egress, FrameMeta, HorizonGroup, Instant, MacAddr, PortBinding,
    PortConfig, PortId, SegmentId,
};

/// Reads the fuzz input as a little program.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(cfg) = input.byte() else { return };
    let mut bridge = Bridge::new(BridgeConfig {
        ageing: core::time::Duration::from_millis(u64::from(cfg & 0x0f) * 100),
        fdb_capacity_per_segment: usize::from(cfg >> 4),
        max_frame_len: 256,
        hash_seed: 1,
    });
    let mut ports: Vec<PortId> = Vec::new();
    // (segment, MAC) -> port, for every static entry programmed.
    let mut statics: BTreeMap<(SegmentId, MacAddr), PortId> = BTreeMap::new();
    let mut out = Egress::new();
    let mut now = Instant::ZERO;
    let mut frames = 0u64;
    while let Some(op) = input.byte() {
        match op % 10 {
            0 => {
                let seg = input.byte().unwrap_or(0);
                let extra = input.byte().unwrap_or(0);
                let n = seg & 0x0f;
                let mac = MacAddr([0x02, 0, 0, 0, 0, n]);
                let binding = match (seg >> 6) & 3 {
                    0 | 1 => PortBinding::Trunk,
                    2 => PortBinding::Endpoint {
                        mac,
                        ipv4: Some(Ipv4Addr::new(10, 0, 0, n)),
                        ipv6: (extra & 0x40 != 0)
                            .then(|| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n.into())),
                    },
                    _ => PortBinding::Router {
                        mac,
                        ipv4: vec![Ipv4Addr::new(10, 0, 0, n)],
                        ipv6: vec![Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n.into())],
                    },
                };
                let cfg = PortConfig {
                    segment: SegmentId(u32::from(seg >> 4 & 0x03)),
                    binding,
                    label: String::new(),
                    // 0 to 252 bytes: often smaller than the frames.
                    mtu: u32::from(extra & 0x3f) * 4,
                    horizon: (extra & 0x80 != 0).then_some(HorizonGroup(u32::from(extra & 1))),
                };
                ports.push(bridge.add_port(cfg));
            }
            1 => {
                if let Some(k) = input.byte() {
                    if !ports.is_empty() {
                        let id = ports.remove(usize::from(k) % ports.len());
                        assert!(bridge.remove_port(id).is_some());
                        assert!(bridge.fdb_entries().iter().all(|e| e.port != id));
                        statics.retain(|_, p| *p != id);
                    }
                }
            }
            2 => {
                now = now
                    + core::time::Duration::from_millis(u64::from(input.byte().unwrap_or(0)) * 10);
                bridge.expire(now);
            }
            3 => {
                let (Some(k), Some(m)) = (input.byte(), input.byte()) else {
                    continue;
                };
                if ports.is_empty() {
                    continue;
                }
                let port = ports[usize::from(k) % ports.len()];
                let Some(seg) = bridge.port(port).map(|c| c.segment) else {
                    continue;
                };
                // Sometimes the wrong segment or a group address: refused.
                let seg = if k & 0x80 != 0 {
                    SegmentId(seg.0 ^ 1)
                } else {
                    seg
                };
                let mac = MacAddr([m & 0x03, 0, 0, 0, 0, m >> 2]);
                if bridge.add_static_entry(now, seg, mac, port).is_ok() {
                    statics.insert((seg, mac), port);
                }
            }
            4 => {
                let Some(m) = input.byte() else { continue };
                let (seg, mac) = (
                    SegmentId(u32::from(m & 3)),
                    MacAddr([0, 0, 0, 0, 0, m >> 2]),
                );
                assert_eq!(
                    bridge.remove_static_entry(seg, mac),
                    statics.remove(&(seg, mac))
                );
            }
            _ => {
                let pick = input.byte().unwrap_or(0);
                let len = usize::from(input.byte().unwrap_or(0));
                let meta = FrameMeta {
                    gso: op & 0x80 != 0,
                };
                let frame = input.bytes(len).to_vec();
                // Sometimes a port that does not exist (any more).
                let ingress = if ports.is_empty() || pick == 0xff {
                    PortId(u32::from(pick))
                } else {
                    ports[usize::from(pick) % ports.len()]
                };
                let d = bridge.process_with(now, ingress, &frame, meta, &mut out);
                frames += 1;
                let Some(from) = bridge.port(ingress).cloned() else {
                    assert!(matches!(d.action, Action::Drop(_)));
                    continue;
                };
                for p in out.ports() {
                    assert_ne!(*p, ingress, "echo");
                    let to = bridge.port(*p).expect("egress port exists");
                    assert_eq!(to.segment, from.segment, "crossed segments");
                    assert!(
                        from.horizon.is_none() || to.horizon != from.horizon,
                        "split horizon"
                    );
                    if !meta.gso {
                        let tagged = frame.len() >= 18 && frame[12..14] == [0x81, 0x00];
                        let l3 = frame.len() - if tagged { 18 } else { 14 };
                        assert!(l3 <= to.mtu as usize, "MTU");
                    }
                }
                if let Action::Unicast(p) = d.action {
                    assert_eq!(out.ports(), &[p][..]);
                }
                let _ = bridge.explain(ingress, &frame, d, &out).to_string();
                for (&(seg, mac), &port) in &statics {
                    assert_eq!(bridge.lookup(now, seg, mac), Some(port), "static moved");
                }
            }
        }
    }
    let s = bridge.stats();
    assert_eq!(s.frames, frames);
    assert_eq!(s.unicast + s.flooded + s.dropped, s.frames);
    for (id, _) in bridge.ports() {
        let c = bridge.counters(id).unwrap();
        assert!(c.dropped() <= c.rx_frames);
    }
});
