//! Simulated containers: one smoltcp interface per network interface,
//! configured from the controller's plan (MAC, addresses, default route via
//! the gateway, MTU) exactly as real mode configures a TAP in a namespace,
//! and driven through our own `phy::Device` whose queues the world fills
//! and drains.
//!
//! Memory is lazy: an interface has no sockets until an application needs
//! one, and a socket's buffers go away with the application.

use crate::apps::AppId;
use crate::frame::Frame;
use crate::link::LinkId;
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    HardwareAddress, IpAddress, IpCidr,
};
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;
use switchyard_switch::controller::model::EndpointSpec;
use switchyard_switch::driver::InterfacePlan;
use switchyard_switch::{Instant, MacAddr};

/// How long smoltcp keeps a neighbour (its `ENTRY_LIFETIME`); the shadow
/// ARP table mirrors it.
pub(crate) const ARP_LIFETIME: Duration = Duration::from_secs(60);

/// Converts virtual time to smoltcp's (microseconds).
#[inline]
pub(crate) fn smol_now(now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros((now.as_nanos() / 1_000) as i64)
}

/// Converts smoltcp time back to virtual time.
#[inline]
pub(crate) fn from_smol(t: smoltcp::time::Instant) -> Instant {
    Instant::from_nanos((t.total_micros().max(0) as u64).saturating_mul(1_000))
}

/// The device smoltcp polls: frames the world delivered wait in `rx`;
/// frames smoltcp sends collect in `tx` until the world takes them.
#[derive(Debug, Default)]
pub(crate) struct SimDevice {
    pub rx: VecDeque<Frame>,
    pub tx: Vec<Vec<u8>>,
    /// Largest Ethernet frame without FCS (IP MTU + 14).
    pub frame_mtu: usize,
}

/// Receive token: lends a delivered frame's bytes.
pub(crate) struct RxTok(Frame);

/// Transmit token: collects one frame into the device's queue.
pub(crate) struct TxTok<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for RxTok {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.0.bytes())
    }
}

impl phy::TxToken for TxTok<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.push(buf);
        r
    }
}

impl Device for SimDevice {
    type RxToken<'a> = RxTok;
    type TxToken<'a> = TxTok<'a>;

    fn receive(
        &mut self,
        _timestamp: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxTok(frame), TxTok(&mut self.tx)))
    }

    fn transmit(&mut self, _timestamp: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(TxTok(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.frame_mtu;
        caps
    }
}

/// A smoltcp interface with its sockets and device.
pub(crate) struct Stack {
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    pub device: SimDevice,
}

impl Stack {
    /// An interface configured from the controller's plan.
    pub(crate) fn new(plan: &InterfacePlan, seed: u64, now: Instant) -> Stack {
        let mut device = SimDevice {
            rx: VecDeque::new(),
            tx: Vec::new(),
            frame_mtu: plan.mtu as usize + 14,
        };
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(plan.mac.0)));
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut device, smol_now(now));
        iface.update_ip_addrs(|addrs| {
            if let Some(v4) = plan.ipv4 {
                let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(v4.ip()), v4.prefix()));
            }
            if let Some(v6) = plan.ipv6 {
                let _ = addrs.push(IpCidr::new(IpAddress::Ipv6(v6.ip()), v6.prefix()));
            }
        });
        let mut stack = Stack {
            iface,
            sockets: SocketSet::new(Vec::new()),
            device,
        };
        stack.set_default_route(plan);
        stack
    }

    /// Installs (or removes) the default routes the plan asks for.
    pub(crate) fn set_default_route(&mut self, plan: &InterfacePlan) {
        let routes = self.iface.routes_mut();
        routes.remove_default_ipv4_route();
        routes.remove_default_ipv6_route();
        if plan.default_route {
            if let Some(gw) = plan.gateway4 {
                let _ = routes.add_default_ipv4_route(gw);
            }
            if let Some(gw) = plan.gateway6 {
                let _ = routes.add_default_ipv6_route(gw);
            }
        }
    }
}

/// One entry of a container's ARP cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ArpEntry {
    pub mac: MacAddr,
    pub expires: Instant,
}

/// One network interface of a container.
pub(crate) struct Nic {
    pub plan: InterfacePlan,
    pub endpoint_id: String,
    pub network_name: String,
    pub link: LinkId,
    /// `None` for a raw container: frames are counted, not processed.
    pub stack: Option<Box<Stack>>,
    /// What smoltcp's neighbour cache holds (it has no public reader):
    /// filled by the same rule, from ARP packets aimed at us.
    pub arp: BTreeMap<Ipv4Addr, ArpEntry>,
    pub rx_frames: u64,
    pub tx_frames: u64,
}

impl Nic {
    /// Mirrors smoltcp's neighbour-cache fill for a frame about to be
    /// handed to the stack.
    pub(crate) fn snoop_arp(&mut self, frame: &[u8], now: Instant) {
        let Some(v4) = self.plan.ipv4 else { return };
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        if eth.ethertype() != EthernetProtocol::Arp {
            return;
        }
        let Ok(pkt) = ArpPacket::new_checked(eth.payload()) else {
            return;
        };
        let Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = ArpRepr::parse(&pkt)
        else {
            return;
        };
        if target_protocol_addr != v4.ip()
            || matches!(operation, ArpOperation::Unknown(_))
            || !source_hardware_addr.is_unicast()
            || source_protocol_addr.is_broadcast()
            || source_protocol_addr.is_multicast()
            || source_protocol_addr.is_unspecified()
            || !v4.contains(source_protocol_addr)
        {
            return;
        }
        self.arp.insert(
            source_protocol_addr,
            ArpEntry {
                mac: MacAddr(source_hardware_addr.0),
                expires: now + ARP_LIFETIME,
            },
        );
    }
}

/// What a container asked to be connected to, kept so a restart can
/// reconnect it.
#[derive(Clone, Debug)]
pub(crate) struct Wanted {
    pub network: String,
    pub spec: EndpointSpec,
}

/// A role an application plays in a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

/// A simulated container.
pub(crate) struct Container {
    pub name: String,
    pub host: u32,
    pub sandbox_id: Option<String>,
    pub up: bool,
    pub raw: bool,
    pub wanted: Vec<Wanted>,
    pub nics: Vec<Nic>,
    pub apps: Vec<(AppId, Role)>,
    pub next_step: Option<Instant>,
    pub next_ephemeral: u16,
    pub lo_capture: Option<u32>,
    /// Incremented on every crash, so events for an older life are ignored.
    pub life: u32,
}

impl Container {
    /// The NIC whose link is `link`.
    pub(crate) fn nic_by_link(&mut self, link: LinkId) -> Option<&mut Nic> {
        self.nics.iter_mut().find(|n| n.link == link)
    }

    /// The index of the interface a packet to `dst` leaves from: the one
    /// whose subnet holds it, else the one with the default route, else the
    /// first with an address.
    pub(crate) fn route(&self, dst: Ipv4Addr) -> Option<usize> {
        self.nics
            .iter()
            .position(|n| n.plan.ipv4.is_some_and(|v4| v4.contains(dst)))
            .or_else(|| self.nics.iter().position(|n| n.plan.default_route))
            .or_else(|| self.nics.iter().position(|n| n.plan.ipv4.is_some()))
    }

    /// A fresh local port for a client socket.
    pub(crate) fn ephemeral_port(&mut self) -> u16 {
        let p = self.next_ephemeral;
        self.next_ephemeral = if p >= 65_000 { 49_152 } else { p + 1 };
        p
    }
}
