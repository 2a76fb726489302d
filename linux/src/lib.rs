//! Real Linux primitives: sandbox namespaces, TAP devices, netlink, and
//! running commands inside sandboxes — rootless as well as root.
//!
//! # The pieces
//! - [`spawn_holder`] starts a sandbox's *holder*, a tiny process (our own
//!   binary re-executed as `switchyard __internal holder`) that creates the
//!   namespaces and keeps them alive, surviving daemon restarts.
//! - [`NsSession`] is a single-threaded helper (`__internal nsenter`) that
//!   has joined a sandbox and makes descriptors there: TAPs, a netlink
//!   socket, bound sockets. They come back over `SCM_RIGHTS` and keep their
//!   namespace wherever they are used afterwards.
//! - [`Netlink`] configures links through such a socket, and
//!   [`configure_interface`] applies a driver's [`InterfacePlan`](switchyard_switch::driver::InterfacePlan).
//! - [`command_in`] builds a `Command` that joins a sandbox before `exec`;
//!   [`command_in_confined`] also narrows it to a container's
//!   [`Capabilities`] (Docker's default set unless told otherwise).
//!
//! # Rootless, step by step
//! 1. The holder, started by an ordinary user, calls `unshare(CLONE_NEWUSER)`
//!    (possible only because it is single-threaded), writes `deny` to
//!    `/proc/self/setgroups` and maps uid/gid 0 inside to the user's ids;
//!    now it has all capabilities *inside* that user namespace.
//! 2. It unshares network, mount and UTS namespaces, which the new user
//!    namespace owns, then sets them up as root would.
//! 3. The namespace helper, also single-threaded, joins the holder's user
//!    namespace — allowed, since its user created it — and then the
//!    network namespace. There it opens `/dev/net/tun` (which must be
//!    mode 0666, the usual default: file permissions are checked against
//!    the real user) and creates TAPs, holding `CAP_NET_ADMIN` over that
//!    namespace.
//! 4. The daemon, multi-threaded and never in the user namespace, receives
//!    the descriptors. Netlink requests on the received socket pass the
//!    kernel's checks because both the socket's opener and the sender (the
//!    user who owns the user namespace) are privileged over it.
//! 5. `run`/`exec` fork, `setns` into user then the rest, drop
//!    capabilities, fork once more into the PID namespace, and exec.
//!
//! Nothing here forks without exec, and nothing changes the namespaces of
//! a thread of the calling process.

mod caps;
pub mod clock;
pub mod dataplane;
mod error;
pub mod event_loop;
mod exec;
mod fdpass;
mod holder;
mod iface;
mod netlink;
mod ns;
mod nsenter;
pub mod port;
pub mod portowner;
mod tap;
#[cfg(test)]
mod test_frames;

pub use caps::{last_cap, Capabilities};
pub use dataplane::{Dataplane, DataplaneConfig, DataplaneError, DataplaneReport, PortReport};
pub use error::{RealError, Result};
pub use event_loop::{Event, EventLoop, Interest, Waker};
pub use exec::{command_in, command_in_confined, Join};
pub use holder::{
    find_holders, spawn_holder, Holder, HolderLabel, HolderMode, HolderSpec, LabelledHolder,
    HOLDER_READY_TIMEOUT_SECS,
};
pub use iface::{configure_interface, remove_default_routes, SANDBOX_TXQUEUELEN};
pub use netlink::{DefaultRoute, IpFamily, LinkInfo, Netlink};
pub use ns::{open_network_namespace, NsKind};
pub use nsenter::{NsSession, SESSION_READY_TIMEOUT_SECS};
pub use port::{
    IoCounters, Offload, PortBackend, RxBatch, TapFraming, TapPort, TunnelEndpoint,
    TunnelEndpointConfig, TunnelPortError, TunnelReport, TunnelStats,
};
pub use tap::{TapOptions, VNET_HDR_LEN};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A network namespace to work in: a sandbox's holder, or a namespace
/// someone else made (`switchyard attach --netns PATH`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetnsTarget {
    /// The namespaces a holder keeps.
    Holder(Holder),
    /// A bind-mounted namespace (`/run/netns/NAME` from `ip netns add`) or
    /// `/proc/PID/ns/net`. Its owning user namespace is found with
    /// `NS_GET_USERNS` and joined first when it is not ours.
    Path(PathBuf),
}

/// Parses the `key=value` arguments of the internal helpers (values may
/// contain '='; keys may not).
pub(crate) fn parse_kv(args: &[String]) -> Result<BTreeMap<&str, &str>> {
    let mut out = BTreeMap::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| RealError::Usage(format!("expected key=value, got {a:?}")))?;
        out.insert(k, v);
    }
    Ok(out)
}

/// Entry point of the hidden `switchyard __internal <helper> <args...>`
/// subcommand, which the daemon and clients start to do namespace work in a
/// fresh single-threaded process. `args` are the words after `__internal`
/// (a leading `__internal` is skipped too). Call it before starting any
/// thread. Never returns.
pub fn internal_main(args: &[String]) -> ! {
    let args = match args.first() {
        Some(first) if first == "__internal" => &args[1..],
        _ => args,
    };
    let code = match args.first().map(String::as_str) {
        Some("holder") => holder::holder_main(&args[1..]),
        Some("nsenter") => nsenter::nsenter_main(&args[1..]),
        other => {
            eprintln!(
                "switchyard: {}",
                RealError::Usage(format!(
                    "unknown helper {other:?} (expected holder or nsenter)"
                ))
            );
            2
        }
    };
    std::process::exit(code)
}
