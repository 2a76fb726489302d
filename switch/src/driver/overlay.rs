//! The `overlay` driver: one L2 network across every host that shares the
//! store. Each host's part of the network is a segment of its own switch;
//! the parts are joined by VXLAN tunnels (RFC 7348), one switch port per
//! (VNI, peer VTEP), all in one horizon group so a flood that came out of
//! one tunnel never goes into another (in a full mesh every VTEP already
//! got its own copy). The controller knows every endpoint of the network,
//! on every host, from the shared store, so tunnels and remote stations are
//! programmed, never learnt by flooding across the underlay.
//!
//! An overlay network reaches only itself: it has no gateway to the
//! outside, its endpoints never take their sandbox's default route, and a
//! container that needs the outside joins a bridge network too — what
//! Docker does with `docker_gwbridge`, done by the user.
//!
//! Options: `-o vni=N` (or Docker's
//! `com.docker.network.driver.overlay.vxlanid_list=N`, one VNI) picks the
//! VNI, otherwise the controller takes the lowest free one from
//! [`FIRST_AUTO_VNI`]; `-o mtu=N` (or `com.docker.network.driver.mtu`)
//! overrides the interface MTU, which is otherwise the underlay's minus
//! VXLAN's overhead, so nothing is fragmented. `encrypted` is refused:
//! there is no IPsec in this data plane.

use super::{
    mtu_option, peer_trunk_port, sandbox_interface_port, BackendPlan, Driver, DriverCapabilities,
    PeerHost, PeerVia, PortPlan, MTU_OPTION,
};
use crate::controller::model::{Endpoint, Network, NetworkSpec, Scope};
use crate::controller::{shown, ControllerError};
use crate::port::{HorizonGroup, SegmentId};
use crate::vxlan;

/// The lowest VNI the controller hands out by itself (Docker's overlay
/// starts at 4096 too, leaving the low ones to users and VLAN mappings).
pub const FIRST_AUTO_VNI: u32 = 4096;

/// The IANA port of VXLAN, the daemon's default.
pub const DEFAULT_VXLAN_PORT: u16 = 4789;

/// The option that names the VNI, and Docker's spelling of it.
const VNI_OPTIONS: [&str; 2] = ["vni", "com.docker.network.driver.overlay.vxlanid_list"];

/// The overlay driver, for a host whose underlay has the given MTU.
#[derive(Clone, Copy, Debug)]
pub struct OverlayDriver {
    /// The interface MTU of overlay endpoints unless `-o mtu` says
    /// otherwise: the underlay's minus VXLAN's overhead.
    default_mtu: u32,
}

impl OverlayDriver {
    /// A driver for an underlay of `underlay_mtu` (IPv6 when
    /// `ipv6_underlay`, whose header is 20 bytes longer).
    pub fn new(underlay_mtu: u32, ipv6_underlay: bool) -> OverlayDriver {
        OverlayDriver {
            default_mtu: vxlan::overlay_mtu(underlay_mtu, ipv6_underlay),
        }
    }

    /// The MTU endpoints get when the network does not set one.
    pub fn default_mtu(&self) -> u32 {
        self.default_mtu
    }
}

impl Driver for OverlayDriver {
    fn name(&self) -> &'static str {
        "overlay"
    }

    fn capabilities(&self) -> DriverCapabilities {
        DriverCapabilities {
            scope: Scope::Global,
            uses_ipam: true,
            uses_segment: true,
            user_creatable: true,
            exclusive: false,
            routes_out: false,
            global_segment: true,
        }
    }

    fn validate(&self, spec: &NetworkSpec) -> Result<u32, ControllerError> {
        for (key, value) in &spec.options {
            if key == "encrypted" {
                return Err(ControllerError::InvalidOption {
                    option: key.clone(),
                    value: value.clone(),
                    hint: "switchyard's overlay does not encrypt (there is no IPsec in its data \
                           plane); remove -o encrypted, and keep the underlay private"
                        .to_string(),
                });
            }
            if key != MTU_OPTION && key != "mtu" && !VNI_OPTIONS.contains(&key.as_str()) {
                return Err(ControllerError::InvalidOption {
                    option: key.clone(),
                    value: value.clone(),
                    hint: format!(
                        "the overlay driver knows -o vni=N (alias {}) and -o mtu=N (alias \
                         {MTU_OPTION}); remove -o {}",
                        VNI_OPTIONS[1],
                        shown(key)
                    ),
                });
            }
        }
        self.requested_global_segment(spec)?;
        mtu_option(spec, self.default_mtu)
    }

    fn requested_global_segment(&self, spec: &NetworkSpec) -> Result<Option<u32>, ControllerError> {
        let mut asked = None;
        for key in VNI_OPTIONS {
            let Some(value) = spec.options.get(key) else {
                continue;
            };
            let vni = value
                .parse::<u32>()
                .ok()
                .filter(|v| (1..=crate::wire::vxlan::MAX_VNI).contains(v))
                .ok_or_else(|| ControllerError::InvalidOption {
                    option: key.to_string(),
                    value: value.clone(),
                    hint: format!(
                        "give one VNI between 1 and {}, e.g. -o vni=5000",
                        crate::wire::vxlan::MAX_VNI
                    ),
                })?;
            if asked.is_some_and(|a| a != vni) {
                return Err(ControllerError::InvalidOption {
                    option: key.to_string(),
                    value: value.clone(),
                    hint: format!(
                        "-o {} and -o {} name different VNIs; give one",
                        VNI_OPTIONS[0], VNI_OPTIONS[1]
                    ),
                });
            }
            asked = Some(vni);
        }
        Ok(asked)
    }

    fn plan_endpoint_port(
        &self,
        network: &Network,
        segment: Option<SegmentId>,
        endpoint: &Endpoint,
    ) -> Option<PortPlan> {
        sandbox_interface_port(network, segment, endpoint, false)
    }

    /// A tunnel to a peer host that has endpoints on the network: a trunk
    /// port (many stations behind it) in the network's horizon group.
    fn plan_peer_ports(
        &self,
        network: &Network,
        segment: Option<SegmentId>,
        peer: &PeerHost,
    ) -> Vec<PortPlan> {
        let (Some(segment), Some(vni), PeerVia::Underlay(remote)) =
            (segment, network.global_segment, &peer.via)
        else {
            return Vec::new();
        };
        vec![peer_trunk_port(
            network,
            segment,
            peer,
            format!("vxlan:{vni}:{remote}"),
            Some(HorizonGroup(segment.0)),
            BackendPlan::Tunnel {
                vni,
                remote: *remote,
            },
        )]
    }
}
