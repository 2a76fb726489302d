//! DNS in the simulator: containers ask their host's embedded resolver
//! (`switchyard_dns::Resolver`, the same logic real mode drives) over a
//! simulated loopback, with the container's scope (its networks). Queries
//! and answers are written as Ethernet/IPv4/UDP frames 127.0.0.1:PORT ⇄
//! 127.0.0.11:53 into the container's `lo` capture, so the exchange shows
//! in a pcap like any other traffic.
//!
//! Names the resolver forwards go to simulated upstream zones, when a lab
//! defines one at the upstream address; otherwise the resolver times out
//! and answers SERVFAIL, as it would with a dead upstream.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde::Serialize;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
    Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The embedded resolver's address inside every sandbox.
pub const RESOLVER_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// How long a message takes over the simulated loopback.
pub(crate) const LOOPBACK_DELAY: Duration = Duration::from_micros(20);

/// A simulated upstream DNS server: names it answers and how slowly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UpstreamZone {
    /// Where the host's resolver sends forwarded queries.
    pub address: SocketAddr,
    /// Lower-case names (no trailing dot) and their addresses.
    pub records: BTreeMap<String, Vec<IpAddr>>,
    /// Time from query to answer.
    pub latency: Duration,
    /// False for a dead server that never answers (the resolver times out
    /// and tries the next, then answers SERVFAIL).
    pub responds: bool,
}

impl UpstreamZone {
    /// An empty zone at `address` answering after 5 ms.
    pub fn new(address: SocketAddr) -> UpstreamZone {
        UpstreamZone {
            address,
            records: BTreeMap::new(),
            latency: Duration::from_millis(5),
            responds: true,
        }
    }

    /// A dead upstream at `address`: queries sent there are never answered.
    pub fn dead(address: SocketAddr) -> UpstreamZone {
        UpstreamZone {
            responds: false,
            ..UpstreamZone::new(address)
        }
    }

    /// Adds an address for `name`.
    pub fn record(mut self, name: &str, addr: IpAddr) -> UpstreamZone {
        self.records
            .entry(name.trim_end_matches('.').to_ascii_lowercase())
            .or_default()
            .push(addr);
        self
    }

    /// The zone's answer to a forwarded query: the records of the name, or
    /// NXDOMAIN; `None` if the query cannot be read.
    pub(crate) fn answer(&self, forwarded: &[u8]) -> Option<Vec<u8>> {
        let q = Message::from_vec(forwarded).ok()?;
        let question = q.queries.first()?.clone();
        let key = question
            .name
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
        r.metadata.recursion_desired = q.metadata.recursion_desired;
        r.metadata.recursion_available = true;
        r.add_query(question.clone());
        match self.records.get(&key) {
            None => r.metadata.response_code = ResponseCode::NXDomain,
            Some(addrs) => {
                for addr in addrs {
                    let data = match (addr, question.query_type) {
                        (IpAddr::V4(a), RecordType::A) => RData::A(A(*a)),
                        (IpAddr::V6(a), RecordType::AAAA) => RData::AAAA(AAAA(*a)),
                        _ => continue,
                    };
                    r.add_answer(Record::from_rdata(question.name.clone(), 60, data));
                }
            }
        }
        r.to_vec().ok()
    }
}

/// A stub resolver's query for `name` (A, or AAAA when `v6`), with RD set.
pub(crate) fn build_query(name: &str, v6: bool, id: u16) -> Result<Vec<u8>, String> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    let mut n =
        Name::from_ascii(name).map_err(|e| format!("{name:?} is not a valid DNS name: {e}"))?;
    n.set_fqdn(true);
    m.add_query(Query::query(
        n,
        if v6 { RecordType::AAAA } else { RecordType::A },
    ));
    m.to_vec()
        .map_err(|e| format!("cannot encode a query for {name:?}: {e}"))
}

/// The response code's usual name.
fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("{other:?}").to_ascii_uppercase(),
    }
}

/// Reads an answer: its response code and addresses, in order.
pub(crate) fn parse_answer(reply: &[u8], id: u16) -> Result<(String, Vec<IpAddr>), String> {
    let m = Message::from_vec(reply).map_err(|e| format!("unreadable DNS answer: {e}"))?;
    if m.metadata.id != id {
        return Err(format!(
            "DNS answer has id {} but the query had {id}",
            m.metadata.id
        ));
    }
    let addrs = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(A(a)) => Some(IpAddr::V4(*a)),
            RData::AAAA(AAAA(a)) => Some(IpAddr::V6(*a)),
            _ => None,
        })
        .collect();
    Ok((rcode_name(m.metadata.response_code), addrs))
}

/// The frame a DNS message makes on a sandbox's loopback: from the client
/// port to 127.0.0.11:53 (`to_resolver`) or back.
pub(crate) fn loopback_frame(client_port: u16, to_resolver: bool, payload: &[u8]) -> Vec<u8> {
    let client = Ipv4Addr::LOCALHOST;
    let (src, dst, sport, dport) = if to_resolver {
        (client, RESOLVER_ADDR, client_port, 53)
    } else {
        (RESOLVER_ADDR, client, 53, client_port)
    };
    let udp = UdpRepr {
        src_port: sport,
        dst_port: dport,
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress([0; 6]),
        dst_addr: EthernetAddress([0; 6]),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = vec![0u8; eth.buffer_len() + ip.buffer_len() + ip.payload_len];
    let caps = ChecksumCapabilities::default();
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let mut pkt = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut pkt, &caps);
    let mut dgram = UdpPacket::new_unchecked(pkt.payload_mut());
    udp.emit(
        &mut dgram,
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        payload.len(),
        |p| p.copy_from_slice(payload),
        &caps,
    );
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_answers_known_names_and_nxdomain_otherwise() {
        let zone = UpstreamZone::new("192.0.2.53:53".parse().unwrap())
            .record("Example.com.", "93.184.216.34".parse().unwrap());
        let q = build_query("example.COM", false, 7).unwrap();
        let (rcode, addrs) = parse_answer(&zone.answer(&q).unwrap(), 7).unwrap();
        assert_eq!(rcode, "NOERROR");
        assert_eq!(addrs, vec!["93.184.216.34".parse::<IpAddr>().unwrap()]);
        let q = build_query("nope.example", false, 8).unwrap();
        let (rcode, addrs) = parse_answer(&zone.answer(&q).unwrap(), 8).unwrap();
        assert_eq!(rcode, "NXDOMAIN");
        assert!(addrs.is_empty());
    }

    #[test]
    fn loopback_frame_is_valid_udp_with_checksum() {
        let f = loopback_frame(40000, true, b"hello");
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst_addr(), RESOLVER_ADDR);
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.dst_port(), 53);
        assert!(udp.verify_checksum(
            &IpAddress::Ipv4(ip.src_addr()),
            &IpAddress::Ipv4(ip.dst_addr())
        ));
        assert_eq!(udp.payload(), b"hello");
    }
}
