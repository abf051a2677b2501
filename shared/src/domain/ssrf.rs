//! SSRF guard for webhook targets: no private, loopback, link-local, CGNAT, metadata, multicast
//! or reserved addresses, also when hidden in IPv4-mapped or NAT64 IPv6 forms; no 6to4
//! (`2002::/16`) or Teredo (`2001::/32`) addresses at all (both tunnel to an IPv4 address
//! through a relay the guard cannot vet).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("url is not a valid absolute URL")]
    Malformed,
    #[error("url must use https")]
    NotHttps,
    #[error("url must not contain credentials")]
    Credentials,
    #[error("url points at a private, loopback, link-local or otherwise internal address")]
    Forbidden,
    #[error("url host does not resolve")]
    Unresolvable,
    #[error("url host did not resolve in time")]
    DnsTimeout,
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, includes the cloud metadata address
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let seg = ip.segments();
    // NAT64 64:ff9b::/96 embeds an IPv4 address.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        let [a, b] = seg[6].to_be_bytes();
        let [c, d] = seg[7].to_be_bytes();
        return forbidden_v4(Ipv4Addr::new(a, b, c, d));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (AWS metadata fd00:ec2::254)
        || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || seg[0] == 0x2002 // 6to4 2002::/16: a relay forwards to the embedded IPv4
        || (seg[0] == 0x2001 && seg[1] == 0) // Teredo 2001::/32: tunnels to an IPv4 host
        || seg[0..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible ::a.b.c.d (deprecated)
}

pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

/// Checks the parts of a URL that need no DNS: scheme, credentials, and a literal IP host.
/// Returns the host to resolve (`None` for a literal IP, already checked).
pub fn check_url(url: &url::Url, allow_private: bool) -> Result<Option<String>, TargetError> {
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(TargetError::NotHttps),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    match url.host() {
        None => Err(TargetError::Malformed),
        Some(url::Host::Ipv4(ip)) => guard(IpAddr::V4(ip), allow_private).map(|_| None),
        Some(url::Host::Ipv6(ip)) => guard(IpAddr::V6(ip), allow_private).map(|_| None),
        Some(url::Host::Domain(name)) => {
            let lower = name.to_ascii_lowercase();
            if !allow_private && (lower == "localhost" || lower.ends_with(".localhost") || lower.ends_with(".internal"))
            {
                return Err(TargetError::Forbidden);
            }
            Ok(Some(lower))
        }
    }
}

/// Refuses a forbidden address unless private targets are allowed (operator setting).
pub fn guard(ip: IpAddr, allow_private: bool) -> Result<(), TargetError> {
    if !allow_private && is_forbidden(ip) {
        return Err(TargetError::Forbidden);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> bool {
        check_url(&url::Url::parse(text).unwrap(), false).is_err()
    }

    #[test]
    fn internal_targets_are_refused() {
        for url in [
            "https://127.0.0.1/h",
            "https://10.0.0.5/h",
            "https://172.16.3.4/h",
            "https://192.168.1.1/h",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/h",
            "https://0.0.0.0/h",
            "https://[::1]/h",
            "https://[fd00:ec2::254]/h",
            "https://[fe80::1]/h",
            "https://[::ffff:127.0.0.1]/h",
            "https://[::ffff:169.254.169.254]/h",
            "https://[64:ff9b::a00:1]/h",
            "https://[2002:7f00:1::1]/h",                       // 6to4 embedding 127.0.0.1
            "https://[2002:a9fe:a9fe::1]/h",                    // 6to4 embedding 169.254.169.254
            "https://[2002:5db8:d822::1]/h",                    // 6to4 embedding a public address: still a relay hop
            "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/h", // Teredo
            "https://[2001::1]/h",                              // Teredo prefix
            "https://localhost/h",
            "https://metadata.google.internal/h",
            "http://example.com/h",
            "ftp://example.com/h",
            "https://user:pw@example.com/h",
            "https://2130706433/h", // decimal form of 127.0.0.1, normalised by the URL parser
        ] {
            assert!(refused(url), "{url} must be refused");
        }
    }

    #[test]
    fn public_targets_pass_and_private_ones_pass_when_allowed() {
        assert_eq!(
            check_url(&url::Url::parse("https://hooks.example.com/x").unwrap(), false),
            Ok(Some("hooks.example.com".into()))
        );
        assert_eq!(check_url(&url::Url::parse("https://93.184.216.34/x").unwrap(), false), Ok(None));
        assert!(check_url(&url::Url::parse("http://127.0.0.1:9000/x").unwrap(), true).is_ok());
        // Neighbours of the tunnel prefixes are ordinary global addresses.
        for ip in ["2001:4860:4860::8888", "2003::1", "2400:cb00::1"] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip} is global unicast");
        }
    }
}
