//! VXLAN decapsulation on arbitrary datagrams from arbitrary sources: it
//! never panics, every outcome is counted once, and a delivered frame is
//! the datagram's tail behind an 8-byte header with the I flag alone, from
//! a programmed (VNI, VTEP). The flow hash never panics and stays in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use switchyard_switch::port::PortId;
use switchyard_switch::vxlan::{DecapCounters, FlowHash, PortRange, TunnelTable};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let src = match selector % 4 {
        0 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        1 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3)),
        2 => IpAddr::V6(Ipv4Addr::new(192, 0, 2, 2).to_ipv6_mapped()),
        _ => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
    };
    let mut table = TunnelTable::new();
    table
        .insert(42, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), PortId(1))
        .unwrap();
    table
        .insert(
            0x00ff_ffff,
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
            PortId(2),
        )
        .unwrap();
    let mut counters = DecapCounters::default();
    let out = table.decapsulate(src, rest);
    if let Ok(d) = &out {
        assert_eq!(rest[0], 0x08);
        assert_eq!(d.frame, &rest[8..]);
        assert!(d.frame.len() >= 14);
        assert_eq!(table.port(d.vni, src), Some(d.port));
    }
    counters.count(&out);
    assert_eq!(counters.delivered + counters.dropped(), 1);

    let hash = FlowHash::new(u64::from(selector), PortRange::LINUX);
    let port = hash.source_port(rest);
    assert!((PortRange::LINUX.min..=PortRange::LINUX.max).contains(&port));
});
