//! The host end of a pod's veth pair is named after the attachment: stable (DEL and GC find
//! it from the container ID alone), at most 15 characters (IFNAMSIZ - 1).

/// `pal` and 12 hex digits of a hash of the container ID and interface name.
pub fn host_interface(container_id: &str, ifname: &str) -> String {
    let hash = format!("{container_id}/{ifname}").bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("pal{:012x}", hash & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_short() {
        let a = host_interface("d2a1f0c8b2e94bc0a7f6e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2", "eth0");
        assert_eq!(a.len(), 15);
        assert_eq!(a, host_interface("d2a1f0c8b2e94bc0a7f6e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2", "eth0"));
        assert_ne!(a, host_interface("d2a1f0c8b2e94bc0a7f6e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2", "net1"));
        assert!(a.starts_with("pal"));
    }
}
