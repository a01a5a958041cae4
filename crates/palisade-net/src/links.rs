//! Links, addresses and routes in the calling thread's namespace: what the lab's underlay
//! (nodes routed to each other) needs beyond the pod wiring in `pod.rs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::link::LinkMessage;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use crate::error::NetError;
use crate::ops::with_netlink;

pub(crate) async fn find_link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, NetError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        // "No such device" comes back as an error for a name filter.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -(nix::errno::Errno::ENODEV as i32) => Ok(None),
        Err(source) => Err(NetError::Netlink { what: format!("looking up {name}"), source }),
    }
}

pub(crate) async fn add_route(handle: &Handle, route: netlink_packet_route::route::RouteMessage, what: &str) -> Result<(), NetError> {
    match handle.route().add(route).execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -(nix::errno::Errno::EEXIST as i32) => Ok(()),
        Err(source) => Err(NetError::Netlink { what: format!("adding {what}"), source }),
    }
}

async fn index_of(handle: &Handle, name: &str) -> Result<u32, NetError> {
    Ok(find_link(handle, name).await?.ok_or_else(|| NetError::NoSuchLink { name: name.to_string(), place: "here".into() })?.header.index)
}

/// Sets a link up.
pub fn link_up(name: &str) -> Result<(), NetError> {
    with_netlink(|handle| async move {
        let index = index_of(&handle, name).await?;
        handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await.map_err(NetError::netlink(format!("setting {name} up")))
    })
}

/// Adds `ip/prefix` to a link (IPv6 without duplicate address detection). Present is fine.
pub fn add_address(name: &str, ip: IpAddr, prefix: u8) -> Result<(), NetError> {
    with_netlink(|handle| async move {
        let index = index_of(&handle, name).await?;
        let mut request = handle.address().add(index, ip, prefix);
        if ip.is_ipv6() {
            request.message_mut().header.flags |= netlink_packet_route::address::AddressHeaderFlags::Nodad;
        }
        match request.execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -(nix::errno::Errno::EEXIST as i32) => Ok(()),
            Err(source) => Err(NetError::Netlink { what: format!("adding {ip}/{prefix} to {name}"), source }),
        }
    })
}

/// Adds a route to `destination/prefix` via `gateway` (a default route with prefix 0).
pub fn add_route_via(destination: IpAddr, prefix: u8, gateway: IpAddr) -> Result<(), NetError> {
    with_netlink(|handle| async move {
        let route = match (destination, gateway) {
            (IpAddr::V4(d), IpAddr::V4(g)) => RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(d, prefix).gateway(g).build(),
            (IpAddr::V6(d), IpAddr::V6(g)) => RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(d, prefix).gateway(g).build(),
            _ => {
                return Err(NetError::Io { what: format!("route to {destination}/{prefix} via {gateway}"), source: std::io::Error::other("destination and gateway are of different families") });
            }
        };
        add_route(&handle, route, &format!("the route to {destination}/{prefix} via {gateway}")).await
    })
}

/// The link's message, if it exists (for tests and checks).
pub fn link(name: &str) -> Result<Option<LinkMessage>, NetError> {
    with_netlink(|handle| async move { find_link(&handle, name).await })
}

/// Names of the links in the calling thread's namespace.
pub fn link_names() -> Result<Vec<String>, NetError> {
    with_netlink(|handle| async move {
        let mut names = Vec::new();
        let mut links = handle.link().get().execute();
        while let Some(link) = links.try_next().await.map_err(NetError::netlink("listing links"))? {
            for attribute in &link.attributes {
                if let netlink_packet_route::link::LinkAttribute::IfName(name) = attribute {
                    names.push(name.clone());
                }
            }
        }
        Ok(names)
    })
}
