//! Everything the controller can refuse, with messages that say what to do.
//!
//! A string the user gave is echoed through [`shown`] or [`quoted`], which
//! keep its first [`ECHO_LIMIT`] characters: a 100,000-character name gets a
//! one-line error, not a screenful.

use crate::store::StoreError;
use std::fmt;
use switchyard_ipam::{IpNetwork, IpamError};

/// How many characters of a user-supplied string an error message echoes.
pub const ECHO_LIMIT: usize = 64;

/// A user-supplied string as an error message shows it: at most
/// [`ECHO_LIMIT`] characters, then `… (N more characters)`.
pub(crate) struct Shown<'a> {
    text: &'a str,
    quoted: bool,
}

/// `text`, shortened to [`ECHO_LIMIT`] characters.
pub(crate) fn shown(text: &str) -> Shown<'_> {
    Shown {
        text,
        quoted: false,
    }
}

/// `text` quoted and escaped (`"a\tb"`), shortened to [`ECHO_LIMIT`]
/// characters.
pub(crate) fn quoted(text: &str) -> Shown<'_> {
    Shown { text, quoted: true }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (head, rest) = match self.text.char_indices().nth(ECHO_LIMIT) {
            Some((cut, _)) => (&self.text[..cut], self.text[cut..].chars().count()),
            None => (self.text, 0),
        };
        if self.quoted {
            write!(f, "{head:?}")?;
        } else {
            f.write_str(head)?;
        }
        if rest > 0 {
            write!(
                f,
                "… ({rest} more character{})",
                if rest == 1 { "" } else { "s" }
            )?;
        }
        Ok(())
    }
}

/// Why a controller operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// `network create -d overlay -o vni=N` with a VNI another network has.
    #[error("VNI {vni} is already used by network {}; choose another with -o vni=N, or leave it out to get a free one", shown(.network))]
    VniInUse {
        /// The VNI asked for.
        vni: u32,
        /// The network that has it.
        network: String,
    },
    /// Every VNI from the first automatic one up is taken.
    #[error("no free VNI is left between {first} and 16777215; remove unused overlay networks or pick a lower one with -o vni=N")]
    VnisExhausted {
        /// Where automatic allocation starts.
        first: u32,
    },
    /// `network create` with a name in use.
    #[error("network with name {n} already exists; choose another name or remove it first (switchyard network rm {n})", n = shown(.name))]
    NetworkExists {
        /// The name.
        name: String,
    },
    /// A network name or id that matches nothing.
    #[error("network {} not found; `switchyard network ls` lists the networks", shown(.name))]
    NoSuchNetwork {
        /// What the user gave.
        name: String,
    },
    /// An id prefix that matches several objects.
    #[error(
        "{what} {} is ambiguous: it matches {matches}; give more of the id or the full name",
        shown(.prefix)
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
    #[error("container {} not found; `switchyard ps` lists the containers", shown(.name))]
    NoSuchSandbox {
        /// What the user gave.
        name: String,
    },
    /// A container name in use.
    #[error("container name {n} is already in use; choose another --name or remove it first (switchyard rm -f {n})", n = shown(.name))]
    SandboxExists {
        /// The name.
        name: String,
    },
    /// A name that is not allowed.
    #[error("invalid {what} name {}: {reason}", quoted(.name))]
    InvalidName {
        /// `network`, `container` or `alias`.
        what: &'static str,
        /// The name.
        name: String,
        /// What rule it breaks.
        reason: String,
    },
    /// `-d` with a driver nobody knows.
    #[error("unknown driver {}; choose one of: {known}", quoted(.driver))]
    UnknownDriver {
        /// The driver asked for.
        driver: String,
        /// The drivers available.
        known: String,
    },
    /// `-d overlay`/`-d macvlan` before they exist.
    #[error("driver {} is not available yet in this version of switchyard; use -d bridge", quoted(.driver))]
    DriverNotYetAvailable {
        /// The driver asked for.
        driver: String,
    },
    /// `network create -d host|null`.
    #[error("only one instance of the {} network is allowed; it already exists as a predefined network", quoted(.driver))]
    DriverNotCreatable {
        /// The driver asked for.
        driver: String,
    },
    /// A bad `-o K=V`.
    #[error("invalid option {}={}: {hint}", shown(.option), shown(.value))]
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
    /// A `--subnet` that cannot work as a container network.
    #[error("subnet {subnet} cannot be used: {reason}")]
    UnusableSubnet {
        /// The subnet as given.
        subnet: IpNetwork,
        /// What it is and what to choose instead.
        reason: String,
    },
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
    #[error("container {} is not connected to network {network}", shown(.container))]
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
    #[error("container {} cannot be disconnected from the {network} network; remove the container instead", shown(.container))]
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
    /// Another writer of a shared store kept changing what the operation
    /// touched; nothing was changed.
    #[error(
        "the state changed concurrently ({key} was changed by another host or process in each \
         of {attempts} attempts); nothing was changed, try again"
    )]
    ConcurrentChange {
        /// The key whose compare failed last.
        key: String,
        /// How many times the operation ran.
        attempts: u32,
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
    /// of the system (store, decoding) and for [`ControllerError::ConcurrentChange`],
    /// which is nobody's mistake.
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            ControllerError::Store(_)
                | ControllerError::Decode { .. }
                | ControllerError::ConcurrentChange { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_user_string_is_echoed_shortened_with_a_count() {
        let long = "n".repeat(100_000);
        let msg = ControllerError::NoSuchNetwork { name: long }.to_string();
        assert_eq!(
            msg,
            format!(
                "network {}… (99936 more characters) not found; `switchyard network ls` lists the networks",
                "n".repeat(64)
            )
        );
    }

    #[test]
    fn quoted_strings_are_escaped_and_cut_on_a_character_boundary() {
        let text = format!("{}é\t", "a".repeat(63));
        assert_eq!(
            quoted(&text).to_string(),
            format!("\"{}é\"… (1 more character)", "a".repeat(63))
        );
        assert_eq!(quoted("a\tb").to_string(), "\"a\\tb\"");
        assert_eq!(shown("short").to_string(), "short");
    }
}
