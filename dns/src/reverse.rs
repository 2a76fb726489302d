//! Reverse-lookup names: `d.c.b.a.in-addr.arpa` (RFC 1035 §3.5) and the 32
//! nibbles of `ip6.arpa` (RFC 3596 §2.5), turned back into addresses so PTR
//! queries can be answered from the same address index as everything else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::query::NameKey;

/// The address a complete reverse name stands for; `None` for anything else
/// (including partial names such as `17.172.in-addr.arpa`, which are not
/// ours to answer).
pub(crate) fn parse(name: &NameKey) -> Option<IpAddr> {
    let labels = name.label_count();
    if labels == 6 && name.label(4) == b"in-addr" && name.label(5) == b"arpa" {
        let mut octets = [0u8; 4];
        for (i, octet) in octets.iter_mut().rev().enumerate() {
            *octet = decimal_octet(name.label(i))?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    if labels == 34 && name.label(32) == b"ip6" && name.label(33) == b"arpa" {
        let mut octets = [0u8; 16];
        for i in 0..32 {
            let nibble = hex_nibble(name.label(i))?;
            // Label 0 is the lowest nibble of the last byte.
            let byte = 15 - i / 2;
            octets[byte] |= if i % 2 == 0 { nibble } else { nibble << 4 };
        }
        return Some(IpAddr::V6(Ipv6Addr::from(octets)));
    }
    None
}

/// A decimal octet as written in reverse names: 1–3 digits, no leading zero.
fn decimal_octet(label: &[u8]) -> Option<u8> {
    if label.is_empty() || label.len() > 3 || (label.len() > 1 && label[0] == b'0') {
        return None;
    }
    let mut value: u16 = 0;
    for &c in label {
        if !c.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u16::from(c - b'0');
    }
    u8::try_from(value).ok()
}

/// One hexadecimal digit (the name is already lowercase).
fn hex_nibble(label: &[u8]) -> Option<u8> {
    match label {
        [c @ b'0'..=b'9'] => Some(c - b'0'),
        [c @ b'a'..=b'f'] => Some(c - b'a' + 10),
        _ => None,
    }
}

/// The reverse name of an address, dotted, for tests and tools.
pub fn reverse_name(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                for nibble in [byte & 0x0F, byte >> 4] {
                    out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
                    out.push('.');
                }
            }
            out.push_str("ip6.arpa");
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> NameKey {
        NameKey::from_dotted(s).expect("valid name")
    }

    #[test]
    fn ipv4_reverse_name_round_trips() {
        let addr: IpAddr = "172.18.0.5".parse().unwrap();
        assert_eq!(reverse_name(addr), "5.0.18.172.in-addr.arpa");
        assert_eq!(parse(&key(&reverse_name(addr))), Some(addr));
    }

    #[test]
    fn ipv6_reverse_name_round_trips() {
        let addr: IpAddr = "fd00:1:2::abcd".parse().unwrap();
        assert_eq!(parse(&key(&reverse_name(addr))), Some(addr));
    }

    #[test]
    fn reverse_names_are_case_insensitive() {
        assert_eq!(
            parse(&key("5.0.18.172.IN-ADDR.Arpa")),
            Some("172.18.0.5".parse().unwrap())
        );
    }

    #[test]
    fn partial_and_odd_reverse_names_are_not_addresses() {
        assert_eq!(parse(&key("18.172.in-addr.arpa")), None);
        assert_eq!(parse(&key("05.0.18.172.in-addr.arpa")), None);
        assert_eq!(parse(&key("256.0.18.172.in-addr.arpa")), None);
        assert_eq!(parse(&key("web.net")), None);
    }
}
