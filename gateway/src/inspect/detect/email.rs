//! Email addresses, internationalised local parts and IDN domains included.

fn is_local_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c >= 0x80 || b"!#$%&'*+/=?^_`{|}~.-".contains(&c)
}

fn is_domain_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c >= 0x80 || c == b'-' || c == b'.'
}

/// An address `local@domain.tld`: a non-empty local part, a domain of two or more labels,
/// labels not starting or ending with `-`, a TLD of two or more letters (or an IDN `xn--`).
pub(super) fn contains_email(b: &[u8]) -> bool {
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'@') {
        let at = i + off;
        i = at + 1;
        let local_len = b[..at]
            .iter()
            .rev()
            .take_while(|&&c| is_local_byte(c))
            .count();
        if local_len == 0 || b[at - local_len] == b'.' || b[at - 1] == b'.' {
            continue;
        }
        let domain_len = b[at + 1..]
            .iter()
            .take_while(|&&c| is_domain_byte(c))
            .count();
        let mut domain = &b[at + 1..at + 1 + domain_len];
        // A sentence may end right after the address.
        while let [rest @ .., b'.'] = domain {
            domain = rest;
        }
        if valid_domain(domain) {
            return true;
        }
    }
    false
}

fn valid_domain(d: &[u8]) -> bool {
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in d.split(|&c| c == b'.') {
        if label.is_empty()
            || label.len() > 63
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2
        && last.len() >= 2
        && (last.iter().all(|c| c.is_ascii_alphabetic() || *c >= 0x80) || last.starts_with(b"xn--"))
}
