//! IP addresses. Loopback, unspecified, broadcast and multicast addresses identify no one and
//! are not reported, nor is an IPv4 `n.0.0.0` (a class A network number, never a host's
//! address) or a dotted quad right after a product name and `/` (a version, as user agents
//! write them: `Chrome/120.0.0.0`, `App/1.2.3.4`).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Whether `s` holds an IPv4 address in dotted-quad form not glued to other digits or dots.
pub(super) fn find_v4(s: &str) -> bool {
    // A dotted quad has three dots, each between two digits: a value without them (a URL's
    // host and file name, a sentence) is told so from its dots alone.
    let b = s.as_bytes();
    let mut inner = 0;
    any_at(b, b'.', |i| {
        if i > 0 && b[i - 1].is_ascii_digit() && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            inner += 1;
        }
        inner == 3
    }) && scan_v4(s)
}

/// Calls `f` with the place of each `needle` in `b`, in order, until it says yes; whether it
/// did. Eight bytes a step within a 64-bit word: the values these checks read are short, and
/// a vector search costs more to set up for each than it saves.
fn any_at(b: &[u8], needle: u8, mut f: impl FnMut(usize) -> bool) -> bool {
    let (words, rest) = b.as_chunks::<8>();
    for (k, w) in words.iter().enumerate() {
        let mut zero = crate::jsonstr::zero_bytes(
            u64::from_le_bytes(*w) ^ (crate::jsonstr::LO * u64::from(needle)),
        );
        while zero != 0 {
            if f(k * 8 + (zero.trailing_zeros() / 8) as usize) {
                return true;
            }
            zero &= zero - 1;
        }
    }
    let done = words.len() * 8;
    rest.iter()
        .enumerate()
        .any(|(i, &c)| c == needle && f(done + i))
}

/// [`find_v4`] without its look at the dots: every run of digits and dots is read.
fn scan_v4(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit()
            || (i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.'))
        {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        // A full stop after the address ends the sentence, not the address.
        let mut end = i;
        if end - start > 1 && b[end - 1] == b'.' {
            end -= 1;
        }
        let glued = end < b.len() && b[end].is_ascii_alphanumeric();
        // A product's version (`App/1.2.3.4`, `YaBrowser/24.1.0.0`): a product name and a `/`
        // before it, the name starting the value or after a space, `(` or `;`. A URL's host
        // follows `//`, and an address in a URL's path follows a segment that follows a `/`.
        let version = start >= 2 && b[start - 1] == b'/' && b[start - 2].is_ascii_alphabetic() && {
            let name = b[..start - 1]
                .iter()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
                .count();
            let before = (start - 1).checked_sub(name + 1).map(|i| b[i]);
            matches!(before, None | Some(b' ' | b'\t' | b'(' | b';' | b','))
        };
        if !glued
            && !version
            && end - start >= 7
            && let Ok(ip) = s[start..end].parse::<Ipv4Addr>()
            && !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                || ip.octets()[1..] == [0, 0, 0])
        {
            return true;
        }
    }
    false
}

/// Whether `s` holds an IPv6 address (RFC 4291 text forms, also with an embedded IPv4 tail).
pub(super) fn find_v6(s: &str) -> bool {
    // Written out in full an address has seven colons (six before an IPv4 tail); shortened,
    // it has `::`. A time of day or a timestamp has neither, and is told so without a scan.
    let b = s.as_bytes();
    let mut colons = 0;
    any_at(b, b':', |i| {
        colons += 1;
        colons == 6 || b.get(i + 1) == Some(&b':')
    }) && scan_v6(s)
}

/// [`find_v6`] without its count of the colons: every run of hex digits, colons and dots is
/// read.
fn scan_v6(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && (b[i].is_ascii_hexdigit() || b[i] == b':' || b[i] == b'.') {
            i += 1;
        }
        if i == start {
            i += 1;
            continue;
        }
        // Punctuation around the address is not part of it: a full stop ending a sentence, a
        // colon after a label (`ip:2001:db8::1`) or before the next word.
        let (mut from, mut to) = (start, i);
        if to - from > 1 && b[to - 1] == b'.' {
            to -= 1;
        }
        if to - from > 2 && b[from] == b':' && b[from + 1] != b':' {
            from += 1;
        }
        if to - from > 2 && b[to - 1] == b':' && b[to - 2] != b':' {
            to -= 1;
        }
        let tok = &s[from..to];
        let glued = (from > 0 && b[from - 1].is_ascii_alphanumeric())
            || (to < b.len() && b[to].is_ascii_alphanumeric());
        if !glued
            && tok.len() >= 6
            && tok.bytes().filter(|&c| c == b':').count() >= 2
            && let Ok(ip) = tok.parse::<Ipv6Addr>()
            && !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast())
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::corpus::values::agree;

    #[test]
    fn addresses_are_found_and_lookalikes_are_not() {
        for s in [
            "192.0.2.10",
            "from 198.51.100.7, via proxy",
            "10.1.2.3",
            "my ip is 192.0.2.10.",
            "10.0.0.1",
            "203.0.113.0",
            "http://192.0.2.10/admin",
            "https://admin.example.com/devices/192.0.2.44/edit",
            "GET /clients/203.0.113.7",
            "client 192.0.2.10/24",
        ] {
            assert!(find_v4(s), "{s}");
        }
        for s in [
            "127.0.0.1",
            "0.0.0.0",
            "1.2.3",
            "v1.2.3.4",
            "1.2.3.4.5",
            "1.2.3.4.5.",
            "300.1.1.1",
            "3.14",
            // A network number, and a browser's version that looks like one.
            "10.0.0.0",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 YaBrowser/24.1.2.3 Yowser/2.5 Safari/537.36",
            "MyApp/1.2.3.4 (iOS)",
        ] {
            assert!(!find_v4(s), "{s}");
        }
        for s in [
            "2001:db8::1",
            "addr fe80::1ff:fe23:4567:890a here",
            "::ffff:192.0.2.1",
            "my ip is 2001:db8::1.",
            "ip:2001:db8::1",
            "at 2001:db8::1: then",
        ] {
            assert!(find_v6(s), "{s}");
        }
        for s in ["::1", "::", "12:30:45", "00:1a:2b:3c:4d:5e", "a::b::c"] {
            assert!(!find_v6(s), "{s}");
        }
    }

    #[test]
    fn the_look_at_the_dots_rejects_only_what_the_scan_would() {
        let mut r = crate::inspect::corpus::values::Rng::new(4);
        let pieces = [
            "1", "12", "192", "0", "255", "300", "7", ".", ".", ".", "/", "a", " ", "v", "-",
        ];
        let make = |n: usize| {
            let mut s = r.pieces(&pieces, 0, 6);
            // Every other one around a quad of numbers up to 300, some of them addresses.
            if n.is_multiple_of(2) {
                let quad: Vec<String> = (0..4).map(|_| r.range(0, 300).to_string()).collect();
                s.push_str(&quad.join("."));
            }
            s.push_str(&r.pieces(&pieces, 0, 6));
            s
        };
        let found = agree(50_000, make, find_v4, scan_v4);
        // Enough addresses among them for the comparison to mean something.
        assert!(found > 1_000, "{found}");
    }

    #[test]
    fn the_count_of_colons_rejects_only_what_the_scan_would() {
        let mut r = crate::inspect::corpus::values::Rng::new(6);
        let pieces = [
            "0",
            "db8",
            "2001",
            "fe80",
            "ffff",
            "1",
            ":",
            ":",
            ":",
            "::",
            ".",
            "192.0.2.1",
            " ",
            "g",
            "T12",
            "Z",
        ];
        let found = agree(50_000, |_| r.pieces(&pieces, 0, 18), find_v6, scan_v6);
        assert!(found > 500, "{found}");
        assert!(!find_v6("2025-01-11T17:26:59Z") && !find_v6("00:1a:2b:3c:4d:5e"));
        assert!(find_v6("1:2:3:4:5:6:192.0.2.1") && find_v6("1:2:3:4:5:6:7:8"));
    }

    #[test]
    fn the_word_search_finds_every_place_a_byte_is_in_order() {
        let mut r = crate::inspect::corpus::values::Rng::new(7);
        // Bytes next to the needles in value and in bit pattern, high ones included.
        let pieces = [
            ".", ":", "..", "/", "-", ";", "9", "a", "\u{ad}", "\u{ae}", "\u{ba}", "é", " ",
        ];
        for _ in 0..20_000 {
            let s = r.pieces(&pieces, 0, 30);
            let b = s.as_bytes();
            for needle in [b'.', b':', 0xae, 0xba] {
                let mut seen = Vec::new();
                assert!(!any_at(b, needle, |i| {
                    seen.push(i);
                    false
                }));
                let want: Vec<usize> = (0..b.len()).filter(|&i| b[i] == needle).collect();
                assert_eq!(seen, want, "{s:?} {needle}");
                // Stopped at the place it was told to stop.
                if let Some(&last) = want.last() {
                    assert!(any_at(b, needle, |i| i == last));
                }
            }
        }
    }
}
