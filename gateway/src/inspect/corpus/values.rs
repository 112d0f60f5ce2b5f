//! Synthetic values: random, and valid by each format's own check-digit rules, so that a
//! detector that finds them proves it checks the format and not a list of known examples.

use crate::inspect::detect::ids::{CF_ODD, VERHOEFF_D, VERHOEFF_P};

/// A small deterministic generator (SplitMix64): the same seed gives the same corpus on every
/// machine and every version of every dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64 - 1) as usize]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.range(1, 100) <= percent
    }

    /// `n` random decimal digits.
    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.range(0, 9) as u8))
            .collect()
    }

    /// Up to `max` of `pieces` picked at random and joined (at least `min`).
    pub fn pieces(&mut self, pieces: &[&str], min: u64, max: u64) -> String {
        let len = self.range(min, max);
        (0..len).map(|_| *self.pick(pieces)).collect()
    }

    pub fn letters(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'A' + self.range(0, 25) as u8))
            .collect()
    }
}

fn digit_values(s: &str) -> Vec<u32> {
    s.bytes().map(|c| u32::from(c - b'0')).collect()
}

/// The Luhn check digit that completes `body`.
fn luhn_digit(body: &str) -> u32 {
    let mut sum = 0;
    for (i, v) in digit_values(body).into_iter().rev().enumerate() {
        let mut v = v;
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    (10 - sum % 10) % 10
}

/// A payment card number of a random brand, Luhn-valid, in the brand's issuer range.
pub fn card(r: &mut Rng) -> String {
    let (prefix, len) = *r.pick(&[
        ("4", 16),
        ("51", 16),
        ("55", 16),
        ("2221", 16),
        ("34", 15),
        ("37", 15),
        ("6011", 16),
        ("3530", 16),
        ("62", 16),
        ("4", 19),
    ]);
    let body = format!("{prefix}{}", r.digits(len - prefix.len() - 1));
    let check = luhn_digit(&body);
    format!("{body}{check}")
}

/// An IBAN for `country`, with a random BBAN of that country's shape and valid check digits.
pub fn iban(r: &mut Rng, country: &str) -> String {
    let bban = match country {
        "DE" => r.digits(18),
        "FR" => format!("{}{}", r.digits(10), r.digits(13)),
        "ES" => r.digits(20),
        "IT" => format!("{}{}", r.letters(1), r.digits(22)),
        "NL" => format!("{}{}", r.letters(4), r.digits(10)),
        "PT" => r.digits(21),
        "PL" => r.digits(24),
        "SE" => r.digits(20),
        "GB" => format!("{}{}", r.letters(4), r.digits(14)),
        "BR" => format!("{}{}{}", r.digits(23), r.letters(1), r.digits(1)),
        _ => r.digits(18),
    };
    let mut rem: u32 = 0;
    for c in format!("{bban}{country}00").bytes() {
        rem = if c.is_ascii_digit() {
            (rem * 10 + u32::from(c - b'0')) % 97
        } else {
            (rem * 100 + u32::from(c - b'A') + 10) % 97
        };
    }
    format!("{country}{:02}{bban}", 98 - rem)
}

/// Holds a shortcut to the check it stands for: `fast` and `full` give the same answer on each
/// of `rounds` values made by `make` (given the round's number). Returns how many of them
/// `full` said yes to, so that a test can require enough of each answer for the comparison to
/// mean something.
#[cfg(test)]
pub(crate) fn agree(
    rounds: usize,
    mut make: impl FnMut(usize) -> String,
    fast: impl Fn(&str) -> bool,
    full: impl Fn(&str) -> bool,
) -> usize {
    let mut yes = 0;
    for n in 0..rounds {
        let v = make(n);
        let want = full(&v);
        assert_eq!(fast(&v), want, "{v:?}");
        yes += usize::from(want);
    }
    yes
}

/// An ISO 8601 timestamp in 2025, in UTC.
pub fn timestamp(r: &mut Rng) -> String {
    format!(
        "2025-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        r.range(1, 12),
        r.range(1, 28),
        r.range(0, 23),
        r.range(0, 59),
        r.range(0, 59)
    )
}

/// Writes an identifier in groups of `n` characters separated by `sep`.
pub fn grouped(s: &str, n: usize, sep: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    chars
        .chunks(n)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(sep)
}

fn date(r: &mut Rng, from: u64, to: u64) -> (u64, u64, u64) {
    let y = r.range(from, to);
    let m = r.range(1, 12);
    let d = r.range(1, 28);
    (y, m, d)
}

/// US SSN, `AAA-GG-SSSS`, in the assignable ranges.
pub fn us_ssn(r: &mut Rng) -> String {
    let mut area = r.range(1, 899);
    if area == 666 {
        area = 665;
    }
    format!("{area:03}-{:02}-{:04}", r.range(1, 99), r.range(1, 9999))
}

/// UK NINO with an allocatable prefix.
pub fn uk_nino(r: &mut Rng) -> String {
    let first = *r.pick(b"ABCEHJKLMPRSWY");
    let second = *r.pick(b"ABCEHJLMPRSWXZ");
    let suffix = *r.pick(&['A', 'B', 'C', 'D']);
    format!(
        "{}{} {} {} {} {suffix}",
        first as char,
        second as char,
        r.digits(2),
        r.digits(2),
        r.digits(2)
    )
}

/// French NIR with its key.
pub fn fr_nir(r: &mut Rng) -> String {
    let sex = r.range(1, 2);
    let (y, m, _) = date(r, 1940, 2005);
    let dept = r.range(1, 95);
    let body = format!(
        "{sex}{:02}{m:02}{dept:02}{:03}{:03}",
        y % 100,
        r.range(1, 990),
        r.range(1, 999)
    );
    let n: u64 = body.parse().unwrap_or(0);
    format!("{body}{:02}", 97 - n % 97)
}

/// German Steuer-ID: one digit twice among the first ten, ISO 7064 MOD 11,10 check.
pub fn de_steuer_id(r: &mut Rng) -> String {
    loop {
        let mut digits: Vec<u32> = (0..10).collect();
        // Shuffle, drop one digit and repeat another.
        for i in (1..10).rev() {
            let j = r.range(0, i as u64) as usize;
            digits.swap(i, j);
        }
        let dup = digits[0];
        digits[9] = dup;
        for i in (1..10).rev() {
            let j = r.range(0, i as u64) as usize;
            digits.swap(i, j);
        }
        if digits[0] == 0 {
            continue;
        }
        let mut product = 10;
        for &x in &digits {
            let mut sum = (x + product) % 10;
            if sum == 0 {
                sum = 10;
            }
            product = (sum * 2) % 11;
        }
        let check = (11 - product) % 10;
        let s: String = digits.iter().map(|d| char::from(b'0' + *d as u8)).collect();
        return format!("{s}{check}");
    }
}

/// Italian codice fiscale with its check letter.
pub fn codice_fiscale(r: &mut Rng) -> String {
    let (y, m, d) = date(r, 1940, 2005);
    let month = b"ABCDEHLMPRST"[m as usize - 1] as char;
    let day = if r.chance(50) { d + 40 } else { d };
    let body = format!(
        "{}{:02}{month}{day:02}{}{}",
        r.letters(6),
        y % 100,
        r.letters(1),
        r.digits(3)
    );
    let mut sum = 0;
    for (i, c) in body.bytes().enumerate() {
        let v = if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else {
            u32::from(c - b'A')
        };
        sum += if i % 2 == 0 { CF_ODD[v as usize] } else { v };
    }
    format!("{body}{}", char::from(b'A' + (sum % 26) as u8))
}

/// Spanish DNI or NIE with its letter.
pub fn es_dni(r: &mut Rng) -> String {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    if r.chance(30) {
        let lead = r.range(0, 2);
        let rest = r.digits(7);
        let n: u64 = format!("{lead}{rest}").parse().unwrap_or(0);
        format!(
            "{}{rest}{}",
            ["X", "Y", "Z"][lead as usize],
            LETTERS[(n % 23) as usize] as char
        )
    } else {
        let n = r.range(0, 99_999_999);
        format!("{n:08}{}", LETTERS[(n % 23) as usize] as char)
    }
}

/// Dutch BSN passing the 11-proof.
pub fn nl_bsn(r: &mut Rng) -> String {
    loop {
        let s = format!("{}{}", r.range(1, 9), r.digits(8));
        let d = digit_values(&s);
        let sum: i64 = (0..8)
            .map(|i| (9 - i as i64) * i64::from(d[i]))
            .sum::<i64>()
            - i64::from(d[8]);
        if sum % 11 == 0 {
            return s;
        }
    }
}

/// Polish PESEL with birth date and check digit.
pub fn pl_pesel(r: &mut Rng) -> String {
    let (y, m, d) = date(r, 1940, 2012);
    let mm = if y >= 2000 { m + 20 } else { m };
    let body = format!("{:02}{mm:02}{d:02}{}", y % 100, r.digits(4));
    const W: [u32; 10] = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
    let sum: u32 = digit_values(&body).iter().zip(W).map(|(a, w)| a * w).sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// Swedish personnummer `YYMMDD-NNNC`.
pub fn se_personnummer(r: &mut Rng) -> String {
    let (y, m, d) = date(r, 1940, 2005);
    let body = format!("{:02}{m:02}{d:02}{}", y % 100, r.digits(3));
    // Luhn over the nine digits with the check appended: weights start at 2 from the left.
    let mut sum = 0;
    for (i, v) in digit_values(&body).into_iter().enumerate() {
        let mut v = v * if i % 2 == 0 { 2 } else { 1 };
        if v > 9 {
            v -= 9;
        }
        sum += v;
    }
    let check = (10 - sum % 10) % 10;
    format!("{}-{}{check}", &body[..6], &body[6..])
}

const VERHOEFF_INV: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// Indian Aadhaar with its Verhoeff check digit.
pub fn in_aadhaar(r: &mut Rng) -> String {
    let body = format!("{}{}", r.range(2, 9), r.digits(10));
    let mut c = 0u8;
    for (i, v) in digit_values(&body).into_iter().rev().enumerate() {
        c = VERHOEFF_D[c as usize][VERHOEFF_P[(i + 1) % 8][v as usize] as usize];
    }
    format!("{body}{}", VERHOEFF_INV[c as usize])
}

/// Brazilian CPF with both check digits.
pub fn br_cpf(r: &mut Rng) -> String {
    let mut d = digit_values(&r.digits(9));
    if d.iter().all(|&x| x == d[0]) {
        d[0] = (d[0] + 1) % 10;
    }
    for n in [9usize, 10] {
        let sum: u32 = d[..n]
            .iter()
            .enumerate()
            .map(|(i, &x)| x * (n as u32 + 1 - i as u32))
            .sum();
        let r = sum * 10 % 11;
        d.push(if r == 10 { 0 } else { r });
    }
    d.iter().map(|x| char::from(b'0' + *x as u8)).collect()
}

/// Chinese resident identity number with its ISO 7064 MOD 11-2 check character.
pub fn cn_resident(r: &mut Rng) -> String {
    let (y, m, d) = date(r, 1950, 2005);
    let body = format!(
        "{}{}{y}{m:02}{d:02}{}",
        r.range(1, 6),
        r.digits(5),
        r.digits(3)
    );
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = digit_values(&body).iter().zip(W).map(|(a, w)| a * w).sum();
    format!("{body}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

/// Japanese My Number with its check digit.
pub fn jp_my_number(r: &mut Rng) -> String {
    let body = r.digits(11);
    let d = digit_values(&body);
    let sum: u32 = (1..=11u32)
        .map(|n| d[11 - n as usize] * if n <= 6 { n + 1 } else { n - 5 })
        .sum();
    let rem = sum % 11;
    format!("{body}{}", if rem <= 1 { 0 } else { 11 - rem })
}

/// A public-looking IPv4 address, or an IPv6 address in 2001:db8::/32.
pub fn ip(r: &mut Rng) -> String {
    if r.chance(70) {
        format!(
            "{}.{}.{}.{}",
            r.range(11, 223),
            r.range(0, 255),
            r.range(0, 255),
            r.range(1, 254)
        )
    } else {
        format!(
            "2001:db8:{:x}:{:x}::{:x}",
            r.range(0, 0xffff),
            r.range(0, 0xffff),
            r.range(1, 0xffff)
        )
    }
}

/// An EAN-13 barcode with its check digit (weights 1 and 3), not personal data.
pub fn ean13(r: &mut Rng) -> String {
    let body = format!(
        "{}{}",
        r.pick(&["400", "401", "440", "590", "789", "978"]),
        r.digits(9)
    );
    let sum: u32 = digit_values(&body)
        .iter()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { *d } else { d * 3 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}
