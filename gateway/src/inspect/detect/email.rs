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

/// An address with its `@` written as a word: bracketed (`jane (at) example (dot) com`,
/// `jane[at]example.com`, `jane {AT} example dot com`, `jane<@>example<.>org`; brackets are
/// `()`, `[]`, `{}` or `<>`, with spaces allowed inside and around them), or bare when a dot of
/// its domain is a bare word too (`jane at example dot com`). A bare ` at ` before a domain
/// written with real dots is prose ("available at example.com") and is not read as one; once
/// an `@` is found, a bare ` dot ` stands for a dot.
///
/// `brackets` says whether `b` may hold the bracketed form, `spaces` the bare one.
pub(super) fn contains_obfuscated(b: &[u8], brackets: bool, spaces: bool) -> bool {
    // Most text holds neither form: that is found before anything is copied.
    let bracketed_at = if brackets {
        b.iter()
            .enumerate()
            .filter(|(_, c)| matches!(c, b'(' | b'[' | b'{' | b'<'))
            .find(|&(i, _)| matches!(bracketed(&b[i..]), Some((b'@', _))))
            .map(|(i, _)| i)
    } else {
        None
    };
    let Some(first) = bracketed_at.or_else(|| spaces.then(|| bare_at_before_dot(b)).flatten())
    else {
        return false;
    };
    // Beside a bracketed `@`, a bare `at` is left as the word it is.
    let bare_at = bracketed_at.is_none();
    let mut text = Vec::with_capacity(b.len());
    text.extend_from_slice(&b[..first]);
    let mut i = first;
    while i < b.len() {
        let rest = &b[i..];
        let word = bracketed(rest)
            .or_else(|| Some((b'.', bare(rest, b"dot")?)))
            .or_else(|| Some((b'@', bare(rest, b"at").filter(|_| bare_at)?)));
        let Some((c, len)) = word else {
            text.push(b[i]);
            i += 1;
            continue;
        };
        while text.last().is_some_and(|c| matches!(c, b' ' | b'\t')) {
            text.pop();
        }
        text.push(c);
        i += len;
        while i < b.len() && matches!(b[i], b' ' | b'\t') {
            i += 1;
        }
    }
    contains_email(&text)
}

/// Where a bare ` at ` is that a bare ` dot ` follows (the words in lower or upper case).
fn bare_at_before_dot(b: &[u8]) -> Option<usize> {
    let dot = last_bare_dot(b)?;
    (0..dot).find(|&i| b[i] == b' ' && bare(&b[i..], b"at").is_some())
}

/// Where the last ` dot ` or ` DOT ` starts: found from the last `d` or `D` backwards, each
/// checked in place (a spaced value has few). The `d`s are found eight bytes a step from the
/// end: with its case bit set, a byte is `d` only if it was `d` or `D`.
fn last_bare_dot(b: &[u8]) -> Option<usize> {
    let dot_at = |j: usize| {
        let word = b.get(j..j + 4)?;
        (j > 0 && b[j - 1] == b' ' && (word == b"dot " || word == b"DOT ")).then(|| j - 1)
    };
    let (head, words) = b.as_rchunks::<8>();
    for (k, w) in words.iter().enumerate().rev() {
        let folded = u64::from_le_bytes(*w) | (crate::jsonstr::LO * 0x20);
        let mut ds = crate::jsonstr::zero_bytes(folded ^ (crate::jsonstr::LO * u64::from(b'd')));
        while ds != 0 {
            let top = 63 - ds.leading_zeros();
            if let Some(at) = dot_at(head.len() + k * 8 + (top / 8) as usize) {
                return Some(at);
            }
            ds &= !(1u64 << top);
        }
    }
    (0..head.len())
        .rev()
        .filter(|&j| b[j] | 0x20 == b'd')
        .find_map(dot_at)
}

/// `(at)`, `[ dot ]`, `{@}`, `<.>` at the start of `b`: the character it stands for and the
/// bytes it takes.
fn bracketed(b: &[u8]) -> Option<(u8, usize)> {
    let close = match b.first()? {
        b'(' => b')',
        b'[' => b']',
        b'{' => b'}',
        b'<' => b'>',
        _ => return None,
    };
    let spaces = |from: usize| {
        from + b[from..]
            .iter()
            .take_while(|c| matches!(c, b' ' | b'\t'))
            .count()
    };
    let start = spaces(1);
    let (c, end) = [
        (&b"at"[..], b'@'),
        (b"@", b'@'),
        (b"dot", b'.'),
        (b".", b'.'),
    ]
    .into_iter()
    .find_map(|(word, c)| {
        let w = b.get(start..start + word.len())?;
        w.eq_ignore_ascii_case(word)
            .then_some((c, start + word.len()))
    })?;
    let end = spaces(end);
    (b.get(end) == Some(&close)).then_some((c, end + 1))
}

/// The bare word `word` (any case, after spaces or tabs and before one) at the start of `b`:
/// the bytes up to the end of the word.
fn bare(b: &[u8], word: &[u8]) -> Option<usize> {
    let start = b.iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
    let after = start + word.len();
    (start > 0
        && b.get(start..after)?.eq_ignore_ascii_case(word)
        && matches!(b.get(after), Some(b' ' | b'\t')))
    .then_some(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_bare_dot_is_found_as_a_substring_search_finds_it() {
        let naive = |b: &[u8]| b.windows(5).rposition(|w| w == b" dot " || w == b" DOT ");
        for s in [
            "jane at example dot com",
            "jane AT example DOT com dot uk",
            "dot com",
            " dot ",
            "x dot",
            "x Dot y",
            "d D dd dot DOT  dot x",
            "ready in 3 days, dotted and DOTTY",
            "",
        ] {
            assert_eq!(last_bare_dot(s.as_bytes()), naive(s.as_bytes()), "{s:?}");
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for n in 0..20_000 {
            // Lengths on either side of whole words, so that the bytes before the last word
            // are read too.
            let s: Vec<u8> = (0..n % 41)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b" dotDOTx"[(x % 8) as usize]
                })
                .collect();
            assert_eq!(
                last_bare_dot(&s),
                naive(&s),
                "{:?}",
                String::from_utf8_lossy(&s)
            );
        }
    }
}
