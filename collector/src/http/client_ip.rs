//! Which address is the client's. Pure. The peer address, unless the peer is a trusted
//! proxy: then the right-most `X-Forwarded-For` (or `Forwarded: for=`) entry that is not
//! itself a trusted proxy, since entries left of it could have been forged by the client.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = store::pseudonym::canonical(peer);
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let forwarded_for: Vec<&str> =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).collect();
    let entries: Vec<&str> = if forwarded_for.is_empty() {
        headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    key.eq_ignore_ascii_case("for").then_some(value)
                })
            })
            .collect()
    } else {
        forwarded_for
    };
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(ip) = parse_entry(entry) else { break };
        client = ip;
        if !is_trusted(ip, trusted) {
            break;
        }
    }
    client
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// `203.0.113.7`, `203.0.113.7:443`, `"[2001:db8::1]:443"`, `2001:db8::1`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim().trim_matches('"');
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| entry.strip_prefix('[')?.split(']').next()?.parse().ok())
        .map(store::pseudonym::canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(peer: &str, headers: &[(&'static str, &str)], expected: &str) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, v.parse().unwrap());
        }
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        assert_eq!(
            client_ip(peer.parse().unwrap(), &map, &trusted),
            expected.parse::<IpAddr>().unwrap(),
            "{headers:?}"
        );
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        check("198.51.100.1", &[("x-forwarded-for", "203.0.113.9")], "198.51.100.1");
    }

    #[test]
    fn trusted_proxy_forwards_the_client() {
        check("10.0.0.2", &[("x-forwarded-for", "203.0.113.9")], "203.0.113.9");
        check("10.0.0.2", &[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.1.1")], "203.0.113.9");
        check("10.0.0.2", &[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "203.0.113.9:5555")], "203.0.113.9");
        check("::1", &[("forwarded", "for=\"[2001:db8::7]:443\";proto=https")], "2001:db8::7");
        check("10.0.0.2", &[("forwarded", "for=192.0.2.60;proto=http, for=10.0.0.9")], "192.0.2.60");
    }

    #[test]
    fn garbage_stops_at_the_last_trustworthy_hop() {
        check("10.0.0.2", &[("x-forwarded-for", "garbage")], "10.0.0.2");
        check("10.0.0.2", &[], "10.0.0.2");
        check("::ffff:198.51.100.1", &[], "198.51.100.1");
    }
}
