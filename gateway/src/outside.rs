//! The gateway's outside: the host's own sockets, as the gateway sees them.
//!
//! The gateway never does I/O. What a container's flow needs from the
//! host — a TCP connection, a UDP socket, a ping socket — it asks of an
//! [`Outside`], naming the flow by a [`FlowId`]. The real daemon answers
//! with non-blocking sockets in its own network namespace; the simulator
//! with a simulated host stack. Readiness flows back the other way: the
//! owner of the sockets tells the gateway which flow became readable or
//! writable ([`crate::Gateway::ready`]), and the gateway then reads or
//! writes exactly as much as its buffers take, straight from or into its
//! TCP rings, so a byte is copied once on each side.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// One flow between the gateway and its outside: a relayed TCP
/// connection, a UDP mapping, a ping mapping, or a published UDP port.
/// Ids are never reused in a gateway's life, so a late readiness report
/// for a closed flow cannot reach a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FlowId(pub u64);

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flow#{}", self.0)
    }
}

/// What a non-blocking read from the outside gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes (never zero).
    Data(usize),
    /// Nothing now; the outside reports the flow readable again later.
    WouldBlock,
    /// The peer closed its sending side.
    Eof,
    /// The connection failed (reset, timed out).
    Failed,
}

/// What a non-blocking write to the outside gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// This many bytes were taken (never zero).
    Wrote(usize),
    /// No room now; the outside reports the flow writable again later.
    WouldBlock,
    /// The connection failed.
    Failed,
}

/// Why the outside could not open or use a socket for a flow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutsideError {
    /// The host refused at once (no route, address family not available,
    /// connection refused before it started).
    #[error("refused by the host: {0}")]
    Refused(String),
    /// The host has no descriptors or memory left for another socket.
    #[error("the host is out of sockets: {0}")]
    Exhausted(String),
    /// This kind of flow cannot work here (ping without `ping_group_range`
    /// and without raw sockets).
    #[error("not available here: {0}")]
    Unavailable(String),
}

/// What the outside reported about a flow's socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Data (or EOF, or an error) can be read.
    pub readable: bool,
    /// Bytes can be written; for a connecting TCP flow, the connect ended
    /// (check `error` for how).
    pub writable: bool,
    /// The socket failed (a refused or timed-out connect, a reset).
    pub error: bool,
}

/// The host side of the gateway's flows. Every method is non-blocking.
pub trait Outside {
    /// Starts a TCP connection to `to` for `flow`. Completion is reported
    /// as the flow becoming writable (or failing).
    fn tcp_connect(&mut self, flow: FlowId, to: SocketAddr) -> Result<(), OutsideError>;

    /// Reads from a connected TCP flow into `buf`.
    fn tcp_read(&mut self, flow: FlowId, buf: &mut [u8]) -> ReadOutcome;

    /// Writes to a connected TCP flow. A flow whose connection is not
    /// established yet (an accepted one still finishing its handshake)
    /// gives [`WriteOutcome::WouldBlock`]; [`WriteOutcome::Failed`] resets
    /// the flow.
    fn tcp_write(&mut self, flow: FlowId, data: &[u8]) -> WriteOutcome;

    /// Ends the sending side of a TCP flow (the container sent its FIN).
    fn tcp_shutdown(&mut self, flow: FlowId);

    /// Opens an unconnected UDP socket for `flow` on an ephemeral port.
    fn udp_open(&mut self, flow: FlowId, ipv6: bool) -> Result<(), OutsideError>;

    /// Sends one datagram from `flow`'s socket (a mapping or a published
    /// port) to `to`.
    fn udp_send(&mut self, flow: FlowId, to: SocketAddr, data: &[u8]) -> Result<(), OutsideError>;

    /// Receives one datagram on `flow`'s socket: its length and sender.
    fn udp_recv(&mut self, flow: FlowId, buf: &mut [u8]) -> Option<(usize, SocketAddr)>;

    /// Opens a socket that sends ICMP echo requests for `flow`.
    fn ping_open(&mut self, flow: FlowId, ipv6: bool) -> Result<(), OutsideError>;

    /// Sends one echo request with this sequence number and payload; the
    /// outside picks the identifier on the wire.
    fn ping_send(
        &mut self,
        flow: FlowId,
        to: IpAddr,
        seq: u16,
        data: &[u8],
    ) -> Result<(), OutsideError>;

    /// Receives one echo reply for `flow`: payload length, sender, and
    /// sequence number.
    fn ping_recv(&mut self, flow: FlowId, buf: &mut [u8]) -> Option<(usize, IpAddr, u16)>;

    /// Closes whatever socket `flow` has. Also called for flows whose
    /// connect never finished.
    fn close(&mut self, flow: FlowId);
}
