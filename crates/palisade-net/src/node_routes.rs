//! Routes between nodes (host-gw): on each node, a route to every other node's pod CIDRs via
//! that node's address. Level-triggered: `sync_node_routes` makes the routes Palisade owns
//! (marked with its own route protocol number) exactly the desired ones, replacing what
//! differs and removing the rest, and never touches a route it does not own. Nodes must
//! share a subnet: a gateway on no subnet of this node is reported, not routed to (the
//! node's default route may still reach it, as in the lab, whose underlay routes pod CIDRs).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::error::NetError;
use crate::ops::with_netlink;

/// The route protocol number that marks Palisade's node routes (`ip route show proto 77`);
/// numbers above 4 are free for routing daemons.
pub const ROUTE_PROTOCOL: u8 = 77;

/// One route to another node's pod CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeRoute {
    pub destination: IpNet,
    pub gateway: IpAddr,
}

impl std::fmt::Display for NodeRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} via {}", self.destination, self.gateway)
    }
}

/// What a sync changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RouteChanges {
    pub added: Vec<NodeRoute>,
    pub removed: Vec<NodeRoute>,
    /// Routes whose gateway is on no subnet of this node (the kernel refuses them): that
    /// node's pods are reached through this node's default route, if at all.
    pub off_link: Vec<NodeRoute>,
}

/// Whether the kernel refused a route because its gateway is not on a connected subnet.
fn gateway_off_link(error: &rtnetlink::Error) -> bool {
    use nix::errno::Errno;
    matches!(error, rtnetlink::Error::NetlinkError(e) if [Errno::ENETUNREACH, Errno::EHOSTUNREACH].iter().any(|code| e.raw_code() == -(*code as i32)))
}

fn message(route: &NodeRoute) -> Result<RouteMessage, NetError> {
    let protocol = RouteProtocol::Other(ROUTE_PROTOCOL);
    match (route.destination, route.gateway) {
        (IpNet::V4(d), IpAddr::V4(g)) => Ok(RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(d.network(), d.prefix_len()).gateway(g).protocol(protocol).build()),
        (IpNet::V6(d), IpAddr::V6(g)) => Ok(RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(d.network(), d.prefix_len()).gateway(g).protocol(protocol).build()),
        _ => Err(NetError::Io { what: format!("the route {route}"), source: std::io::Error::other("destination and gateway are of different families") }),
    }
}

fn address(value: &RouteAddress) -> Option<IpAddr> {
    match value {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// The route a kernel message describes, if it is one of Palisade's node routes.
fn owned(message: &RouteMessage) -> Option<NodeRoute> {
    if message.header.protocol != RouteProtocol::Other(ROUTE_PROTOCOL) {
        return None;
    }
    let mut destination = None;
    let mut gateway = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(a) => destination = address(a),
            RouteAttribute::Gateway(a) => gateway = address(a),
            _ => {}
        }
    }
    Some(NodeRoute { destination: IpNet::new(destination?, message.header.destination_prefix_length).ok()?, gateway: gateway? })
}

async fn owned_routes(handle: &Handle) -> Result<Vec<(NodeRoute, RouteMessage)>, NetError> {
    let mut found = Vec::new();
    for query in [RouteMessageBuilder::<Ipv4Addr>::new().build(), RouteMessageBuilder::<Ipv6Addr>::new().build()] {
        let mut routes = handle.route().get(query).execute();
        while let Some(route) = routes.try_next().await.map_err(NetError::netlink("listing routes"))? {
            if let Some(node_route) = owned(&route) {
                found.push((node_route, route));
            }
        }
    }
    Ok(found)
}

/// Makes Palisade's node routes in the calling thread's namespace exactly `desired`.
pub fn sync_node_routes(desired: &[NodeRoute]) -> Result<RouteChanges, NetError> {
    with_netlink(|handle| async move {
        let existing = owned_routes(&handle).await?;
        let mut changes = RouteChanges::default();
        for (route, message) in &existing {
            if !desired.contains(route) {
                handle.route().del(message.clone()).execute().await.map_err(NetError::netlink(format!("removing the route {route}")))?;
                changes.removed.push(*route);
            }
        }
        for route in desired {
            if existing.iter().any(|(r, _)| r == route) {
                continue;
            }
            // `replace`: a route to the same destination (ours with an old gateway, or one
            // left by hand) becomes ours.
            match handle.route().add(message(route)?).replace().execute().await {
                Ok(()) => changes.added.push(*route),
                Err(error) if gateway_off_link(&error) => changes.off_link.push(*route),
                Err(error) => return Err(NetError::netlink(format!("adding the route {route}"))(error)),
            }
        }
        Ok(changes)
    })
}
