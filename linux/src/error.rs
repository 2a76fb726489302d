//! The errors of real-mode I/O, each phrased so the user knows what to do.

use std::io;
use std::path::PathBuf;

/// Shorthand for results of this module.
pub type Result<T, E = RealError> = std::result::Result<T, E>;

/// What went wrong while creating or entering namespaces, TAP devices or
/// configuring links. Messages name the object and suggest the next step.
#[derive(Debug, thiserror::Error)]
pub enum RealError {
    /// The helper process (our own binary re-executed) could not be started.
    #[error("cannot start helper `{exe} __internal {helper}`: {source}; check that the switchyard binary still exists at that path and is executable")]
    SpawnHelper {
        /// Path of the binary we tried to run.
        exe: PathBuf,
        /// Which helper (`holder`, `nsenter`).
        helper: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A system call failed; `hint` says what usually fixes it.
    #[error("{what}: {source}{hint}")]
    Os {
        /// What we were doing, naming the object.
        what: String,
        /// The OS error.
        source: io::Error,
        /// Empty, or "; " followed by advice.
        hint: String,
    },
    /// `/dev/net/tun` could not be opened.
    #[error("cannot open /dev/net/tun: {source}; {hint}")]
    TunDevice {
        /// The OS error.
        source: io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// Creating an interface whose name is taken (exclusive creation).
    #[error("interface {name} already exists in that namespace; switchyard picks a free ethN name, so another program made it meanwhile: retry")]
    InterfaceExists {
        /// Interface name.
        name: String,
    },
    /// A TAP device of that name is held open by someone else.
    #[error("TAP device {name} is already open by another process (a previous daemon still running?); stop that process or choose another interface name")]
    TapBusy {
        /// Interface name.
        name: String,
    },
    /// The name is taken by an interface that is not a single-queue TAP.
    #[error("interface {name} already exists in that namespace and is not a TAP device this daemon can attach to; delete it (ip link del {name}) or choose another name")]
    NotATap {
        /// Interface name.
        name: String,
    },
    /// An interface name the kernel would refuse.
    #[error("invalid interface name {name:?}: use 1 to 15 characters, no '/', ':' or whitespace (e.g. eth0)")]
    InvalidInterfaceName {
        /// The name given.
        name: String,
    },
    /// An interface we need is not in the namespace.
    #[error(
        "no interface named {name} in that namespace; check the name (ip link) or create it first"
    )]
    NoSuchLink {
        /// Interface name (or `#index`).
        name: String,
    },
    /// An address is already configured.
    #[error("address {addr} already exists on {ifname}; remove it first (ip addr del {addr} dev {ifname}) or pick another address")]
    AddressExists {
        /// The address with its prefix.
        addr: String,
        /// Interface name.
        ifname: String,
    },
    /// A default route of that family exists already.
    #[error(
        "a default {family} route already exists in that namespace; delete it first or replace it"
    )]
    RouteExists {
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
    /// The gateway is not on any subnet of the interface.
    #[error("gateway {gateway} is not reachable through {ifname}: add an address in the gateway's subnet to {ifname} first")]
    GatewayUnreachable {
        /// The gateway address.
        gateway: String,
        /// Interface name.
        ifname: String,
    },
    /// Any other netlink failure.
    #[error("netlink {op} failed: {source}{detail}{hint}")]
    Netlink {
        /// The operation, naming its object.
        op: String,
        /// The errno the kernel returned.
        source: io::Error,
        /// Empty, or " (kernel says: ...)" from the extended ack.
        detail: String,
        /// Empty, or "; " followed by advice.
        hint: &'static str,
    },
    /// The kernel answered something we could not parse.
    #[error("unexpected netlink reply during {op}: {problem}; this is a bug in switchyard or an unusual kernel, please report it")]
    NetlinkProtocol {
        /// The operation.
        op: String,
        /// What was wrong with the reply.
        problem: String,
    },
    /// The sandbox holder reported an error before becoming ready.
    #[error("sandbox holder failed to start: {message} (holder log: {log})")]
    HolderFailed {
        /// The holder's own explanation.
        message: String,
        /// Where its stdout/stderr went.
        log: PathBuf,
    },
    /// The sandbox holder neither became ready nor failed in time.
    #[error("sandbox holder did not become ready within {seconds} s and was killed; see its log at {log}")]
    HolderTimeout {
        /// How long we waited.
        seconds: u64,
        /// Where its stdout/stderr went.
        log: PathBuf,
    },
    /// The sandbox holder process is gone (or its pid now names another process).
    #[error("sandbox holder process {pid} is no longer running, so the sandbox's namespaces are gone; remove the container and start it again")]
    HolderGone {
        /// The pid it had.
        pid: u32,
    },
    /// A namespace could not be joined.
    #[error("cannot join {what}: {source}{hint}")]
    Join {
        /// The namespace, e.g. "network namespace /run/netns/foo".
        what: String,
        /// The OS error.
        source: io::Error,
        /// Empty, or "; " followed by advice.
        hint: &'static str,
    },
    /// A namespace operation was attempted in a multi-threaded process.
    #[error("{what} needs a single-threaded process but this one has {threads} threads; start namespace helpers before any thread (logging, runtime) is spawned")]
    NotSingleThreaded {
        /// What we tried.
        what: &'static str,
        /// Threads counted in /proc/self/status.
        threads: u32,
    },
    /// The namespace helper reported an error for one request.
    #[error("{message}")]
    InNamespace {
        /// The helper's message (already phrased for the user).
        message: String,
    },
    /// The namespace helper went away.
    #[error("the namespace helper exited unexpectedly during {op}; its error output went to the daemon's stderr; open a new session")]
    SessionClosed {
        /// What we asked for.
        op: String,
    },
    /// The namespace helper did not answer the initial handshake in time.
    #[error("the namespace helper did not report within {seconds} s whether it joined the namespace; it was killed")]
    SessionTimeout {
        /// How long we waited.
        seconds: u64,
    },
    /// A malformed message between us and a helper (a bug, not a user error).
    #[error("internal protocol error with the namespace helper: {0}; this is a bug in switchyard, please report it")]
    Protocol(String),
    /// The hidden `__internal` subcommand was called with bad arguments.
    #[error("bad internal helper arguments: {0}; `switchyard __internal` is started by switchyard itself, not meant to be run by hand")]
    Usage(String),
    /// A path given as a network namespace is something else (a file, a
    /// directory, another kind of namespace).
    #[error("{path} is not a network namespace: give /run/netns/NAME (made by ip netns add NAME) or /proc/PID/ns/net of a process inside it")]
    NotANamespace {
        /// The path given.
        path: String,
    },
    /// A request that cannot be satisfied for this kind of target.
    #[error("{0}")]
    Unsupported(String),
}

impl RealError {
    /// An [`RealError::Os`] from the current `errno`, with optional advice.
    pub(crate) fn os(
        what: impl Into<String>,
        source: impl Into<io::Error>,
        hint: &str,
    ) -> RealError {
        RealError::Os {
            what: what.into(),
            source: source.into(),
            hint: if hint.is_empty() {
                String::new()
            } else {
                format!("; {hint}")
            },
        }
    }
}
