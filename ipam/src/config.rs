//! Where subnets come from when a network does not name one: Docker's
//! `default-address-pools`.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use serde::{Deserialize, Serialize};

use crate::addr::{self, Family};
use crate::error::IpamError;

/// One entry of Docker's default-address-pools: `base` is cut into subnets
/// of prefix length `size`, handed out in address order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultPool {
    /// The block subnets are cut from.
    pub base: IpNetwork,
    /// Prefix length of each subnet cut from `base`.
    pub size: u8,
}

impl DefaultPool {
    /// A checked entry (see [`DefaultPool::validate`]).
    pub fn new(base: IpNetwork, size: u8) -> Result<DefaultPool, IpamError> {
        let pool = DefaultPool { base, size };
        pool.validate()?;
        Ok(pool)
    }

    /// The family of the subnets this entry produces.
    pub fn family(&self) -> Family {
        Family::of_net(self.base)
    }

    /// Checks that the base has no host bits and that `size` cuts it into
    /// subnets that are inside it and big enough for a network.
    pub fn validate(&self) -> Result<(), IpamError> {
        let family = self.family();
        let invalid = |reason: String| IpamError::InvalidDefaultPool {
            text: self.to_string(),
            reason,
        };
        if addr::has_host_bits(self.base) {
            return Err(invalid(format!(
                "base {} has host bits set; write {}",
                self.base,
                addr::normalized(self.base)
            )));
        }
        if self.size < self.base.prefix() {
            return Err(invalid(format!(
                "size {} is shorter than the base prefix /{}; use a size of at least {}",
                self.size,
                self.base.prefix(),
                self.base.prefix()
            )));
        }
        if self.size > family.max_pool_prefix() {
            return Err(invalid(format!(
                "size {} leaves no room for a gateway and a container; use a size of at most {}",
                self.size,
                family.max_pool_prefix()
            )));
        }
        Ok(())
    }
}

impl fmt::Display for DefaultPool {
    /// Docker's syntax, the same that [`FromStr`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "base={},size={}", self.base, self.size)
    }
}

impl FromStr for DefaultPool {
    type Err = IpamError;

    /// Parses Docker's `base=10.10.0.0/16,size=24` (keys in any order) and
    /// validates the result.
    fn from_str(s: &str) -> Result<DefaultPool, IpamError> {
        let invalid = |reason: String| IpamError::InvalidDefaultPool {
            text: s.to_string(),
            reason,
        };
        let mut base = None;
        let mut size = None;
        for part in s.split(',') {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                invalid(format!(
                    "'{}' is not KEY=VALUE; write base=CIDR,size=N",
                    part.trim()
                ))
            })?;
            match key.trim() {
                "base" if base.is_none() => {
                    let net = value.trim().parse::<IpNetwork>().map_err(|e| {
                        invalid(format!(
                            "base '{}' is not a CIDR ({e}); write e.g. base=10.10.0.0/16",
                            value.trim()
                        ))
                    })?;
                    base = Some(net);
                }
                "size" if size.is_none() => {
                    let n = value.trim().parse::<u8>().map_err(|_| {
                        invalid(format!(
                            "size '{}' is not a prefix length; write e.g. size=24",
                            value.trim()
                        ))
                    })?;
                    size = Some(n);
                }
                "base" | "size" => {
                    return Err(invalid(format!(
                        "'{}' is given twice; give it once",
                        key.trim()
                    )));
                }
                other => {
                    return Err(invalid(format!(
                        "unknown key '{other}'; only base and size are allowed"
                    )));
                }
            }
        }
        let base =
            base.ok_or_else(|| invalid("base is missing; write base=CIDR,size=N".to_string()))?;
        let size =
            size.ok_or_else(|| invalid("size is missing; write base=CIDR,size=N".to_string()))?;
        DefaultPool::new(base, size).map_err(|e| match e {
            IpamError::InvalidDefaultPool { reason, .. } => invalid(reason),
            other => other,
        })
    }
}

/// The default pools IPAM draws from, per address space and family, in the
/// order they are tried.
///
/// The `local` space (single-host networks) uses `v4_pools`/`v6_pools`; the
/// `global` space (networks shared by every host of a cluster, such as
/// overlays) has its own, so the two never hand out the same subnet by
/// default: IPv4 from [`GLOBAL_V4_DEFAULT`] as /24s (Docker Swarm's
/// default), IPv6 from the upper half of the first local IPv6 entry when
/// `global_v6_pools` is empty (so a store written before the global space
/// existed gets it without a migration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    /// IPv4 entries of the local space, tried first to last.
    pub v4_pools: Vec<DefaultPool>,
    /// IPv6 entries of the local space, tried first to last.
    pub v6_pools: Vec<DefaultPool>,
    /// IPv4 entries of the global space.
    #[serde(default = "global_v4_default")]
    pub global_v4_pools: Vec<DefaultPool>,
    /// IPv6 entries of the global space (empty: derived from the local one).
    #[serde(default)]
    pub global_v6_pools: Vec<DefaultPool>,
}

/// The global space's IPv4 default: 10.0.0.0/8 cut into /24s.
pub const GLOBAL_V4_DEFAULT: (Ipv4Addr, u8, u8) = (Ipv4Addr::new(10, 0, 0, 0), 8, 24);

fn global_v4_default() -> Vec<DefaultPool> {
    let (base, prefix, size) = GLOBAL_V4_DEFAULT;
    vec![DefaultPool {
        base: IpNetwork::V4(v4net(base, prefix)),
        size,
    }]
}

impl IpamConfig {
    /// Docker's 31 IPv4 defaults (172.17.0.0/16 … 172.31.0.0/16 as /16s, then
    /// 192.168.0.0/16 as /20s) and the given ULA /48 cut into /64s for IPv6.
    /// Host bits in `ula48` are ignored.
    pub fn docker_defaults(ula48: Ipv6Network) -> IpamConfig {
        let mut v4_pools: Vec<DefaultPool> = (17..=31u8)
            .map(|b| DefaultPool {
                base: IpNetwork::V4(v4net(Ipv4Addr::new(172, b, 0, 0), 16)),
                size: 16,
            })
            .collect();
        v4_pools.push(DefaultPool {
            base: IpNetwork::V4(v4net(Ipv4Addr::new(192, 168, 0, 0), 16)),
            size: 20,
        });
        let ula = addr::normalized(IpNetwork::V6(ula48));
        IpamConfig {
            v4_pools,
            v6_pools: vec![DefaultPool {
                base: ula,
                size: 64,
            }],
            global_v4_pools: global_v4_default(),
            global_v6_pools: Vec::new(),
        }
    }

    /// The entries of the local space for one family.
    pub fn pools(&self, family: Family) -> &[DefaultPool] {
        match family {
            Family::V4 => &self.v4_pools,
            Family::V6 => &self.v6_pools,
        }
    }

    /// The entries of `space` (`local` or `global`) for one family. The
    /// global IPv6 default, when none is configured, is the upper half of
    /// each local IPv6 entry's base, cut the same way (local networks are
    /// handed out from the bottom of it).
    pub fn pools_in(&self, space: &str, family: Family) -> Vec<DefaultPool> {
        if space != crate::GLOBAL {
            return self.pools(family).to_vec();
        }
        match family {
            Family::V4 => self.global_v4_pools.clone(),
            Family::V6 if !self.global_v6_pools.is_empty() => self.global_v6_pools.clone(),
            Family::V6 => self
                .v6_pools
                .iter()
                .filter_map(|p| match p.base {
                    IpNetwork::V6(base) if base.prefix() < p.size => {
                        let prefix = base.prefix() + 1;
                        let upper = u128::from(base.network()) | (1u128 << (128 - prefix));
                        Ipv6Network::new(upper.into(), prefix)
                            .ok()
                            .map(|b| DefaultPool {
                                base: IpNetwork::V6(b),
                                size: p.size,
                            })
                    }
                    _ => None,
                })
                .collect(),
        }
    }

    /// Checks every entry, and that each list holds only its own family, so
    /// a daemon can refuse a bad configuration at start rather than at the
    /// first network that needs it.
    pub fn validate(&self) -> Result<(), IpamError> {
        for (family, pools) in [
            (Family::V4, &self.v4_pools),
            (Family::V6, &self.v6_pools),
            (Family::V4, &self.global_v4_pools),
            (Family::V6, &self.global_v6_pools),
        ] {
            for pool in pools {
                if pool.family() != family {
                    return Err(IpamError::InvalidDefaultPool {
                        text: pool.to_string(),
                        reason: format!(
                            "it is listed among the {family} pools; move it to the {} list",
                            pool.family()
                        ),
                    });
                }
                pool.validate()?;
            }
        }
        Ok(())
    }
}

/// A constant IPv4 network (prefix known valid).
fn v4net(ip: Ipv4Addr, prefix: u8) -> Ipv4Network {
    Ipv4Network::new(ip, prefix).unwrap_or_else(|_| unreachable!("constant prefix {prefix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ula() -> Ipv6Network {
        "fd12:3456:789a::/48".parse().unwrap()
    }

    #[test]
    fn docker_defaults_are_31_v4_pools_in_docker_order() {
        let c = IpamConfig::docker_defaults(ula());
        let subnets: usize = c
            .v4_pools
            .iter()
            .map(|p| 1usize << (p.size - p.base.prefix()))
            .sum();
        assert_eq!(subnets, 31);
        assert_eq!(c.v4_pools[0].to_string(), "base=172.17.0.0/16,size=16");
        assert_eq!(c.v4_pools[14].to_string(), "base=172.31.0.0/16,size=16");
        assert_eq!(c.v4_pools[15].to_string(), "base=192.168.0.0/16,size=20");
        assert_eq!(
            c.v6_pools,
            vec!["base=fd12:3456:789a::/48,size=64".parse().unwrap()]
        );
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn parses_docker_syntax_in_any_key_order() {
        let a: DefaultPool = "base=10.10.0.0/16,size=24".parse().unwrap();
        let b: DefaultPool = " size=24 , base=10.10.0.0/16 ".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.base, "10.10.0.0/16".parse::<IpNetwork>().unwrap());
        assert_eq!(a.size, 24);
    }

    #[test]
    fn display_round_trips_through_from_str() {
        let a: DefaultPool = "base=fd00:1::/48,size=64".parse().unwrap();
        assert_eq!(a.to_string().parse::<DefaultPool>().unwrap(), a);
    }

    #[test]
    fn rejects_missing_keys_unknown_keys_and_garbage() {
        for bad in [
            "base=10.10.0.0/16",
            "size=24",
            "base=10.10.0.0/16,size=24,color=red",
            "base=10.10.0.0/16,size=x",
            "base=nonsense,size=24",
            "base=10.10.0.0/16,base=10.11.0.0/16,size=24",
            "10.10.0.0/16",
            "",
        ] {
            let err = bad.parse::<DefaultPool>().unwrap_err();
            assert!(
                matches!(err, IpamError::InvalidDefaultPool { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn rejects_base_with_host_bits_and_says_what_to_write() {
        let err = "base=10.10.1.0/16,size=24"
            .parse::<DefaultPool>()
            .unwrap_err();
        assert!(err.to_string().contains("write 10.10.0.0/16"), "{err}");
    }

    #[test]
    fn rejects_size_shorter_than_base_or_too_small_for_a_network() {
        assert!("base=10.10.0.0/16,size=8".parse::<DefaultPool>().is_err());
        assert!("base=10.10.0.0/16,size=31".parse::<DefaultPool>().is_err());
        assert!("base=10.10.0.0/16,size=33".parse::<DefaultPool>().is_err());
        assert!("base=fd00::/48,size=127".parse::<DefaultPool>().is_err());
        assert!("base=10.10.0.0/16,size=30".parse::<DefaultPool>().is_ok());
    }

    #[test]
    fn validate_rejects_a_pool_in_the_wrong_family_list() {
        let mut c = IpamConfig::docker_defaults(ula());
        c.v4_pools.push("base=fd00::/48,size=64".parse().unwrap());
        assert!(matches!(
            c.validate(),
            Err(IpamError::InvalidDefaultPool { .. })
        ));
    }
}
