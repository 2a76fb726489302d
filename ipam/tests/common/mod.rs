//! Helpers so the tests read like the commands a user types.
#![allow(dead_code)]

use std::net::IpAddr;

use switchyard_ipam::{IpNetwork, Ipam, IpamConfig, PoolId, PoolRequest, LOCAL};

pub fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The ULA /48 every test configures for IPv6.
pub const ULA: &str = "fd00:1:2::/48";

/// An IPAM with Docker's defaults.
pub fn ipam() -> Ipam {
    Ipam::new(IpamConfig::docker_defaults(ULA.parse().unwrap()))
}

/// `network create OWNER`.
pub fn default_req(owner: &str) -> PoolRequest {
    PoolRequest {
        owner: owner.to_string(),
        ..PoolRequest::default()
    }
}

/// `network create OWNER --subnet SUBNET`.
pub fn subnet_req(owner: &str, subnet: &str) -> PoolRequest {
    PoolRequest {
        owner: owner.to_string(),
        subnet: Some(net(subnet)),
        ..PoolRequest::default()
    }
}

/// Creates `OWNER` with `SUBNET` and returns the pool id.
pub fn create(ipam: &mut Ipam, owner: &str, subnet: &str) -> PoolId {
    ipam.request_pool(subnet_req(owner, subnet)).unwrap()
}

/// The id a local pool with this subnet has.
pub fn local(subnet: &str) -> PoolId {
    PoolId::new(LOCAL, net(subnet))
}
