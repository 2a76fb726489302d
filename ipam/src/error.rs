//! Everything IPAM can refuse, each with a message that tells the user what
//! to do next (the CLI prints it as the one-line reason).

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::addr::Family;
use crate::space::PoolId;
use crate::{GLOBAL, LOCAL};

/// Why an IPAM request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// The pool request named an address space other than local or global.
    #[error("unknown address space '{space}'; use '{LOCAL}' or '{GLOBAL}'")]
    UnknownSpace {
        /// The name that was given.
        space: String,
    },

    /// A CIDR was written with bits set below its prefix.
    #[error("{what} {given} has host bits set; write {network}")]
    HostBitsSet {
        /// Which CIDR or address this is about (e.g. "subnet", "ip range", "broadcast address").
        what: &'static str,
        /// The CIDR as written.
        given: IpNetwork,
        /// The same CIDR with host bits cleared: what to write instead.
        network: IpNetwork,
    },

    /// The subnet cannot hold a gateway and one container.
    #[error(
        "subnet {subnet} is too small to hold a gateway and a container; use a /{max_prefix} or larger"
    )]
    SubnetTooSmall {
        /// The subnet concerned.
        subnet: IpNetwork,
        /// The longest prefix allowed for the family.
        max_prefix: u8,
    },

    /// The named subnet shares addresses with another network's pool in the same space.
    #[error("subnet {subnet} overlaps network '{owner}' ({existing}); choose another --subnet")]
    SubnetOverlaps {
        /// The subnet concerned.
        subnet: IpNetwork,
        /// The network that owns the pool.
        owner: String,
        /// The subnet already in use.
        existing: IpNetwork,
    },

    /// A gateway, ip range or aux address was given without a subnet to check it against.
    #[error("{option} needs --subnet: pass the subnet it belongs to as well")]
    NeedsSubnet {
        /// The command-line option that needs a subnet.
        option: &'static str,
    },

    /// No default pool exists for the family, so a subnet must be named.
    #[error("no default {family} address pool is configured; pass --subnet or add a default address pool")]
    NoDefaultPool {
        /// The family requested.
        family: Family,
    },

    /// Every subnet the default pools can produce is taken.
    #[error(
        "all default {}address pools are in use; pass --subnet or add a default address pool",
        if *.family == Family::V6 { "IPv6 " } else { "" }
    )]
    DefaultPoolsExhausted {
        /// The family requested.
        family: Family,
    },

    /// A default-address-pool entry could not be used.
    #[error("invalid default address pool '{text}': {reason}")]
    InvalidDefaultPool {
        /// The entry as written.
        text: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The ip range is not inside the subnet (or not the same family).
    #[error(
        "ip range {range} is outside subnet {subnet} of network '{owner}'; choose an --ip-range inside it"
    )]
    RangeOutsideSubnet {
        /// The range concerned.
        range: IpNetwork,
        /// The subnet concerned.
        subnet: IpNetwork,
        /// The network that owns the pool.
        owner: String,
    },

    /// The gateway is not inside the subnet (or not the same family).
    #[error(
        "gateway {gateway} is outside subnet {subnet} of network '{owner}'; choose a --gateway inside it"
    )]
    GatewayOutsideSubnet {
        /// The gateway as given.
        gateway: IpAddr,
        /// The subnet concerned.
        subnet: IpNetwork,
        /// The network that owns the pool.
        owner: String,
    },

    /// The gateway is the network or broadcast address.
    #[error("gateway {gateway} is the {what} of subnet {subnet}; choose another --gateway")]
    GatewayReserved {
        /// The gateway as given.
        gateway: IpAddr,
        /// Which CIDR or address this is about (e.g. "subnet", "ip range", "broadcast address").
        what: &'static str,
        /// The subnet concerned.
        subnet: IpNetwork,
    },

    /// An aux address is not inside the subnet (or not the same family).
    #[error(
        "auxiliary address '{name}' ({ip}) is outside subnet {subnet} of network '{owner}'; choose an --aux-address inside it"
    )]
    AuxOutsideSubnet {
        /// The auxiliary address's name.
        name: String,
        /// The address concerned.
        ip: IpAddr,
        /// The subnet concerned.
        subnet: IpNetwork,
        /// The network that owns the pool.
        owner: String,
    },

    /// An aux address collides with the network or broadcast address, the gateway or another aux address.
    #[error(
        "auxiliary address '{name}' ({ip}) is {taken_by} of network '{owner}'; choose another --aux-address"
    )]
    AuxReserved {
        /// The auxiliary address's name.
        name: String,
        /// The address concerned.
        ip: IpAddr,
        /// What already holds the address.
        taken_by: String,
        /// The network that owns the pool.
        owner: String,
    },

    /// The pool does not exist (never created, or released already).
    #[error("no address pool {id}; the network may have been removed already")]
    NoSuchPool {
        /// The id that was looked up.
        id: PoolId,
    },

    /// A requested address is not inside the pool's subnet (or not the same family).
    #[error(
        "address {ip} is outside subnet {subnet} of network '{owner}'; choose an --ip inside it"
    )]
    AddressOutsideSubnet {
        /// The address concerned.
        ip: IpAddr,
        /// The subnet concerned.
        subnet: IpNetwork,
        /// The network that owns the pool.
        owner: String,
    },

    /// A requested address is the network's gateway.
    #[error("address {ip} is the gateway of network '{owner}'; choose another --ip")]
    AddressIsGateway {
        /// The address concerned.
        ip: IpAddr,
        /// The network that owns the pool.
        owner: String,
    },

    /// A requested address is reserved as an aux address.
    #[error(
        "address {ip} is reserved as auxiliary address '{name}' of network '{owner}'; choose another --ip"
    )]
    AddressIsAux {
        /// The address concerned.
        ip: IpAddr,
        /// The auxiliary address's name.
        name: String,
        /// The network that owns the pool.
        owner: String,
    },

    /// A requested address is the network, broadcast or subnet-router anycast address.
    #[error("address {ip} is the {what} of network '{owner}' ({subnet}); choose another --ip")]
    AddressReserved {
        /// The address concerned.
        ip: IpAddr,
        /// Which CIDR or address this is about (e.g. "subnet", "ip range", "broadcast address").
        what: &'static str,
        /// The network that owns the pool.
        owner: String,
        /// The subnet concerned.
        subnet: IpNetwork,
    },

    /// A requested address is already handed out.
    #[error("address {ip} is already in use in network '{owner}'")]
    AddressInUse {
        /// The address concerned.
        ip: IpAddr,
        /// The network that owns the pool.
        owner: String,
    },

    /// Dynamic allocation found no free address in the pool's range.
    #[error(
        "no free address left in network '{owner}' ({subnet}, range {range}); disconnect a container or use a larger --subnet or --ip-range"
    )]
    NoFreeAddress {
        /// The network that owns the pool.
        owner: String,
        /// The subnet concerned.
        subnet: IpNetwork,
        /// The range concerned.
        range: IpNetwork,
    },

    /// A released address was not handed out (never, or released already).
    #[error("address {ip} is not allocated in network '{owner}'; nothing to release")]
    NotAllocated {
        /// The address concerned.
        ip: IpAddr,
        /// The network that owns the pool.
        owner: String,
    },

    /// Persisted state does not satisfy IPAM's rules (hand-edited or corrupted).
    #[error("saved IPAM state is invalid: {reason}")]
    InvalidState {
        /// What is wrong with it.
        reason: String,
    },
}
