//! Switchyard's gateway: the way out of a network and the way in.
//!
//! Each `bridge` network that is not `--internal` has a gateway on its
//! switch segment: a port that answers ARP, neighbour discovery and ping
//! for the network's gateway address and relays the containers' traffic
//! to the host's own sockets — no kernel bridge, no iptables, no
//! privilege:
//!
//! * **TCP** is terminated by a smoltcp stack and relayed over a host
//!   connection the outside opens; the container's SYN is answered only
//!   once that connect succeeded (a refused connect is a reset), and bytes
//!   move straight between smoltcp's rings and the host sockets. With
//!   `offload`, segments of up to 64 KiB cross to the TAP with a partial
//!   checksum for the kernel, as a NIC with TSO would.
//! * **UDP** maps each container source port to a host socket, accepting
//!   replies only from peers it sent to, until an idle timeout.
//! * **Ping** maps each echo identifier to a host ping socket.
//! * **Published ports** come in as [`Gateway::accept_tcp`] and
//!   [`Gateway::publish_udp`]; the container sees the real client address,
//!   except for clients on the host's loopback (or inside this host's
//!   container subnets), who appear as the gateway address.
//! * **Isolation**: nothing is relayed to another network's subnet, to
//!   loopback, or to the host through the gateway address unless the
//!   container has `host-gateway` ([`Gateway::set_host_gateway`]).
//! * **Bounds**: flows per container and per gateway ([`Limits`]).
//!
//! The gateway does no I/O (see [`Outside`]): the real daemon drives it
//! with non-blocking sockets, the simulator with a simulated host.

mod config;
mod device;
mod gateway;
mod outside;
mod packet;

pub use config::{ContainerFlows, GatewayConfig, GatewayCounters, Limits, Timeouts};
pub use gateway::{Gateway, Refusal};
pub use outside::{FlowId, Outside, OutsideError, ReadOutcome, Readiness, WriteOutcome};
