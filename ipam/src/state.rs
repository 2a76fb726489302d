//! The persisted shapes of pools and of the whole IPAM (the controller saves
//! them as JSON). Allocations are stored as sorted ranges so a busy /16 is a
//! handful of strings, not one entry per address; everything is checked again
//! on load.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::IpamConfig;
use crate::pool::Pool;

/// An inclusive run of addresses, written `10.1.0.2-10.1.0.9`, or just
/// `10.1.0.7` when it holds one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AddrRange {
    pub(crate) first: IpAddr,
    pub(crate) last: IpAddr,
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl FromStr for AddrRange {
    type Err = String;

    fn from_str(s: &str) -> Result<AddrRange, String> {
        let parse = |t: &str| {
            t.parse::<IpAddr>()
                .map_err(|_| format!("'{s}' is not an address or FIRST-LAST range"))
        };
        match s.split_once('-') {
            Some((a, b)) => Ok(AddrRange {
                first: parse(a)?,
                last: parse(b)?,
            }),
            None => {
                let ip = parse(s)?;
                Ok(AddrRange {
                    first: ip,
                    last: ip,
                })
            }
        }
    }
}

impl Serialize for AddrRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AddrRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AddrRange, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A pool as persisted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PoolState {
    pub(crate) space: String,
    pub(crate) owner: String,
    pub(crate) subnet: IpNetwork,
    pub(crate) gateway: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ip_range: Option<IpNetwork>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) aux_addresses: BTreeMap<String, IpAddr>,
    /// Handed-out addresses as sorted, disjoint ranges.
    pub(crate) allocated: Vec<AddrRange>,
    /// The allocation cursor.
    pub(crate) next_address: IpAddr,
}

/// The whole IPAM as persisted: its configuration and its pools, ordered.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct IpamState {
    pub(crate) config: IpamConfig,
    pub(crate) pools: Vec<Pool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_address_range_is_written_without_a_dash() {
        let r: AddrRange = "10.1.0.7".parse().unwrap();
        assert_eq!(r.first, r.last);
        assert_eq!(r.to_string(), "10.1.0.7");
    }

    #[test]
    fn v6_range_round_trips() {
        let r: AddrRange = "fd00::2-fd00::9".parse().unwrap();
        assert_eq!(r.to_string(), "fd00::2-fd00::9");
    }

    #[test]
    fn garbage_range_is_rejected() {
        assert!("10.1.0.7-".parse::<AddrRange>().is_err());
        assert!("x".parse::<AddrRange>().is_err());
    }
}
