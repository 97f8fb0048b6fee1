//! Who the client is, for throttling: the TCP peer, unless the peer is one of
//! `AISTORY_TRUSTED_PROXIES`; then the address that proxy reports in the one header
//! `AISTORY_FORWARDED_HEADER` names (`X-Forwarded-For` by default, or `Forwarded`, RFC 7239).
//! The other header is never read: proxies commonly pass it through from the client as sent.
//!
//! The list is read from the right (the hop nearest to us): addresses of trusted proxies are
//! skipped, and the first one that is not trusted is the client. What is left of it was
//! written by whoever sent the request and is never believed. A value that is not an address
//! (`unknown`, an obfuscated `_name`) ends the walk at the last trusted hop: the client is
//! then counted as that proxy, never as an address it chose.
//!
//! An IPv6 client is counted by its /64 (one customer's network: a single client can pick any
//! of its 2^64 addresses), an IPv4 client by its address.

use std::future::{Ready, ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{FromRequest, HttpRequest, web};
use ipnet::IpNet;
use settings::ForwardedHeader;

use crate::AppState;
use crate::error::ApiError;

/// The client's address as the server trusts it (`None` when the connection has no IP peer).
#[derive(Debug, Clone)]
pub struct ClientAddress(pub Option<String>);

impl ClientAddress {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl FromRequest for ClientAddress {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>();
        let trusted = state
            .map(|state| state.trusted_proxies.as_slice())
            .unwrap_or_default();
        let header = state
            .map(|state| state.forwarded_header)
            .unwrap_or_default();
        let peer = req.peer_addr().map(|peer| peer.ip());
        ready(Ok(ClientAddress(peer.map(|peer| {
            throttle_key(client_address(peer, req.headers(), trusted, header))
        }))))
    }
}

/// What a client is counted as: an IPv4 address, or the /64 of an IPv6 address
/// (`2001:db8:1:2::/64`).
pub fn throttle_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, 64)
            .map(|network| network.trunc().to_string())
            .unwrap_or_else(|_| v6.to_string()),
    }
}

fn is_trusted(address: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|network| network.contains(&address))
}

/// The client's address given the TCP `peer`, the request's headers, the trusted proxies and
/// the header they write.
pub fn client_address(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    header: ForwardedHeader,
) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops = match header {
        ForwardedHeader::Forwarded => forwarded_for(headers),
        ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
    };
    let Some(hops) = hops else {
        return peer;
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(address) => {
                client = *address;
                if !is_trusted(*address, trusted) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// The `for=` values of every `Forwarded` header, in order; `None` for a value that is not an
/// address. `None` overall when there is no `Forwarded` header.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut values = headers.get_all(header::FORWARDED).peekable();
    values.peek()?;
    let mut hops = Vec::new();
    for value in values {
        let Ok(value) = value.to_str() else {
            hops.push(None);
            continue;
        };
        for element in value.split(',') {
            let found = element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| value.trim().trim_matches('"'))
            });
            // An element without `for=` says nothing about this hop's client.
            if let Some(value) = found {
                hops.push(node_address(value));
            }
        }
    }
    Some(hops)
}

/// The entries of every `X-Forwarded-For` header, in order. `None` when there is none.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let name = header::HeaderName::from_static("x-forwarded-for");
    let mut values = headers.get_all(&name).peekable();
    values.peek()?;
    let mut hops = Vec::new();
    for value in values {
        match value.to_str() {
            Ok(value) => hops.extend(value.split(',').map(|item| node_address(item.trim()))),
            Err(_) => hops.push(None),
        }
    }
    Some(hops)
}

/// An address from a node: `192.0.2.7`, `192.0.2.7:4711`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711` or a bare `2001:db8::1`.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Ok(address) = node.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside
            .parse::<IpAddr>()
            .ok()
            .map(|address| address.to_canonical());
    }
    node.parse::<std::net::SocketAddr>()
        .ok()
        .map(|address| address.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    const XFF: ForwardedHeader = ForwardedHeader::XForwardedFor;
    const FWD: ForwardedHeader = ForwardedHeader::Forwarded;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|item| item.parse().unwrap()).collect()
    }

    /// The client as seen from `peer` with `sent` headers.
    fn from(
        peer: &str,
        sent: &[(&str, &str)],
        trusted: &[&str],
        header: ForwardedHeader,
    ) -> IpAddr {
        client_address(ip(peer), &headers(sent), &nets(trusted), header)
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let sent = [("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=1.2.3.4")];
        for header in [XFF, FWD] {
            assert_eq!(from("203.0.113.9", &sent, &[], header), ip("203.0.113.9"));
            assert_eq!(
                from("203.0.113.9", &sent, &["10.0.0.0/8"], header),
                ip("203.0.113.9")
            );
        }
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let trusted = ["10.0.0.0/8"];
        // The client made up 198.51.100.1; the proxy appended what it saw.
        let sent = [("x-forwarded-for", "198.51.100.1, 203.0.113.9")];
        assert_eq!(from("10.1.1.1", &sent, &trusted, XFF), ip("203.0.113.9"));
        // Two proxies of ours: skipped from the right.
        let sent = [("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.2.2.2")];
        assert_eq!(from("10.1.1.1", &sent, &trusted, XFF), ip("203.0.113.9"));
        // Several header lines are one list.
        let sent = [
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(from("10.1.1.1", &sent, &trusted, XFF), ip("203.0.113.9"));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let trusted = ["10.0.0.0/8"];
        // The proxy appends to X-Forwarded-For and passes the client's Forwarded through.
        let sent = [
            ("forwarded", "for=198.51.100.66"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(from("10.1.1.1", &sent, &trusted, XFF), ip("203.0.113.9"));
        let only_forwarded = [("forwarded", "for=198.51.100.66")];
        assert_eq!(
            from("10.1.1.1", &only_forwarded, &trusted, XFF),
            ip("10.1.1.1")
        );
        assert_eq!(
            from("10.1.1.1", &only_forwarded, &trusted, FWD),
            ip("198.51.100.66")
        );
    }

    #[test]
    fn forwarded_is_parsed() {
        let trusted = ["10.0.0.0/8", "fd00::/8"];
        let sent = [(
            "forwarded",
            r#"for=198.51.100.1;proto=https, For="[2001:db8::7]:4711""#,
        )];
        assert_eq!(from("fd00::1", &sent, &trusted, FWD), ip("2001:db8::7"));
        let sent = [("forwarded", "for=203.0.113.9:1234;by=10.0.0.1")];
        assert_eq!(from("10.0.0.1", &sent, &trusted, FWD), ip("203.0.113.9"));
    }

    #[test]
    fn what_is_not_an_address_stops_at_the_last_trusted_hop() {
        let trusted = ["10.0.0.0/8"];
        let sent = [("forwarded", "for=unknown, for=10.3.3.3")];
        assert_eq!(from("10.1.1.1", &sent, &trusted, FWD), ip("10.3.3.3"));
        let sent = [("x-forwarded-for", "_hidden")];
        assert_eq!(from("10.1.1.1", &sent, &trusted, XFF), ip("10.1.1.1"));
        // No header at all: the proxy itself.
        assert_eq!(from("10.1.1.1", &[], &trusted, XFF), ip("10.1.1.1"));
        // IPv4 in IPv6 clothing is the IPv4 address.
        assert_eq!(from("::ffff:10.1.1.1", &[], &trusted, XFF), ip("10.1.1.1"));
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(
            throttle_key(ip("2001:db8:1:2:aaaa::1")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            throttle_key(ip("2001:db8:1:2:bbbb::7")),
            throttle_key(ip("2001:db8:1:2:aaaa::1"))
        );
        assert_eq!(throttle_key(ip("192.0.2.7")), "192.0.2.7");
    }
}
