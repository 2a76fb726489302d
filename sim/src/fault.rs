//! Faults: partitions between hosts or containers (both ways or one way),
//! heals, crashes and restarts, connects and disconnects, link changes;
//! applied now or scheduled at a virtual time.

use crate::link::LinkConfig;
use serde::Serialize;
use switchyard_switch::controller::model::EndpointSpec;

/// Something in the world a partition can separate: a whole host (its
/// switch and every container on it) or one container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub(crate) enum Node {
    Host(u32),
    Container(u32),
}

/// A node together with the host it lives on, for matching rules.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Located {
    pub node: Node,
    pub host: u32,
}

impl Located {
    /// True when `rule` (a host or a container) includes this node: the
    /// node itself, or its host.
    fn covered_by(&self, rule: Node) -> bool {
        rule == self.node || rule == Node::Host(self.host)
    }
}

/// The partitions in force: frames from the first node to the second are
/// dropped. A two-way partition is two rules.
#[derive(Clone, Debug, Default)]
pub(crate) struct Partitions {
    rules: Vec<(Node, Node)>,
}

impl Partitions {
    /// Blocks `from` → `to` (idempotent).
    pub fn add(&mut self, from: Node, to: Node) {
        if !self.rules.contains(&(from, to)) {
            self.rules.push((from, to));
        }
    }

    /// Lifts every rule between `a` and `b`, both ways.
    pub fn heal(&mut self, a: Node, b: Node) {
        self.rules
            .retain(|&(x, y)| !((x == a && y == b) || (x == b && y == a)));
    }

    /// Lifts every rule.
    pub fn heal_all(&mut self) {
        self.rules.clear();
    }

    /// True when no rule is in force (the common, fast case).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when a frame from `from` may not reach `to`.
    pub fn blocks(&self, from: Located, to: Located) -> bool {
        self.rules
            .iter()
            .any(|&(x, y)| from.covered_by(x) && to.covered_by(y))
    }
}

/// Which way(s) of a link a setting applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum LinkDirection {
    /// Both ways.
    #[default]
    Both,
    /// From the link's first end to its second: for a container's link,
    /// container → switch; for a cable, its first host → its second.
    Forward,
    /// The other way.
    Backward,
}

/// A change to the world, applied at once with `Sim::apply` or scheduled
/// with `Sim::at`.
#[derive(Clone, Debug)]
pub enum Fault {
    /// No frame from `a` reaches `b` (and, unless `oneway`, none from `b`
    /// reaches `a`). `a` and `b` name hosts or containers; a host stands for
    /// its switch and all its containers.
    Partition {
        /// One side.
        a: String,
        /// The other side.
        b: String,
        /// Only `a` → `b` is cut.
        oneway: bool,
    },
    /// Lifts the partitions between `a` and `b`, both ways.
    Heal {
        /// One side.
        a: String,
        /// The other side.
        b: String,
    },
    /// Lifts every partition.
    HealAll,
    /// The host's daemon dies: switch, FDB, controller memory and resolver
    /// are gone; its containers keep running but are cut off.
    CrashHost(String),
    /// The daemon starts again over the same store: networks and endpoints
    /// are restored and the containers' interfaces plugged back in.
    RestartHost(String),
    /// The container stops, as `docker kill`: its stack and applications
    /// die and its endpoints are removed (addresses released).
    CrashContainer(String),
    /// The container starts again, reconnected to the networks it was on
    /// (a dynamic address may change, as in Docker).
    RestartContainer(String),
    /// `network connect`.
    Connect {
        /// The container.
        container: String,
        /// The network.
        network: String,
        /// Static IP, aliases.
        spec: EndpointSpec,
    },
    /// `network disconnect`.
    Disconnect {
        /// The container.
        container: String,
        /// The network.
        network: String,
    },
    /// Replaces a link's settings (one way or both).
    SetLink {
        /// `CONTAINER/IFNAME`, `CONTAINER` (all its links) or a cable name.
        link: String,
        /// Which way.
        direction: LinkDirection,
        /// The new settings.
        config: LinkConfig,
    },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Partition {
                a,
                b,
                oneway: false,
            } => write!(f, "partition {a} <-> {b}"),
            Fault::Partition { a, b, oneway: true } => write!(f, "partition {a} -> {b}"),
            Fault::Heal { a, b } => write!(f, "heal {a} <-> {b}"),
            Fault::HealAll => write!(f, "heal all partitions"),
            Fault::CrashHost(h) => write!(f, "crash host {h}"),
            Fault::RestartHost(h) => write!(f, "restart host {h}"),
            Fault::CrashContainer(c) => write!(f, "crash container {c}"),
            Fault::RestartContainer(c) => write!(f, "restart container {c}"),
            Fault::Connect {
                container, network, ..
            } => write!(f, "connect {container} to {network}"),
            Fault::Disconnect { container, network } => {
                write!(f, "disconnect {container} from {network}")
            }
            Fault::SetLink { link, .. } => write!(f, "change link {link}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: u32, host: u32) -> Located {
        Located {
            node: Node::Container(id),
            host,
        }
    }

    fn h(id: u32) -> Located {
        Located {
            node: Node::Host(id),
            host: id,
        }
    }

    #[test]
    fn a_host_rule_covers_its_containers_one_way() {
        let mut p = Partitions::default();
        p.add(Node::Host(0), Node::Host(1));
        assert!(p.blocks(c(5, 0), h(1)));
        assert!(!p.blocks(c(6, 1), h(0)), "one way only");
        assert!(!p.blocks(c(5, 0), h(0)), "own switch still reachable");
    }

    #[test]
    fn a_container_rule_matches_only_that_container() {
        let mut p = Partitions::default();
        p.add(Node::Container(1), Node::Container(2));
        assert!(p.blocks(c(1, 0), c(2, 0)));
        assert!(!p.blocks(c(1, 0), h(0)));
        assert!(!p.blocks(c(3, 0), c(2, 0)));
        p.heal(Node::Container(2), Node::Container(1));
        assert!(p.is_empty());
    }
}
