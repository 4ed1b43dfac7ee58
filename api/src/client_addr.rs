//! The client's address: the one answer every rate limit and the login throttle key on
//! (docs/decisions.md D39). Behind a reverse proxy the TCP peer is the proxy, so the proxy's
//! `Forwarded` (RFC 7239) or `X-Forwarded-For` names the client; but any client can send those
//! headers, so they count only when the peer is a proxy the operator listed as trusted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// An address block, `10.0.0.0/8` or `fd00::/8`; a bare address is a block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => mask4(a, self.prefix) == mask4(n, self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => mask6(a, self.prefix) == mask6(n, self.prefix),
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net = canonical(
            addr.parse::<IpAddr>()
                .map_err(|_| format!("{s:?} is not an address or CIDR block"))?,
        );
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0-{max}"))?,
        };
        Ok(Self { net, prefix })
    }
}

/// A comma-separated list of blocks (the `STRIDELOG_TRUSTED_PROXIES` format); empty is none.
pub fn parse_cidrs(s: &str) -> Result<Vec<Cidr>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect()
}

fn mask4(a: Ipv4Addr, prefix: u8) -> u32 {
    let bits = u32::from(a);
    if prefix == 0 {
        0
    } else {
        bits & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn mask6(a: Ipv6Addr, prefix: u8) -> u128 {
    let bits = u128::from(a);
    if prefix == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(prefix)))
    }
}

/// An IPv4 peer on a dual-stack socket arrives as `::ffff:a.b.c.d`: one client, one key.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the right-most
/// address in the forwarding chain that is not itself a trusted proxy (each proxy appends the
/// address it received from, so everything left of the first untrusted hop may be forged).
/// `None` when the server runs without connect info (requests the server makes to itself).
pub fn client_ip(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let peer = canonical(peer?.ip());
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    // `Forwarded` is the standard; a proxy that sends it is read before `X-Forwarded-For`.
    let chain = forwarded_chain(headers);
    let chain = if chain.is_empty() {
        x_forwarded_for_chain(headers)
    } else {
        chain
    };
    let mut client = peer;
    for hop in chain.iter().rev() {
        match hop {
            // An unparseable or obfuscated hop ("unknown", "_hidden") cannot be checked: the
            // last trusted address is the best the server knows.
            None => break,
            Some(ip) => {
                client = *ip;
                if !is_trusted(*ip) {
                    break;
                }
            }
        }
    }
    Some(client)
}

/// The `for=` addresses of every `Forwarded` element, left to right.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_node(v.trim().trim_matches('"')))
            })
        })
        .collect()
}

fn x_forwarded_for_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| parse_node(hop.trim()))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]`, `[2001:db8::1]:80` or a bare IPv6 address.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    let inner = s.strip_prefix('[')?.split(']').next()?;
    inner
        .parse::<Ipv6Addr>()
        .ok()
        .map(|v6| canonical(IpAddr::V6(v6)))
}

/// The block an address belongs to for registration limits: a /24 for IPv4 and a /56 for
/// IPv6, what one subscriber is typically given, so one subscriber's addresses share a limit.
pub fn block_of(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(a) => format!("{}/24", Ipv4Addr::from(mask4(a, 24))),
        IpAddr::V6(a) => format!("{}/56", Ipv6Addr::from(mask6(a, 56))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn peer(s: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(s.parse().unwrap(), 4000))
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9"),
        ]);
        assert_eq!(client_ip(peer("198.51.100.7"), &h, &[]), ip("198.51.100.7"));
        let trusted = parse_cidrs("10.0.0.0/8").unwrap();
        assert_eq!(
            client_ip(peer("198.51.100.7"), &h, &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_right_most_untrusted_hop() {
        let trusted = parse_cidrs("10.0.0.0/8, 192.168.1.1").unwrap();
        // The client forged the first entry; the proxies appended the rest.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.1.1.1")]);
        assert_eq!(client_ip(peer("10.0.0.2"), &h, &trusted), ip("203.0.113.9"));
        let h = headers(&[(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8::7]:443\";proto=https, for=192.168.1.1",
        )]);
        assert_eq!(
            client_ip(peer("192.168.1.1"), &h, &trusted),
            ip("2001:db8::7")
        );
        // No header: the proxy itself is all the server knows.
        assert_eq!(
            client_ip(peer("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
        let h = headers(&[("x-forwarded-for", "unknown")]);
        assert_eq!(client_ip(peer("10.0.0.2"), &h, &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn blocks_and_cidrs() {
        assert_eq!(block_of("203.0.113.77".parse().unwrap()), "203.0.113.0/24");
        assert_eq!(
            block_of("2001:db8:1:2ff:1::1".parse().unwrap()),
            "2001:db8:1:200::/56"
        );
        assert_eq!(
            block_of("::ffff:203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        let c: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(c.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!c.contains("2001:db9::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
        assert!(parse_cidrs("").unwrap().is_empty());
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
    }
}
