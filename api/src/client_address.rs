//! Who the client is, for throttling: the TCP peer, unless the peer is one of
//! `AISTORY_TRUSTED_PROXIES`; then the address that proxy reports in `Forwarded` (RFC 7239)
//! or, without it, `X-Forwarded-For`.
//!
//! The list is read from the right (the hop nearest to us): addresses of trusted proxies are
//! skipped, and the first one that is not trusted is the client. What is left of it was
//! written by whoever sent the request and is never believed. A value that is not an address
//! (`unknown`, an obfuscated `_name`) ends the walk at the last trusted hop: the client is
//! then counted as that proxy, never as an address it chose.

use std::future::{Ready, ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{FromRequest, HttpRequest, web};
use ipnet::IpNet;

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
        let trusted = req
            .app_data::<web::Data<AppState>>()
            .map(|state| state.trusted_proxies.as_slice())
            .unwrap_or_default();
        let peer = req.peer_addr().map(|peer| peer.ip());
        ready(Ok(ClientAddress(peer.map(|peer| {
            client_address(peer, req.headers(), trusted).to_string()
        }))))
    }
}

fn is_trusted(address: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|network| network.contains(&address))
}

/// The client's address given the TCP `peer`, the request's headers and the trusted proxies.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops = forwarded_for(headers).or_else(|| x_forwarded_for(headers));
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

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let sent = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=1.2.3.4")]);
        assert_eq!(
            client_address(ip("203.0.113.9"), &sent, &[]),
            ip("203.0.113.9")
        );
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_address(ip("203.0.113.9"), &sent, &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        let sent = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.9")]);
        // The client made up 198.51.100.1; the proxy appended what it saw.
        assert_eq!(
            client_address(ip("10.1.1.1"), &sent, &trusted),
            ip("203.0.113.9")
        );
        // Two proxies of ours: skipped from the right.
        let sent = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.2.2.2")]);
        assert_eq!(
            client_address(ip("10.1.1.1"), &sent, &trusted),
            ip("203.0.113.9")
        );
        // Several header lines are one list.
        let sent = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(
            client_address(ip("10.1.1.1"), &sent, &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn forwarded_is_preferred_and_parsed() {
        let trusted = nets(&["10.0.0.0/8", "fd00::/8"]);
        let sent = headers(&[
            (
                "forwarded",
                r#"for=198.51.100.1;proto=https, For="[2001:db8::7]:4711""#,
            ),
            ("x-forwarded-for", "192.0.2.1"),
        ]);
        assert_eq!(
            client_address(ip("fd00::1"), &sent, &trusted),
            ip("2001:db8::7")
        );
        let sent = headers(&[("forwarded", "for=203.0.113.9:1234;by=10.0.0.1")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &sent, &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn what_is_not_an_address_stops_at_the_last_trusted_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        let sent = headers(&[("forwarded", "for=unknown, for=10.3.3.3")]);
        assert_eq!(
            client_address(ip("10.1.1.1"), &sent, &trusted),
            ip("10.3.3.3")
        );
        let sent = headers(&[("x-forwarded-for", "_hidden")]);
        assert_eq!(
            client_address(ip("10.1.1.1"), &sent, &trusted),
            ip("10.1.1.1")
        );
        // No header at all: the proxy itself.
        assert_eq!(
            client_address(ip("10.1.1.1"), &HeaderMap::new(), &trusted),
            ip("10.1.1.1")
        );
        // IPv4 in IPv6 clothing is the IPv4 address.
        assert_eq!(
            client_address(ip("::ffff:10.1.1.1"), &HeaderMap::new(), &trusted),
            ip("10.1.1.1")
        );
    }
}
