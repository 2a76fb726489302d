//! What the simulator can refuse, with messages that say what to do next.

use switchyard_switch::ControllerError;

/// Why a simulator operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A host name that matches no simulated host.
    #[error("no host named {name:?}; add it first with add_host({name:?}) (hosts: {known})")]
    NoSuchHost {
        /// The name given.
        name: String,
        /// The hosts that exist.
        known: String,
    },
    /// A container name that matches no simulated container.
    #[error("no container named {name:?}; add it first with add_container (containers: {known})")]
    NoSuchContainer {
        /// The name given.
        name: String,
        /// The containers that exist.
        known: String,
    },
    /// A host or container name used twice.
    #[error("{what} name {name:?} is already used; choose another")]
    DuplicateName {
        /// `host`, `container` or `cable`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The controller refused an operation (Docker's rules).
    #[error("host {host}: {source}")]
    Controller {
        /// The host whose controller refused.
        host: String,
        /// Its reason.
        #[source]
        source: ControllerError,
    },
    /// An operation that needs a running host.
    #[error("host {host} is down; restart it first (restart_host({host:?}))")]
    HostDown {
        /// The host.
        host: String,
    },
    /// An operation that needs a running container.
    #[error(
        "container {container} is not running; restart it first (restart_container({container:?}))"
    )]
    ContainerDown {
        /// The container.
        container: String,
    },
    /// Applications need a TCP/IP stack; raw containers only send what they are given.
    #[error("container {container} has no TCP/IP stack (it was added as a raw container); add it with add_container to run applications")]
    NoStack {
        /// The container.
        container: String,
    },
    /// A target that names no container and is not an IP address.
    #[error("{target:?} is neither a container name nor an IPv4 address")]
    BadTarget {
        /// What was given.
        target: String,
    },
    /// A container (or target) without an IPv4 address to use.
    #[error("container {container} has no IPv4 address{detail}; connect it to a network with an IPv4 subnet")]
    NoAddress {
        /// The container.
        container: String,
        /// Extra context, e.g. " on a network shared with a".
        detail: String,
    },
    /// A link, interface or cable name that matches nothing.
    #[error("no link named {name:?}; links are named CONTAINER/IFNAME (e.g. a/eth0) or by cable name (links: {known})")]
    NoSuchLink {
        /// The name given.
        name: String,
        /// The links that exist.
        known: String,
    },
    /// A capture point that matches nothing.
    #[error("cannot capture {name:?}: name a host, a link (CONTAINER/IFNAME or a cable) or CONTAINER/lo")]
    NoSuchCapturePoint {
        /// The name given.
        name: String,
    },
    /// A cable whose network is missing on one of its hosts.
    #[error("cable {cable}: network {network:?} does not exist on host {host}; create it there first (with the same subnet)")]
    CableNetworkMissing {
        /// The cable.
        cable: String,
        /// The network it joins.
        network: String,
        /// The host lacking it.
        host: String,
    },
    /// A network without a switch segment (host, none) cannot be cabled.
    #[error(
        "network {network:?} has no switch segment (driver {driver}); cables join bridge networks"
    )]
    NotSwitched {
        /// The network.
        network: String,
        /// Its driver.
        driver: String,
    },
    /// An argument out of its range.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
        /// Why, and what to give instead.
        detail: String,
    },
    /// Writing a pcap file failed.
    #[error("cannot write {path}: {source}; check that the directory exists and is writable")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
