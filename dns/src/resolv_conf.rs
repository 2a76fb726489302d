//! Where upstream servers come from: the host's `/etc/resolv.conf`, or the
//! daemon's `--dns-upstream IP[:PORT]`. Both are pure text parsers; reading
//! the file is the daemon's job.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use crate::resolver::MAX_UPSTREAMS;

/// Our own address inside every sandbox. Forwarding to it would loop, so it
/// is never taken as an upstream.
pub const EMBEDDED_RESOLVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// The DNS port, used when none is given.
pub const DNS_PORT: u16 = 53;

/// Upstream servers from resolv.conf text: the first [`MAX_UPSTREAMS`]
/// usable `nameserver` lines, port 53, in file order.
///
/// Comment lines (`#`, `;`) and other options are ignored, as are our own
/// 127.0.0.11 and unparseable addresses. An IPv6 address with a numeric zone
/// (`fe80::1%2`) keeps it as its scope id; one with an interface name
/// (`fe80::1%eth0`) needs an interface lookup, so use
/// [`parse_resolv_conf_with`] for it, otherwise it is skipped, as is a
/// link-local address with no zone at all (it cannot be reached).
///
/// Other loopback addresses (systemd-resolved's 127.0.0.53, say) are kept:
/// they name the *host's* resolver, so the daemon must send those queries
/// from the host's network namespace, not the sandbox's.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    parse_resolv_conf_with(text, |_| None)
}

/// [`parse_resolv_conf`] with an interface-name → index lookup for zoned
/// IPv6 addresses (`if_nametoindex` in the daemon, a table in the
/// simulator).
pub fn parse_resolv_conf_with(
    text: &str,
    mut interface_index: impl FnMut(&str) -> Option<u32>,
) -> Vec<SocketAddr> {
    let mut servers = Vec::new();
    for line in text.lines() {
        if servers.len() == MAX_UPSTREAMS {
            break;
        }
        let line = line.trim_start();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(word) = words.next() else {
            continue;
        };
        // A comment glued to the address ("1.1.1.1#cloudflare").
        let word = word.split(['#', ';']).next().unwrap_or(word);
        match nameserver(word, &mut interface_index) {
            Some(addr) if addr.ip() == IpAddr::V4(EMBEDDED_RESOLVER) => {}
            Some(addr) => servers.push(addr),
            None => tracing::debug!(nameserver = word, "skipping unusable nameserver line"),
        }
    }
    servers
}

/// The server a nameserver line names, `None` if it cannot be used.
fn nameserver(
    word: &str,
    interface_index: &mut impl FnMut(&str) -> Option<u32>,
) -> Option<SocketAddr> {
    let (addr, zone) = match word.split_once('%') {
        Some((addr, zone)) => (addr, Some(zone)),
        None => (word, None),
    };
    match (addr.parse::<IpAddr>().ok()?, zone) {
        (IpAddr::V4(_), Some(_)) => None,
        (IpAddr::V6(v6), None) if is_link_local(v6) => None,
        (IpAddr::V6(v6), Some(zone)) => {
            let scope = zone_index(zone, interface_index)?;
            Some(SocketAddr::V6(SocketAddrV6::new(v6, DNS_PORT, 0, scope)))
        }
        (ip, None) => Some(SocketAddr::new(ip, DNS_PORT)),
    }
}

fn zone_index(zone: &str, interface_index: &mut impl FnMut(&str) -> Option<u32>) -> Option<u32> {
    if zone.is_empty() {
        return None;
    }
    zone.parse().ok().or_else(|| interface_index(zone))
}

fn is_link_local(v6: Ipv6Addr) -> bool {
    v6.segments()[0] & 0xffc0 == 0xfe80
}

/// Why a `--dns-upstream` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Not an address.
    #[error("`{0}` is not an upstream address: use IP, IP:PORT or [IPv6]:PORT")]
    Invalid(String),
    /// Port zero cannot be sent to.
    #[error("`{0}` has port 0: give a real port, or none for 53")]
    PortZero(String),
    /// Our own address: every forwarded query would come straight back.
    #[error("`{0}` is the embedded resolver itself: name the server it should forward to")]
    SelfLoop(String),
}

/// Parses `--dns-upstream IP[:PORT]`: `1.1.1.1`, `1.1.1.1:5353`, `2001:db8::1`,
/// `[2001:db8::1]:5353`, `fe80::1%2` or `[fe80::1%2]:53`. The port defaults
/// to 53.
pub fn parse_upstream(text: &str) -> Result<SocketAddr, UpstreamError> {
    let text = text.trim();
    let invalid = || UpstreamError::Invalid(text.to_owned());
    let addr = if let Ok(addr) = text.parse::<SocketAddr>() {
        addr
    } else if let Ok(ip) = text.parse::<IpAddr>() {
        SocketAddr::new(ip, DNS_PORT)
    } else {
        // A bare zoned IPv6 address, which `SocketAddr` only takes bracketed.
        let (ip, zone) = text.split_once('%').ok_or_else(invalid)?;
        let ip: Ipv6Addr = ip.parse().map_err(|_| invalid())?;
        let scope: u32 = zone.parse().map_err(|_| invalid())?;
        SocketAddr::V6(SocketAddrV6::new(ip, DNS_PORT, 0, scope))
    };
    if addr.port() == 0 {
        return Err(UpstreamError::PortZero(text.to_owned()));
    }
    if addr.ip().to_canonical() == IpAddr::V4(EMBEDDED_RESOLVER) && addr.port() == DNS_PORT {
        return Err(UpstreamError::SelfLoop(text.to_owned()));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn nameservers_get_port_53_in_file_order() {
        let text = "nameserver 192.0.2.1\nnameserver 2001:db8::1\n";
        assert_eq!(
            parse_resolv_conf(text),
            addrs(&["192.0.2.1:53", "[2001:db8::1]:53"])
        );
    }

    #[test]
    fn only_the_first_three_nameservers_are_used() {
        let text = "nameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 192.0.2.3\nnameserver 192.0.2.4\n";
        assert_eq!(parse_resolv_conf(text).len(), 3);
    }

    #[test]
    fn embedded_resolver_is_skipped_and_does_not_use_a_slot() {
        let text = "nameserver 127.0.0.11\nnameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 192.0.2.3\n";
        assert_eq!(
            parse_resolv_conf(text),
            addrs(&["192.0.2.1:53", "192.0.2.2:53", "192.0.2.3:53"])
        );
    }

    #[test]
    fn comments_options_and_garbage_are_ignored() {
        let text = "# generated\n; nameserver 192.0.2.9\nsearch example.com\noptions ndots:2\n\
                    nameserver\nnameserver not-an-ip\n  nameserver 192.0.2.1 # primary\nnameserver 192.0.2.2#x\n";
        assert_eq!(
            parse_resolv_conf(text),
            addrs(&["192.0.2.1:53", "192.0.2.2:53"])
        );
    }

    #[test]
    fn numeric_zone_becomes_the_scope_id() {
        let servers = parse_resolv_conf("nameserver fe80::1%3\n");
        assert_eq!(servers, addrs(&["[fe80::1%3]:53"]));
    }

    #[test]
    fn named_zone_uses_the_interface_lookup() {
        let text = "nameserver fe80::1%eth0\n";
        assert!(parse_resolv_conf(text).is_empty());
        let servers = parse_resolv_conf_with(text, |name| (name == "eth0").then_some(7));
        assert_eq!(servers, addrs(&["[fe80::1%7]:53"]));
    }

    #[test]
    fn link_local_without_zone_is_skipped() {
        assert!(parse_resolv_conf("nameserver fe80::1\n").is_empty());
    }

    #[test]
    fn host_loopback_resolver_is_kept() {
        assert_eq!(
            parse_resolv_conf("nameserver 127.0.0.53\n"),
            addrs(&["127.0.0.53:53"])
        );
    }

    #[test]
    fn upstream_defaults_to_port_53() {
        assert_eq!(
            parse_upstream("192.0.2.1"),
            Ok("192.0.2.1:53".parse().unwrap())
        );
        assert_eq!(
            parse_upstream("2001:db8::1"),
            Ok("[2001:db8::1]:53".parse().unwrap())
        );
    }

    #[test]
    fn upstream_keeps_an_explicit_port() {
        assert_eq!(
            parse_upstream("192.0.2.1:5353"),
            Ok("192.0.2.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_upstream("[2001:db8::1]:5353"),
            Ok("[2001:db8::1]:5353".parse().unwrap())
        );
    }

    #[test]
    fn upstream_accepts_a_bare_zoned_address() {
        assert_eq!(
            parse_upstream("fe80::1%2"),
            Ok("[fe80::1%2]:53".parse().unwrap())
        );
    }

    #[test]
    fn upstream_rejects_garbage_port_zero_and_itself() {
        assert!(matches!(
            parse_upstream("dns.example"),
            Err(UpstreamError::Invalid(_))
        ));
        assert!(matches!(
            parse_upstream("192.0.2.1:0"),
            Err(UpstreamError::PortZero(_))
        ));
        assert!(matches!(
            parse_upstream("127.0.0.11"),
            Err(UpstreamError::SelfLoop(_))
        ));
    }
}
