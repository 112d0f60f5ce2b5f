//! The real client address, through the configured trusted-proxy chain.
//!
//! `X-Forwarded-For` (or, when configured, `Forwarded`) is honoured only when the socket peer is a trusted proxy, and then walked
//! right to left: trusted hops are skipped and the first untrusted hop is the client. A malformed
//! entry makes the address unknown (which resolves to the strictest regime), never a guess.

use std::net::IpAddr;

use ipnet::IpNet;

/// The CIDRs whose `X-Forwarded-For` we believe.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

/// How the client address was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrSource {
    /// The TCP peer itself.
    Peer,
    /// An `X-Forwarded-For` entry added by a trusted proxy.
    ForwardedFor,
    /// A `Forwarded` (RFC 7239) `for=` entry added by a trusted proxy.
    Forwarded,
}

/// The resolved client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr {
    /// `None` when a trusted chain carried a malformed entry.
    pub ip: Option<IpAddr>,
    pub source: AddrSource,
    /// An `X-Forwarded-For` arrived from an untrusted peer and was ignored.
    pub ignored_forwarded_for: bool,
    /// What that ignored chain claimed the client was: its first (leftmost) entry, when it is
    /// an address.
    pub claimed: Option<IpAddr>,
    /// A trusted chain held an entry that is not an IP address.
    pub malformed: bool,
}

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies { nets }
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// Resolves the client from the peer and the `X-Forwarded-For` header values in order.
    pub fn resolve<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a [u8]>,
    ) -> ClientAddr {
        let mut values = forwarded_for.peekable();
        let present = values.peek().is_some();
        self.walk(
            peer,
            present,
            AddrSource::ForwardedFor,
            values
                .rev()
                .flat_map(|v| v.rsplit(|b| *b == b','))
                .map(parse_entry),
        )
    }

    /// Resolves the client from the peer and the RFC 7239 `Forwarded` header values in order:
    /// the `for=` parameter of each element, an IPv4 address or a bracketed IPv6 address,
    /// optionally with a port. `unknown` and obfuscated identifiers make the client unknown.
    pub fn resolve_forwarded<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl DoubleEndedIterator<Item = &'a [u8]>,
    ) -> ClientAddr {
        let mut values = forwarded.peekable();
        let present = values.peek().is_some();
        self.walk(
            peer,
            present,
            AddrSource::Forwarded,
            values
                .rev()
                .flat_map(|v| v.rsplit(|b| *b == b','))
                .map(parse_forwarded_element),
        )
    }

    /// Walks the chain from its last hop: trusted hops are skipped, the first untrusted hop is
    /// the client, a malformed hop makes it unknown.
    fn walk(
        &self,
        peer: IpAddr,
        present: bool,
        source: AddrSource,
        mut hops_from_last: impl DoubleEndedIterator<Item = Option<IpAddr>>,
    ) -> ClientAddr {
        let peer = canonical(peer);
        if !self.is_trusted(peer) {
            return ClientAddr {
                ip: Some(peer),
                source: AddrSource::Peer,
                ignored_forwarded_for: present,
                // What the chain claims is its first hop: only that one is parsed.
                claimed: if present {
                    hops_from_last.next_back().flatten().map(canonical)
                } else {
                    None
                },
                malformed: false,
            };
        }
        let mut last = None;
        for hop in hops_from_last {
            let Some(ip) = hop else {
                return ClientAddr {
                    ip: None,
                    source,
                    ignored_forwarded_for: false,
                    claimed: None,
                    malformed: true,
                };
            };
            if !self.is_trusted(ip) {
                return ClientAddr {
                    ip: Some(ip),
                    source,
                    ignored_forwarded_for: false,
                    claimed: None,
                    malformed: false,
                };
            }
            last = Some(ip);
        }
        match last {
            Some(ip) => ClientAddr {
                ip: Some(ip),
                source,
                ignored_forwarded_for: false,
                claimed: None,
                malformed: false,
            },
            None => ClientAddr {
                ip: Some(peer),
                source: AddrSource::Peer,
                ignored_forwarded_for: false,
                claimed: None,
                malformed: false,
            },
        }
    }
}

/// The `for=` address of one `Forwarded` element (`for=192.0.2.1;proto=https`,
/// `for="[2001:db8::1]:443"`). An element without `for=` or with a non-address identifier is
/// malformed.
fn parse_forwarded_element(element: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(element).ok()?;
    let value = s.split(';').find_map(|pair| {
        let (k, v) = pair.trim_matches([' ', '\t']).split_once('=')?;
        k.eq_ignore_ascii_case("for").then_some(v)
    })?;
    let v = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if let Some(rest) = v.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        if !(after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok()))
        {
            return None;
        }
        return addr
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|a| canonical(IpAddr::V6(a)));
    }
    let addr = match v.split_once(':') {
        Some((a, port)) if port.parse::<u16>().is_ok() => a,
        Some(_) => return None,
        None => v,
    };
    addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// Strict parse of one `X-Forwarded-For` entry: a bare IPv4 or IPv6 address, optional spaces
/// around it. Ports, brackets, `unknown` and obfuscated forms are rejected.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let mut b = entry;
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    if let Some(v4) = dotted_quad(b) {
        return Some(IpAddr::V4(v4));
    }
    let s = std::str::from_utf8(b).ok()?;
    s.parse::<IpAddr>().ok().map(canonical)
}

/// An IPv4 address in the form the standard parser takes (four decimal octets of one to three
/// digits, no leading zero, each at most 255), read from bytes without a UTF-8 check: most
/// entries are one. `None` for anything else, which then goes to the standard parser.
fn dotted_quad(b: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let (mut k, mut n, mut digits) = (0, 0u16, 0);
    for &c in b {
        match c {
            b'0'..=b'9' => {
                // A digit after a leading zero, or an octet past 255.
                if digits > 0 && n == 0 {
                    return None;
                }
                n = n * 10 + u16::from(c - b'0');
                digits += 1;
                if n > 255 {
                    return None;
                }
            }
            b'.' if digits > 0 && k < 3 => {
                octets[k] = n as u8;
                (k, n, digits) = (k + 1, 0, 0);
            }
            _ => return None,
        }
    }
    if digits == 0 || k != 3 {
        return None;
    }
    octets[3] = n as u8;
    Some(std::net::Ipv4Addr::from(octets))
}

/// IPv4-mapped IPv6 addresses are looked up as the IPv4 address they carry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The address a country is looked up for: [`canonical`], and the IPv4 address an IPv6 one
/// carries by a standard translation (NAT64's well-known prefix `64:ff9b::/96`, RFC 6052; 6to4's
/// `2002::/16`, RFC 3056), which is where the client's network is. `None` for Teredo
/// (`2001::/32`, RFC 4380): it carries its relay's address, not the client's, so its country
/// is unknown (and the strictest reading applies). Never used to decide trust: an embedded
/// address says where a host is, not who it is.
pub fn geo_address(ip: IpAddr) -> Option<IpAddr> {
    let ip = canonical(ip);
    let IpAddr::V6(v6) = ip else {
        return Some(ip);
    };
    let s = v6.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d))
    };
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(embedded(hi, lo)),
        [0x2002, hi, lo, ..] => Some(embedded(hi, lo)),
        [0x2001, 0, ..] => None,
        _ => Some(IpAddr::V6(v6)),
    }
}

/// An address truncated for records (`192.0.2.0/24`, `2001:db8:1::/48`), held inline: a
/// decision record takes one per request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Truncated {
    len: u8,
    // The longest is `ffff:ffff:ffff::/48`, 19 bytes.
    text: [u8; 24],
}

impl Truncated {
    pub fn as_str(&self) -> &str {
        // Digits, hex letters, `.`, `:` and `/` only.
        std::str::from_utf8(&self.text[..usize::from(self.len)]).unwrap_or("")
    }

    /// The same text as bytes, without a UTF-8 check.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }

    fn push(&mut self, b: u8) {
        if let Some(c) = self.text.get_mut(usize::from(self.len)) {
            *c = b;
            self.len += 1;
        }
    }

    fn push_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }
}

crate::text_traits!(Truncated);

/// The address truncated for records: /24 for IPv4, /48 for IPv6.
pub fn truncate(ip: IpAddr) -> Truncated {
    let mut t = Truncated {
        len: 0,
        text: [0; 24],
    };
    match canonical(ip) {
        IpAddr::V4(v4) => {
            for o in &v4.octets()[..3] {
                let o = *o;
                if o >= 100 {
                    t.push(b'0' + o / 100);
                }
                if o >= 10 {
                    t.push(b'0' + o / 10 % 10);
                }
                t.push(b'0' + o % 10);
                t.push(b'.');
            }
            t.push_all(b"0/24");
        }
        IpAddr::V6(v6) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for seg in &v6.segments()[..3] {
                // Without leading zeros, as `{:x}` writes it.
                let mut started = false;
                for shift in [12u16, 8, 4, 0] {
                    let d = (seg >> shift) & 0xf;
                    if d != 0 || started || shift == 0 {
                        t.push(HEX[usize::from(d)]);
                        started = true;
                    }
                }
                t.push(b':');
            }
            t.push_all(b":/48");
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp() -> TrustedProxies {
        TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.0/8".parse().unwrap(),
        ])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_ignores_forwarded_for() {
        let c = tp().resolve(ip("198.51.100.7"), [b"192.0.2.1".as_slice()].into_iter());
        assert_eq!(c.ip, Some(ip("198.51.100.7")));
        assert!(c.ignored_forwarded_for);
        assert_eq!(c.claimed, Some(ip("192.0.2.1")));
        // The chain's first entry is what it claims the client was.
        let c = tp().resolve(
            ip("198.51.100.7"),
            [b"203.0.113.9, 10.0.0.1".as_slice(), b"10.0.0.2".as_slice()].into_iter(),
        );
        assert_eq!(c.claimed, Some(ip("203.0.113.9")));
        let c = tp().resolve(ip("198.51.100.7"), [b"unknown".as_slice()].into_iter());
        assert!(c.ignored_forwarded_for);
        assert_eq!(c.claimed, None);
        let c = tp().resolve(ip("198.51.100.7"), std::iter::empty());
        assert!(!c.ignored_forwarded_for);
        assert_eq!(c.claimed, None);
    }

    #[test]
    fn trusted_chain_takes_rightmost_untrusted() {
        let c = tp().resolve(
            ip("127.0.0.1"),
            [b"192.0.2.66, 198.51.100.7, 10.1.2.3".as_slice()].into_iter(),
        );
        assert_eq!(c.ip, Some(ip("198.51.100.7")));
        assert_eq!(c.source, AddrSource::ForwardedFor);
    }

    #[test]
    fn several_headers_are_one_list() {
        let c = tp().resolve(
            ip("127.0.0.1"),
            [b"192.0.2.66".as_slice(), b"10.0.0.1".as_slice()].into_iter(),
        );
        assert_eq!(c.ip, Some(ip("192.0.2.66")));
    }

    #[test]
    fn malformed_entries_make_the_client_unknown() {
        for bad in [
            "1.2.3.4:80",
            "unknown",
            "[2001:db8::1]",
            "0x7f000001",
            "001.002.003.004",
            "",
        ] {
            let c = tp().resolve(ip("127.0.0.1"), [bad.as_bytes()].into_iter());
            assert_eq!(c.ip, None, "{bad}");
            assert!(c.malformed, "{bad}");
        }
    }

    #[test]
    fn forwarded_header_takes_rightmost_untrusted_for() {
        let c = tp().resolve_forwarded(
            ip("127.0.0.1"),
            [
                b"for=192.0.2.66;proto=https, for=\"[2001:db8::7]:4711\"".as_slice(),
                b"for=10.0.0.1;by=10.0.0.2".as_slice(),
            ]
            .into_iter(),
        );
        assert_eq!(c.ip, Some(ip("2001:db8::7")));
        assert_eq!(c.source, AddrSource::Forwarded);
        let c = tp().resolve_forwarded(
            ip("127.0.0.1"),
            [b"for=198.51.100.7:8080".as_slice()].into_iter(),
        );
        assert_eq!(c.ip, Some(ip("198.51.100.7")));
        for bad in [
            "for=unknown",
            "for=_hidden",
            "proto=https",
            "for=\"[::1\"",
            "for=1.2.3.4:x",
        ] {
            let c = tp().resolve_forwarded(ip("127.0.0.1"), [bad.as_bytes()].into_iter());
            assert!(c.malformed, "{bad}");
        }
        let c = tp().resolve_forwarded(
            ip("198.51.100.9"),
            [b"for=192.0.2.1".as_slice()].into_iter(),
        );
        assert_eq!(c.ip, Some(ip("198.51.100.9")));
        assert!(c.ignored_forwarded_for);
    }

    #[test]
    fn mapped_addresses_are_canonical_and_truncated() {
        assert_eq!(canonical(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
        assert_eq!(truncate(ip("192.0.2.9")), "192.0.2.0/24");
        assert_eq!(truncate(ip("2001:db8:1:2::5")), "2001:db8:1::/48");
    }

    #[test]
    fn entries_parse_as_the_standard_parser_reads_them() {
        let std_read = |e: &[u8]| {
            std::str::from_utf8(e)
                .ok()
                .map(|s| s.trim_matches([' ', '\t']))
                .and_then(|s| s.parse::<IpAddr>().ok())
                .map(canonical)
        };
        let mut cases: Vec<Vec<u8>> = [
            "192.0.2.10",
            " 192.0.2.10",
            "192.0.2.10\t ",
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.0",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.4 ",
            "1.2.3.-4",
            "+1.2.3.4",
            "1.2.3.4:80",
            "1.2.3.1000",
            "::ffff:192.0.2.9",
            "2001:db8::1",
            "[2001:db8::1]",
            "unknown",
            "",
            " ",
            "1.2.3.a",
            "१.2.3.4",
            "1.2.3.4\n",
            "999.1.1.1",
            "00.1.1.1",
            "0.1.1.1",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        // Every byte in every place of a short address.
        for at in 0..7 {
            for c in 0..=255u8 {
                let mut e = b"1.2.3.4".to_vec();
                e[at] = c;
                cases.push(e);
            }
        }
        // Every octet value with and without leading zeros, in the first and the last place.
        for n in 0..1000 {
            for octet in [format!("{n}"), format!("0{n}"), format!("00{n}")] {
                cases.push(format!("{octet}.9.9.9").into_bytes());
                cases.push(format!("9.9.9.{octet}").into_bytes());
            }
        }
        for e in cases {
            assert_eq!(
                parse_entry(&e),
                std_read(&e),
                "{:?}",
                String::from_utf8_lossy(&e)
            );
        }
    }

    #[test]
    fn every_ipv4_octet_is_written_like_display() {
        for o in 0..=255u8 {
            let a = std::net::Ipv4Addr::new(o, 255 - o, o / 3, o);
            assert_eq!(
                truncate(IpAddr::V4(a)).as_str(),
                format!("{}.{}.{}.0/24", o, 255 - o, o / 3)
            );
        }
    }

    #[test]
    fn every_ipv6_segment_is_written_like_display() {
        for seg in [
            0u16, 1, 0xf, 0x10, 0xab, 0x100, 0xfff, 0x1000, 0xabcd, 0xffff, 0x0f0f, 0xf00,
        ] {
            let a = std::net::Ipv6Addr::new(seg, 0xffff - seg, seg / 3, 1, 2, 3, 4, 5);
            let s = a.segments();
            assert_eq!(
                truncate(IpAddr::V6(a)).as_str(),
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            );
        }
        assert_eq!(truncate(ip("ffff:ffff:ffff::1")), "ffff:ffff:ffff::/48");
    }
}
