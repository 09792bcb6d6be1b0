//! Where destinations may connect: the guard against server-side request forgery (SSRF).
//!
//! A delivery stream's configuration comes from API callers, so a URL in it (an HTTP endpoint
//! destination) must not let a caller make the server reach what only the server can reach:
//! its own loopback services, the private network behind it, a cloud metadata address such as
//! `169.254.169.254`. [`EgressPolicy::resolve`] is the one gate:
//!
//! - the scheme is `https`, or `http` for a host the operator named in `allow_http_hosts`;
//! - the URL carries no user name or password (credentials go in the configured headers);
//! - the host is resolved here, and **every** address it resolves to must be public, unless
//!   the operator allowed the host name or a network containing the address in
//!   `allow_private`. One private answer among public ones refuses the whole URL.
//!
//! Invariant: callers connect only to the [`Destination::addrs`] this returns, never resolve
//! the name again, so a DNS answer that changes between the check and the connection (DNS
//! rebinding) cannot slip a private address past the check.
//!
//! Operator-configured endpoints (buckets mapped to S3 endpoints, Lambda function endpoints in
//! `lakehose.toml`) are trusted and do not pass through here: an API caller can only name a
//! Lambda ARN the operator mapped, never an address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use serde::Deserialize;

/// `[egress]` in `lakehose.toml`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressPolicy {
    /// Host names or IP literals that may be reached over plain `http://`.
    #[serde(default)]
    pub allow_http_hosts: Vec<String>,
    /// Host names, IP addresses or CIDR networks (`10.0.0.0/8`, `fd00::/8`) that may resolve
    /// to private, loopback, link-local or otherwise non-public addresses.
    #[serde(default)]
    pub allow_private: Vec<String>,
}

/// A URL that passed the policy, with the addresses to connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The URL as given (its host still names the server for TLS and the `Host` header).
    pub url: url::Url,
    /// The addresses the host resolved to, all allowed. Connect only to these.
    pub addrs: Vec<SocketAddr>,
}

/// Why a URL is refused. Messages name the rule, so an operator can fix the configuration,
/// but never echo what a private address answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EgressError {
    /// Not a URL, or one without a host.
    #[error("the URL is not valid: {0}")]
    Invalid(String),
    /// `http://` to a host not in `allow_http_hosts`, or another scheme.
    #[error(
        "the URL must use https (plain http is allowed only for hosts listed in [egress] allow_http_hosts)"
    )]
    SchemeNotAllowed,
    /// `https://user:pass@host/`.
    #[error("the URL must not contain a user name or password")]
    Credentials,
    /// The host resolves to an address that is not public and is not allowed.
    #[error(
        "the URL's host {host} resolves to a private, loopback or link-local address; list it in [egress] allow_private to allow it"
    )]
    PrivateAddress {
        /// The host as written in the URL.
        host: String,
    },
    /// The host name did not resolve.
    #[error("the URL's host {host} could not be resolved")]
    Unresolvable {
        /// The host as written in the URL.
        host: String,
    },
}

impl EgressPolicy {
    /// Checks the policy's own entries: every `allow_private` entry that looks like a network
    /// must parse as one.
    pub fn validate(&self) -> Result<(), String> {
        for entry in &self.allow_private {
            if entry.contains('/') && entry.parse::<IpNet>().is_err() {
                return Err(format!(
                    "egress.allow_private: '{entry}' is not a CIDR network"
                ));
            }
        }
        Ok(())
    }

    /// Checks `url` without resolving it: scheme, credentials, and, when the host is an IP
    /// literal, the address. For validating a configuration at `CreateDeliveryStream` time.
    pub fn check_syntax(&self, url: &str) -> Result<url::Url, EgressError> {
        let url = url::Url::parse(url).map_err(|e| EgressError::Invalid(e.to_string()))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(EgressError::SchemeNotAllowed);
        }
        let host = match url.host() {
            Some(host) => host,
            None => return Err(EgressError::Invalid("the URL has no host".into())),
        };
        let host_name = host.to_string();
        match url.scheme() {
            "https" => {}
            "http" if self.http_allowed(&host_name) => {}
            _ => return Err(EgressError::SchemeNotAllowed),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EgressError::Credentials);
        }
        let literal = match host {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = literal {
            self.check_addr(&host_name, ip)?;
        }
        Ok(url)
    }

    /// Checks `url` and resolves its host; every address must be allowed (module docs).
    pub async fn resolve(&self, url: &str) -> Result<Destination, EgressError> {
        let url = self.check_syntax(url)?;
        let port = url.port_or_known_default().unwrap_or(443);
        let host_name = url.host_str().unwrap_or_default().to_string();
        let addrs: Vec<SocketAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            _ => tokio::net::lookup_host((host_name.as_str(), port))
                .await
                .map_err(|_| EgressError::Unresolvable {
                    host: host_name.clone(),
                })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(EgressError::Unresolvable { host: host_name });
        }
        for addr in &addrs {
            self.check_addr(&host_name, addr.ip())?;
        }
        Ok(Destination { url, addrs })
    }

    fn http_allowed(&self, host: &str) -> bool {
        let host = unbracket(host);
        self.allow_http_hosts
            .iter()
            .any(|h| unbracket(h).eq_ignore_ascii_case(host))
    }

    fn check_addr(&self, host: &str, ip: IpAddr) -> Result<(), EgressError> {
        if is_public(ip) || self.private_allowed(host, ip) {
            Ok(())
        } else {
            Err(EgressError::PrivateAddress {
                host: host.to_string(),
            })
        }
    }

    fn private_allowed(&self, host: &str, ip: IpAddr) -> bool {
        let host = unbracket(host);
        let ip = canonical(ip);
        self.allow_private.iter().any(|entry| {
            let entry = unbracket(entry);
            if let Ok(net) = entry.parse::<IpNet>() {
                net.contains(&ip)
            } else if let Ok(allowed) = entry.parse::<IpAddr>() {
                canonical(allowed) == ip
            } else {
                entry.eq_ignore_ascii_case(host)
            }
        })
    }
}

fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// An IPv4 address carried in IPv6 (`::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) as the IPv4
/// address it reaches; anything else unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// Whether `ip` is a globally routable unicast address: not loopback, private, shared
/// (CGNAT), link-local, unspecified, broadcast, multicast, documentation, benchmarking or
/// reserved; IPv6 likewise (unique-local, link-local, site-local, documentation,
/// discard-only), with IPv4-mapped and NAT64 addresses judged as the IPv4 they reach.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT), 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, 192.0.0/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, 198.18/15
        || a >= 240) // reserved, 240/4
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation, 2001:db8::/32
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only, 100::/64
        || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated) and ::/96
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(http: &[&str], private: &[&str]) -> EgressPolicy {
        EgressPolicy {
            allow_http_hosts: http.iter().map(|s| s.to_string()).collect(),
            allow_private: private.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn private_loopback_link_local_and_reserved_addresses_are_refused() {
        let refused = [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "::127.0.0.1",
        ];
        for ip in refused {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_public(ip), "{ip} must not count as public");
        }
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ];
        for ip in public {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_public(ip), "{ip} must count as public");
        }
    }

    #[test]
    fn only_https_unless_the_host_is_allowed_plain_http() {
        let p = policy(&["collector.internal"], &[]);
        assert_eq!(
            p.check_syntax("http://example.com/x"),
            Err(EgressError::SchemeNotAllowed)
        );
        assert_eq!(
            p.check_syntax("ftp://example.com/x"),
            Err(EgressError::SchemeNotAllowed)
        );
        assert_eq!(
            p.check_syntax("file:///etc/passwd"),
            Err(EgressError::SchemeNotAllowed)
        );
        assert!(p.check_syntax("https://example.com/x").is_ok());
        assert!(p.check_syntax("http://Collector.Internal:8080/x").is_ok());
        assert_eq!(
            p.check_syntax("https://user:pw@example.com/"),
            Err(EgressError::Credentials)
        );
        assert!(matches!(
            p.check_syntax("not a url"),
            Err(EgressError::Invalid(_))
        ));
    }

    #[test]
    fn ip_literals_are_checked_without_resolving() {
        let p = policy(&[], &[]);
        for url in [
            "https://127.0.0.1/",
            "https://[::1]:8443/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::ffff:10.0.0.1]/",
            "https://2130706433/", // 127.0.0.1 as one decimal number
            "https://0x7f.1/",     // 127.0.0.1 in hex shorthand
        ] {
            assert!(
                matches!(p.check_syntax(url), Err(EgressError::PrivateAddress { .. })),
                "{url} must be refused"
            );
        }
        assert!(p.check_syntax("https://93.184.215.14/").is_ok());
    }

    #[test]
    fn allow_private_admits_named_hosts_addresses_and_networks_only() {
        let p = policy(&[], &["10.0.0.0/8", "192.168.1.7", "[fd00::5]"]);
        assert!(p.validate().is_ok());
        assert!(p.check_syntax("https://10.20.30.40/").is_ok());
        assert!(p.check_syntax("https://192.168.1.7/").is_ok());
        assert!(p.check_syntax("https://[fd00::5]/").is_ok());
        assert!(p.check_syntax("https://[::ffff:10.1.1.1]/").is_ok());
        assert!(p.check_syntax("https://192.168.1.8/").is_err());
        assert!(p.check_syntax("https://127.0.0.1/").is_err());
        assert!(policy(&[], &["10.0.0.0/33"]).validate().is_err());
    }

    #[tokio::test]
    async fn every_resolved_address_must_be_allowed() {
        // `localhost` resolves to loopback (from /etc/hosts, no network needed).
        let p = policy(&[], &[]);
        assert_eq!(
            p.resolve("https://localhost:9/").await,
            Err(EgressError::PrivateAddress {
                host: "localhost".into()
            })
        );
        let allowed = policy(&["localhost"], &["localhost"]);
        let d = allowed.resolve("http://localhost:9/x").await.unwrap();
        assert!(!d.addrs.is_empty());
        assert!(
            d.addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 9)
        );
        let by_net = policy(&[], &["127.0.0.0/8", "::1/128"]);
        assert!(by_net.resolve("https://localhost/").await.is_ok());
        assert!(matches!(
            p.resolve("https://no-such-host.invalid/").await,
            Err(EgressError::Unresolvable { .. })
        ));
    }
}
