//! CIDR parsing with the leniency of kube-apiserver's legacy parser
//! (`netutils.ParseCIDRSloppy`): IPv4 octets may carry leading zeros (read as decimal) and
//! host bits may be set; the network is then the masked prefix (edge case 4).

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

pub const CIDR_RULE: &str = "must be a valid CIDR value (e.g. 10.9.8.0/24 or 2001:db8::/64)";
pub const IP_RULE: &str = "must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// Parses an IP address; IPv4 octets may have leading zeros.
pub fn parse_ip_sloppy(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    let octets: Vec<&str> = text.split('.').collect();
    if octets.len() != 4 {
        return None;
    }
    let mut bytes = [0u8; 4];
    for (byte, octet) in bytes.iter_mut().zip(&octets) {
        if octet.is_empty() || octet.len() > 3 || !octet.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *byte = octet.parse().ok()?;
    }
    Some(IpAddr::V4(Ipv4Addr::from(bytes)))
}

/// Parses `addr/prefix` into its masked network.
pub fn parse_cidr_sloppy(text: &str) -> Option<IpNet> {
    let (addr, prefix) = text.split_once('/')?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ip = parse_ip_sloppy(addr)?;
    let net = IpNet::new(ip, prefix.parse().ok()?).ok()?;
    Some(net.trunc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_host_bits() {
        assert_eq!(parse_cidr_sloppy("10.244.1.5/4").unwrap().to_string(), "0.0.0.0/4");
        assert_eq!(parse_cidr_sloppy("192.168.1.7/24").unwrap().to_string(), "192.168.1.0/24");
        assert_eq!(parse_cidr_sloppy("fd00::1/64").unwrap().to_string(), "fd00::/64");
    }

    #[test]
    fn accepts_leading_zeros_as_decimal() {
        assert_eq!(parse_cidr_sloppy("010.001.0.0/16").unwrap().to_string(), "10.1.0.0/16");
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["10.0.0/8", "10.0.0.0", "10.0.0.0/33", "10.0.0.0/", "::/129", "x/8", "10.0.0.256/8", "1.2.3.4/-1"] {
            assert!(parse_cidr_sloppy(bad).is_none(), "{bad} should be rejected");
        }
    }
}
