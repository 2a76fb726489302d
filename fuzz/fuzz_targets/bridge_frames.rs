//! Random port operations and frames against the bridge. Whatever the
//! input: no panic, no frame crosses segments or echoes to its ingress
//! port, and every frame is counted once as forwarded or dropped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use switchyard_switch::{
    Action, Bridge, BridgeConfig, Egress, Instant, MacAddr, PortBinding, PortConfig, PortId,
    SegmentId,
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
    let mut out = Egress::new();
    let mut now = Instant::ZERO;
    let mut frames = 0u64;
    while let Some(op) = input.byte() {
        match op % 8 {
            0 => {
                let seg = input.byte().unwrap_or(0);
                let binding = if seg & 0x80 != 0 {
                    let n = seg & 0x0f;
                    PortBinding::Endpoint {
                        mac: MacAddr([0x02, 0, 0, 0, 0, n]),
                        ipv4: Some(Ipv4Addr::new(10, 0, 0, n)),
                        ipv6: None,
                    }
                } else {
                    PortBinding::Trunk
                };
                let cfg = PortConfig {
                    segment: SegmentId(u32::from(seg & 0x03)),
                    binding,
                    label: String::new(),
                };
                ports.push(bridge.add_port(cfg));
            }
            1 => {
                if let Some(k) = input.byte() {
                    if !ports.is_empty() {
                        let id = ports.remove(usize::from(k) % ports.len());
                        assert!(bridge.remove_port(id).is_some());
                        assert!(bridge.fdb_entries().iter().all(|e| e.port != id));
                    }
                }
            }
            2 => {
                now = now
                    + core::time::Duration::from_millis(u64::from(input.byte().unwrap_or(0)) * 10);
                bridge.expire(now);
            }
            _ => {
                let pick = input.byte().unwrap_or(0);
                let len = usize::from(input.byte().unwrap_or(0));
                let frame = input.bytes(len).to_vec();
                // Sometimes a port that does not exist (any more).
                let ingress = if ports.is_empty() || pick == 0xff {
                    PortId(u32::from(pick))
                } else {
                    ports[usize::from(pick) % ports.len()]
                };
                let d = bridge.process(now, ingress, &frame, &mut out);
                frames += 1;
                let Some(seg) = bridge.port(ingress).map(|c| c.segment) else {
                    assert!(matches!(d.action, Action::Drop(_)));
                    continue;
                };
                for p in out.ports() {
                    assert_ne!(*p, ingress, "echo");
                    assert_eq!(
                        bridge.port(*p).map(|c| c.segment),
                        Some(seg),
                        "crossed segments"
                    );
                }
                if let Action::Unicast(p) = d.action {
                    assert_eq!(out.ports(), &[p][..]);
                }
                let _ = bridge.explain(ingress, &frame, d, &out).to_string();
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
