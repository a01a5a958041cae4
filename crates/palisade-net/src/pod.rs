//! The operations the CNI plugin needs: create a pod's veth pair, configure both ends, read
//! them back for CHECK, delete them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::neighbour::NeighbourFlags;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteScope};
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::error::NetError;
use crate::links::{add_route, find_link};
use crate::ops::{in_namespace, open_namespace, with_netlink};
use crate::sysctl::write_sysctl;
use crate::{GATEWAY_V4, GATEWAY_V6};

/// An interface as the CNI result reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    pub mac: String,
    pub index: u32,
}

/// What `create_veth` made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSide {
    pub host: LinkInfo,
    pub pod: LinkInfo,
}

/// The pod's interface as CHECK finds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodState {
    pub up: bool,
    pub addresses: Vec<IpAddr>,
    /// Default route gateways found (169.254.1.1 / fe80::1 when configured by Palisade).
    pub default_gateways: Vec<IpAddr>,
}

/// A pod interface to configure.
#[derive(Clone, Debug)]
pub struct PodInterface<'a> {
    pub netns: &'a Path,
    pub name: &'a str,
    pub addresses: &'a [IpAddr],
    pub mtu: u32,
}

fn mac_of(message: &LinkMessage) -> String {
    message
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(bytes) => Some(bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")),
            _ => None,
        })
        .unwrap_or_default()
}

fn info(message: &LinkMessage, name: &str) -> LinkInfo {
    LinkInfo { name: name.to_string(), mac: mac_of(message), index: message.header.index }
}

/// Creates a veth pair: `host` in the calling thread's namespace, its peer created directly
/// inside the namespace at `netns` as `pod_name`. Both ends get `mtu`.
pub fn create_veth(netns: &Path, host: &str, pod_name: &str, mtu: u32) -> Result<HostSide, NetError> {
    let ns = open_namespace(netns)?;
    let host_side = with_netlink(|handle| async move {
        let peer = LinkMessageBuilder::<LinkUnspec>::new().name(pod_name.to_string()).mtu(mtu).setns_by_fd(ns.as_raw_fd()).build();
        let message = LinkVeth::new(host, pod_name).mtu(mtu).set_info_data(InfoData::Veth(InfoVeth::Peer(peer))).build();
        handle.link().add(message).execute().await.map_err(NetError::netlink(format!("creating veth {host} (peer {pod_name} in {})", netns.display())))?;
        let link = find_link(&handle, host).await?.ok_or_else(|| NetError::NoSuchLink { name: host.to_string(), place: "after creating it".into() })?;
        Ok(info(&link, host))
    })?;
    let pod_side = in_namespace(netns, |handle| async move {
        let link = find_link(&handle, pod_name).await?.ok_or_else(|| NetError::NoSuchLink { name: pod_name.to_string(), place: format!("in {}", netns.display()) })?;
        Ok(info(&link, pod_name))
    })?;
    Ok(HostSide { host: host_side, pod: pod_side })
}

/// Inside the pod: `lo` and the interface up, its addresses (/32, /128), and default routes
/// via the link-local gateways.
pub fn configure_pod(pod: &PodInterface<'_>) -> Result<(), NetError> {
    in_namespace(pod.netns, |handle| async move {
        if let Some(lo) = find_link(&handle, "lo").await? {
            handle.link().set(LinkUnspec::new_with_index(lo.header.index).up().build()).execute().await.map_err(NetError::netlink("setting lo up"))?;
        }
        let link = find_link(&handle, pod.name).await?.ok_or_else(|| NetError::NoSuchLink { name: pod.name.to_string(), place: format!("in {}", pod.netns.display()) })?;
        let index = link.header.index;
        handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await.map_err(NetError::netlink(format!("setting {} up", pod.name)))?;
        for ip in pod.addresses {
            let prefix = if ip.is_ipv4() { 32 } else { 128 };
            let mut request = handle.address().add(index, *ip, prefix);
            if ip.is_ipv6() {
                // No duplicate address detection: the address is unique by allocation, and
                // DAD would delay the pod's first packets.
                request.message_mut().header.flags |= netlink_packet_route::address::AddressHeaderFlags::Nodad;
            }
            match request.execute().await {
                Ok(()) => {}
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -(nix::errno::Errno::EEXIST as i32) => {}
                Err(source) => return Err(NetError::Netlink { what: format!("adding {ip}/{prefix} to {}", pod.name), source }),
            }
        }
        if pod.addresses.iter().any(IpAddr::is_ipv4) {
            let gateway = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(GATEWAY_V4, 32).output_interface(index).scope(RouteScope::Link).build();
            add_route(&handle, gateway, "the route to 169.254.1.1").await?;
            let default = RouteMessageBuilder::<Ipv4Addr>::new().gateway(GATEWAY_V4).output_interface(index).build();
            add_route(&handle, default, "the IPv4 default route").await?;
        }
        if pod.addresses.iter().any(IpAddr::is_ipv6) {
            let default = RouteMessageBuilder::<Ipv6Addr>::new().gateway(GATEWAY_V6).output_interface(index).build();
            add_route(&handle, default, "the IPv6 default route").await?;
        }
        Ok(())
    })
}

/// On the host: the host end up, a route per pod address through it, proxy ARP (and proxy
/// NDP for fe80::1) on it, and forwarding on. Touches nothing else.
pub fn configure_host(host: &str, addresses: &[IpAddr]) -> Result<(), NetError> {
    if addresses.iter().any(IpAddr::is_ipv6) {
        // Before the link comes up: without duplicate address detection the host end's
        // link-local address is usable at once, so the node can solicit the pod's address
        // and answer for fe80::1 from the first packet rather than after DAD's ~1-2 s.
        write_sysctl(&format!("net.ipv6.conf.{host}.accept_dad"), "0")?;
    }
    with_netlink(|handle| async move {
        let link = find_link(&handle, host).await?.ok_or_else(|| NetError::NoSuchLink { name: host.to_string(), place: "on the host".into() })?;
        let index = link.header.index;
        handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await.map_err(NetError::netlink(format!("setting {host} up")))?;
        for ip in addresses {
            let route = match ip {
                IpAddr::V4(v4) => RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(*v4, 32).output_interface(index).scope(RouteScope::Link).build(),
                IpAddr::V6(v6) => RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(*v6, 128).output_interface(index).build(),
            };
            add_route(&handle, route, &format!("the host route to {ip} via {host}")).await?;
        }
        if addresses.iter().any(IpAddr::is_ipv6) {
            let request = handle.neighbours().add(index, IpAddr::V6(GATEWAY_V6)).flags(NeighbourFlags::Proxy);
            match request.execute().await {
                Ok(()) => {}
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -(nix::errno::Errno::EEXIST as i32) => {}
                Err(source) => return Err(NetError::Netlink { what: format!("adding the proxy NDP entry for fe80::1 on {host}"), source }),
            }
        }
        Ok(())
    })?;
    if addresses.iter().any(IpAddr::is_ipv4) {
        write_sysctl("net.ipv4.ip_forward", "1")?;
        write_sysctl(&format!("net.ipv4.conf.{host}.proxy_arp"), "1")?;
        // Answer at once rather than after a random delay of up to 0.8 s.
        write_sysctl(&format!("net.ipv4.neigh.{host}.proxy_delay"), "0")?;
    }
    if addresses.iter().any(IpAddr::is_ipv6) {
        write_sysctl("net.ipv6.conf.all.forwarding", "1")?;
        write_sysctl(&format!("net.ipv6.conf.{host}.proxy_ndp"), "1")?;
        write_sysctl(&format!("net.ipv6.neigh.{host}.proxy_delay"), "0")?;
    }
    Ok(())
}

/// Deletes a link (and so its veth peer and the routes through it). `Ok(false)` when there
/// was no such link: deleting is idempotent.
pub fn delete_link(name: &str) -> Result<bool, NetError> {
    with_netlink(|handle| async move {
        let Some(link) = find_link(&handle, name).await? else { return Ok(false) };
        match handle.link().del(link.header.index).execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -(nix::errno::Errno::ENODEV as i32) => Ok(false),
            Err(source) => Err(NetError::Netlink { what: format!("deleting {name}"), source }),
        }
    })
}

/// The host link named `name`, if it exists (with whether it is up).
pub fn host_link(name: &str) -> Result<Option<(LinkInfo, bool)>, NetError> {
    with_netlink(|handle| async move {
        Ok(find_link(&handle, name).await?.map(|link| {
            let up = link.header.flags.contains(LinkFlags::Up);
            (info(&link, name), up)
        }))
    })
}

/// Whether the pod's namespace has an interface of that name (false if the namespace is gone).
pub fn pod_interface_exists(netns: &Path, name: &str) -> Result<bool, NetError> {
    if !netns.exists() {
        return Ok(false);
    }
    in_namespace(netns, |handle| async move { Ok(find_link(&handle, name).await?.is_some()) })
}

/// The pod interface's name, MAC and index, if it exists.
pub fn pod_link(netns: &Path, name: &str) -> Result<Option<LinkInfo>, NetError> {
    in_namespace(netns, |handle| async move { Ok(find_link(&handle, name).await?.map(|link| info(&link, name))) })
}

/// Reads the pod interface's state, for CHECK.
pub fn check_pod(netns: &Path, name: &str) -> Result<Option<PodState>, NetError> {
    in_namespace(netns, |handle| async move {
        let Some(link) = find_link(&handle, name).await? else { return Ok(None) };
        let index = link.header.index;
        let mut state = PodState { up: link.header.flags.contains(LinkFlags::Up), ..Default::default() };
        let mut addresses = handle.address().get().set_link_index_filter(index).execute();
        while let Some(message) = addresses.try_next().await.map_err(NetError::netlink(format!("listing addresses of {name}")))? {
            for attribute in &message.attributes {
                if let AddressAttribute::Address(ip) = attribute
                    && !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] == 0xfe80)
                {
                    state.addresses.push(*ip);
                }
            }
        }
        for family in [false, true] {
            let query = if family { RouteMessageBuilder::<Ipv6Addr>::new().build() } else { RouteMessageBuilder::<Ipv4Addr>::new().build() };
            let mut routes = handle.route().get(query).execute();
            while let Some(route) = routes.try_next().await.map_err(NetError::netlink(format!("listing routes of {name}")))? {
                if route.header.destination_prefix_length != 0 {
                    continue;
                }
                let through_us = route.attributes.iter().any(|a| matches!(a, RouteAttribute::Oif(i) if *i == index));
                for attribute in &route.attributes {
                    if let (RouteAttribute::Gateway(gateway), true) = (attribute, through_us) {
                        match gateway {
                            RouteAddress::Inet(v4) => state.default_gateways.push(IpAddr::V4(*v4)),
                            RouteAddress::Inet6(v6) => state.default_gateways.push(IpAddr::V6(*v6)),
                            _ => {}
                        }
                    }
                }
            }
        }
        state.addresses.sort();
        state.default_gateways.sort();
        Ok(Some(state))
    })
}
