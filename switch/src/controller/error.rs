//! Everything the controller can refuse, with messages that say what to do.

use crate::store::StoreError;
use switchyard_ipam::IpamError;

/// Why a controller operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// `network create` with a name in use.
    #[error("network with name {name} already exists; choose another name or remove it first (switchyard network rm {name})")]
    NetworkExists {
        /// The name.
        name: String,
    },
    /// A network name or id that matches nothing.
    #[error("network {name} not found; `switchyard network ls` lists the networks")]
    NoSuchNetwork {
        /// What the user gave.
        name: String,
    },
    /// An id prefix that matches several objects.
    #[error(
        "{what} {prefix} is ambiguous: it matches {matches}; give more of the id or the full name"
    )]
    Ambiguous {
        /// `network` or `container`.
        what: &'static str,
        /// The prefix given.
        prefix: String,
        /// The names it matches.
        matches: String,
    },
    /// A container name or id that matches nothing.
    #[error("container {name} not found; `switchyard ps` lists the containers")]
    NoSuchSandbox {
        /// What the user gave.
        name: String,
    },
    /// A container name in use.
    #[error("container name {name} is already in use; choose another --name or remove it first (switchyard rm -f {name})")]
    SandboxExists {
        /// The name.
        name: String,
    },
    /// A name that is not allowed.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// `network`, `container` or `alias`.
        what: &'static str,
        /// The name.
        name: String,
        /// What rule it breaks.
        reason: String,
    },
    /// `-d` with a driver nobody knows.
    #[error("unknown driver {driver:?}; choose one of: {known}")]
    UnknownDriver {
        /// The driver asked for.
        driver: String,
        /// The drivers available.
        known: String,
    },
    /// `-d overlay`/`-d macvlan` before they exist.
    #[error("driver {driver:?} is not available yet in this version of switchyard; use -d bridge")]
    DriverNotYetAvailable {
        /// The driver asked for.
        driver: String,
    },
    /// `network create -d host|null`.
    #[error("only one instance of the {driver:?} network is allowed; it already exists as a predefined network")]
    DriverNotCreatable {
        /// The driver asked for.
        driver: String,
    },
    /// A bad `-o K=V`.
    #[error("invalid option {option}={value}: {hint}")]
    InvalidOption {
        /// The key.
        option: String,
        /// The value.
        value: String,
        /// What to write instead.
        hint: String,
    },
    /// Inconsistent subnets, gateways, ranges.
    #[error("{0}")]
    InvalidSpec(String),
    /// IPAM refused.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// `network rm bridge|host|none`.
    #[error("{name} is a pre-defined network and cannot be removed")]
    PredefinedNetwork {
        /// The network.
        name: String,
    },
    /// `network rm` while containers are attached.
    #[error("network {network} has active endpoints ({containers}); disconnect them first (switchyard network disconnect {network} CONTAINER)")]
    ActiveEndpoints {
        /// The network.
        network: String,
        /// The attached containers' names.
        containers: String,
    },
    /// Connecting twice.
    #[error("container {container} is already connected to network {network}")]
    AlreadyConnected {
        /// The container.
        container: String,
        /// The network.
        network: String,
    },
    /// Disconnecting something not connected.
    #[error("container {container} is not connected to network {network}")]
    NotConnected {
        /// The container.
        container: String,
        /// The network.
        network: String,
    },
    /// Connecting a `none`/`host` container elsewhere, or anything to them.
    #[error("container {container} cannot be connected to network {network}: {reason}")]
    ExclusiveNetwork {
        /// The container.
        container: String,
        /// The network asked for.
        network: String,
        /// Which exclusivity rule applies.
        reason: String,
    },
    /// Disconnecting from `host`/`none`.
    #[error("container {container} cannot be disconnected from the {network} network; remove the container instead")]
    CannotLeaveExclusive {
        /// The container.
        container: String,
        /// `host` or `none`.
        network: String,
    },
    /// Connecting a `container:OTHER` sandbox.
    #[error(
        "container {container} shares the network namespace of {owner}; connect {owner} instead"
    )]
    SharedNamespace {
        /// The container.
        container: String,
        /// The namespace owner.
        owner: String,
    },
    /// `--ip` where Docker forbids it.
    #[error("user specified IP address is supported on user defined networks only; {network} is not one (create one with switchyard network create --subnet ...)")]
    StaticIpNotAllowed {
        /// The network.
        network: String,
    },
    /// `--ip6` on a network without IPv6.
    #[error("network {network} has no IPv6 subnet; create it with --ipv6 to use --ip6")]
    NoIpv6 {
        /// The network.
        network: String,
    },
    /// `--alias` on the default bridge.
    #[error(
        "network-scoped aliases are supported on user defined networks only; {network} is not one"
    )]
    AliasNotAllowed {
        /// The network.
        network: String,
    },
    /// Removing a sandbox others share.
    #[error("container {name} is in use: {users} share its network namespace; remove them first or use -f")]
    SandboxInUse {
        /// The container.
        name: String,
        /// Who shares it.
        users: String,
    },
    /// The store failed.
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    /// Stored state that cannot be decoded.
    #[error("stored object {key} cannot be read ({detail}); the state was written by an incompatible version or edited by hand")]
    Decode {
        /// The key.
        key: String,
        /// The serde error.
        detail: String,
    },
}

impl ControllerError {
    /// True for mistakes in the request (exit status 1), false for faults
    /// of the system (store, decoding).
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            ControllerError::Store(_) | ControllerError::Decode { .. }
        )
    }
}
