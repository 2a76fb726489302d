//! Realising an [`InterfacePlan`] on a real interface: the last step after
//! the namespace helper created the TAP.

use super::error::Result;
use super::netlink::{IpFamily, Netlink};
use ipnetwork::IpNetwork;
use std::net::IpAddr;
use switchyard_switch::driver::InterfacePlan;

/// Transmit queue length given to sandbox interfaces. The TAP's queue holds
/// what the container has sent and the daemon has not read yet, counted in
/// packets whatever their size. The tun default (500) drops bursts as soon
/// as the daemon is descheduled for a moment; 10 000 packets hold a whole
/// default TCP send window (4 MiB) of 1500-byte frames with room to spare,
/// and with 64 KiB GSO frames never limit a flow before the socket buffers
/// do. Memory is bounded by those socket buffers, not by this number.
pub const SANDBOX_TXQUEUELEN: u32 = 10_000;

/// Configures interface `plan.ifname` (already present in the namespace the
/// netlink socket belongs to): MAC, MTU, txqueuelen, addresses, up, and the
/// default route(s) via the gateway(s) when `plan.default_route`.
///
/// Re-applying the same plan is harmless (addresses already present are
/// kept, default routes replaced), so a restarted daemon can call it on a
/// re-attached persistent TAP.
pub fn configure_interface(netlink: &Netlink, plan: &InterfacePlan) -> Result<()> {
    let index = netlink.link_index(&plan.ifname)?;
    netlink.set_link_mac(index, plan.mac)?;
    netlink.set_link_mtu(index, plan.mtu)?;
    netlink.set_link_txqlen(index, SANDBOX_TXQUEUELEN)?;
    let present = netlink.list_addresses(index)?;
    let wanted: Vec<IpNetwork> = plan
        .ipv4
        .map(IpNetwork::V4)
        .into_iter()
        .chain(plan.ipv6.map(IpNetwork::V6))
        .collect();
    // Reconcile: a re-attached persistent TAP may still carry an address
    // from an endpoint that left while the daemon could not clean up. Only
    // the kernel's own IPv6 link-local address is left alone.
    for addr in &present {
        let link_local =
            matches!(addr, IpNetwork::V6(v6) if v6.ip().segments()[0] & 0xffc0 == 0xfe80);
        if !wanted.contains(addr) && !link_local {
            netlink.del_address(index, *addr)?;
        }
    }
    for addr in wanted {
        if !present.contains(&addr) {
            netlink.add_address(index, addr)?;
        }
    }
    netlink.set_link_up(index)?;
    if plan.default_route {
        if let Some(gw) = plan.gateway4 {
            netlink.replace_default_route(IpAddr::V4(gw), index)?;
        }
        if let Some(gw) = plan.gateway6 {
            netlink.replace_default_route(IpAddr::V6(gw), index)?;
        }
    }
    Ok(())
}

/// Removes the default routes that go out of `plan.ifname` (when the
/// sandbox's default route moves to another endpoint). Routes through other
/// interfaces are left alone.
pub fn remove_default_routes(netlink: &Netlink, plan: &InterfacePlan) -> Result<()> {
    let index = netlink.link_index(&plan.ifname)?;
    for route in netlink.list_default_routes()? {
        if route.index == index {
            let family = match route.gateway {
                Some(IpAddr::V6(_)) => IpFamily::V6,
                _ => IpFamily::V4,
            };
            netlink.del_default_route(family)?;
        }
    }
    Ok(())
}
