//! Address arithmetic shared by both families.
//!
//! Everything is done on `u128` so that the allocator, the pool rules and the
//! default-pool search have one code path for IPv4 and IPv6; the family only
//! decides the width.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use serde::{Deserialize, Serialize};

/// An IP family: which kind of subnet a pool request wants when it names none.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Family {
    /// IPv4, the default, as in Docker.
    #[default]
    V4,
    /// IPv6 (`--ipv6`).
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of_addr(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The family of a subnet.
    pub fn of_net(net: IpNetwork) -> Family {
        match net {
            IpNetwork::V4(_) => Family::V4,
            IpNetwork::V6(_) => Family::V6,
        }
    }

    /// Address width in bits: 32 or 128.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// The longest prefix a pool may have and still hold a gateway and one
    /// container: /30 for IPv4 (network, gateway, one host, broadcast) and,
    /// by the same reasoning, /126 for IPv6 (anycast, gateway, two hosts).
    pub fn max_pool_prefix(self) -> u8 {
        match self {
            Family::V4 => 30,
            Family::V6 => 126,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The address as a number.
pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The number as an address of `family`; the value must fit the family.
pub(crate) fn from_u128(family: Family, v: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// The largest offset in a block of `2^bits` addresses (`bits` may be 128 or more).
pub(crate) fn span_last(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// Number of host bits of a subnet.
pub(crate) fn host_bits(net: IpNetwork) -> u32 {
    u32::from(Family::of_net(net).bits() - net.prefix())
}

/// First address (the network address) of a subnet, as a number.
pub(crate) fn first(net: IpNetwork) -> u128 {
    to_u128(net.ip()) & !span_last(host_bits(net))
}

/// Last address (the broadcast address for IPv4) of a subnet, as a number.
pub(crate) fn last(net: IpNetwork) -> u128 {
    first(net) | span_last(host_bits(net))
}

/// Whether the address part of a CIDR has bits set below the prefix.
pub(crate) fn has_host_bits(net: IpNetwork) -> bool {
    to_u128(net.ip()) != first(net)
}

/// The subnet with its host bits cleared: what the user meant to write.
pub(crate) fn normalized(net: IpNetwork) -> IpNetwork {
    make_net(Family::of_net(net), first(net), net.prefix())
}

/// Builds a subnet from its first address and a prefix valid for the family.
pub(crate) fn make_net(family: Family, start: u128, prefix: u8) -> IpNetwork {
    let made = match family {
        Family::V4 => Ipv4Network::new(Ipv4Addr::from(start as u32), prefix).map(IpNetwork::V4),
        Family::V6 => Ipv6Network::new(Ipv6Addr::from(start), prefix).map(IpNetwork::V6),
    };
    made.unwrap_or_else(|_| unreachable!("prefix {prefix} checked against {family}"))
}

/// Whether two subnets share at least one address (never across families).
pub(crate) fn overlaps(a: IpNetwork, b: IpNetwork) -> bool {
    Family::of_net(a) == Family::of_net(b) && first(a) <= last(b) && first(b) <= last(a)
}

/// Whether `inner` lies entirely inside `outer` (same family).
pub(crate) fn covers(outer: IpNetwork, inner: IpNetwork) -> bool {
    Family::of_net(outer) == Family::of_net(inner)
        && first(outer) <= first(inner)
        && last(inner) <= last(outer)
}

/// Whether `ip` lies inside `net` (same family).
pub(crate) fn net_contains(net: IpNetwork, ip: IpAddr) -> bool {
    Family::of_net(net) == Family::of_addr(ip) && {
        let v = to_u128(ip);
        first(net) <= v && v <= last(net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn first_and_last_ignore_host_bits() {
        let n = net("10.1.2.3/16");
        assert_eq!(
            from_u128(Family::V4, first(n)),
            "10.1.0.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            from_u128(Family::V4, last(n)),
            "10.1.255.255".parse::<IpAddr>().unwrap()
        );
        assert!(has_host_bits(n));
        assert_eq!(normalized(n), net("10.1.0.0/16"));
    }

    #[test]
    fn whole_v6_space_has_no_overflow() {
        let n = net("::/0");
        assert_eq!(first(n), 0);
        assert_eq!(last(n), u128::MAX);
    }

    #[test]
    fn overlap_never_crosses_families() {
        assert!(!overlaps(net("0.0.0.0/0"), net("::/0")));
        assert!(overlaps(net("10.0.0.0/8"), net("10.1.0.0/16")));
        assert!(overlaps(net("10.1.0.0/16"), net("10.0.0.0/8")));
        assert!(!overlaps(net("10.0.0.0/16"), net("10.1.0.0/16")));
    }
}
