//! Pod networking over netlink (rtnetlink), the side-effect half of the CNI plugin.
//!
//! A routed pod network (no bridge, as Calico builds it): the pod's interface has its /32
//! (and /128) and a default route via a link-local gateway, 169.254.1.1 answered by proxy ARP
//! on the host end and fe80::1 answered by proxy NDP; the host has a route per pod address
//! through the host end of the veth pair.
//!
//! Every call is synchronous: it runs a current-thread tokio runtime for its netlink
//! connection. Work inside a pod's namespace runs on a dedicated thread that enters it, so
//! the calling thread never changes namespace.

mod error;
mod links;
mod netns;
mod node_routes;
mod ops;
mod pod;
mod sysctl;

pub use error::NetError;
pub use links::{add_address, add_route_via, link, link_names, link_up};
pub use netns::{NETNS_RUN_DIR, create_named, delete_named, list_named, netns_path, processes_in, run_in};
pub use node_routes::{NodeRoute, ROUTE_PROTOCOL, RouteChanges, sync_node_routes};
pub use ops::{in_namespace, with_netlink};
pub use pod::{HostSide, LinkInfo, PodInterface, PodState, check_pod, configure_host, configure_pod, create_veth, delete_link, host_link, pod_interface_exists, pod_link};
pub use sysctl::{read_sysctl, write_sysctl};

/// The pod's gateway for IPv4, answered by proxy ARP on the host end.
pub const GATEWAY_V4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 1, 1);
/// The pod's gateway for IPv6, answered by proxy NDP on the host end.
pub const GATEWAY_V6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
