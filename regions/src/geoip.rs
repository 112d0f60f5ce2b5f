//! Country of an IP address from a MaxMind DB (GeoIP2/GeoLite2 Country or City, or any DB with
//! the same `country.iso_code` path).

use std::net::IpAddr;
use std::path::Path;

use domicile_policy::Country;
use maxminddb::PathElement;

use crate::client_addr::geo_address;

/// Which country of a GeoIP record is the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CountryField {
    /// Where the address is used (`country`), the default.
    #[default]
    Country,
    /// Where the address block is registered (`registered_country`).
    RegisteredCountry,
}

/// What the database says about one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GeoAnswer {
    pub country: Option<Country>,
    /// The database marks the address as an anonymous proxy, VPN or Tor exit.
    pub anonymous: bool,
}

/// A loaded MaxMind database.
pub struct GeoIp {
    reader: maxminddb::Reader<Vec<u8>>,
    description: String,
    build_date: String,
    /// Answers for IPv4 addresses seen recently (see [`AnswerCache`]).
    cache: AnswerCache,
}

/// Slots of the answer cache (a power of two): 32 KiB per database.
const CACHE_SLOTS: usize = 4096;

/// Remembers [`GeoIp::answer`] for IPv4 addresses, direct-mapped, one atomic word a slot: the
/// database of an instance never changes, so an answer stays true for the instance's
/// lifetime (a reload loads a new instance with an empty cache). A slot holds the address,
/// the question (field, whether anonymity was asked) and the answer; a different address or
/// question in the slot is a miss, and the fresh answer replaces it. Lookups that fail are
/// not remembered.
struct AnswerCache {
    slots: Box<[std::sync::atomic::AtomicU64]>,
}

const VALID: u64 = 1 << 32;
const REGISTERED: u64 = 1 << 33;
const ASKED_ANONYMITY: u64 = 1 << 34;
const HAS_COUNTRY: u64 = 1 << 35;
const ANONYMOUS: u64 = 1 << 36;

impl AnswerCache {
    fn new() -> AnswerCache {
        AnswerCache {
            slots: (0..CACHE_SLOTS)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        }
    }

    fn slot(&self, ip: u32) -> &std::sync::atomic::AtomicU64 {
        // Fibonacci hashing: the top bits of the product pick the slot.
        let i = (ip.wrapping_mul(0x9E37_79B1) >> (32 - CACHE_SLOTS.trailing_zeros())) as usize;
        &self.slots[i]
    }

    /// The question's bits: address, field and whether anonymity is asked.
    fn question(ip: u32, field: CountryField, anonymity: bool) -> u64 {
        let mut q = u64::from(ip) | VALID;
        if field == CountryField::RegisteredCountry {
            q |= REGISTERED;
        }
        if anonymity {
            q |= ASKED_ANONYMITY;
        }
        q
    }

    fn get(&self, ip: u32, field: CountryField, anonymity: bool) -> Option<GeoAnswer> {
        let q = AnswerCache::question(ip, field, anonymity);
        let e = self.slot(ip).load(std::sync::atomic::Ordering::Relaxed);
        if e & (VALID | REGISTERED | ASKED_ANONYMITY | 0xffff_ffff) != q {
            return None;
        }
        let country = if e & HAS_COUNTRY != 0 {
            let code = [(e >> 40) as u8, (e >> 48) as u8];
            Some(Country::parse(std::str::from_utf8(&code).ok()?).ok()?)
        } else {
            None
        };
        Some(GeoAnswer {
            country,
            anonymous: e & ANONYMOUS != 0,
        })
    }

    fn put(&self, ip: u32, field: CountryField, anonymity: bool, a: GeoAnswer) {
        let mut e = AnswerCache::question(ip, field, anonymity);
        if let Some(c) = a.country {
            let b = c.as_str().as_bytes();
            if b.len() != 2 {
                return;
            }
            e |= HAS_COUNTRY | u64::from(b[0]) << 40 | u64::from(b[1]) << 48;
        }
        if a.anonymous {
            e |= ANONYMOUS;
        }
        self.slot(ip).store(e, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("database_type", &self.reader.metadata().database_type)
            .field("build_epoch", &self.reader.metadata().build_epoch)
            .finish()
    }
}

/// A database that could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[error("GeoIP database {what}: {source}")]
pub struct GeoIpError {
    what: String,
    #[source]
    source: maxminddb::MaxMindDbError,
}

impl GeoIp {
    /// Opens a database file (read fully into memory, so a file replaced on disk later does not
    /// change what this instance answers).
    pub fn open(path: &Path) -> Result<GeoIp, GeoIpError> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|source| GeoIpError {
            what: path.display().to_string(),
            source,
        })?;
        GeoIp::check(reader, path.display().to_string())
    }

    /// Reads a database from bytes.
    pub fn from_bytes(bytes: Vec<u8>, what: &str) -> Result<GeoIp, GeoIpError> {
        let reader = maxminddb::Reader::from_source(bytes).map_err(|source| GeoIpError {
            what: what.to_owned(),
            source,
        })?;
        GeoIp::check(reader, what.to_owned())
    }

    fn check(reader: maxminddb::Reader<Vec<u8>>, what: String) -> Result<GeoIp, GeoIpError> {
        let geo = GeoIp {
            description: format!("{} ({})", reader.metadata().database_type, what),
            build_date: civil_date(reader.metadata().build_epoch),
            reader,
            cache: AnswerCache::new(),
        };
        // A probe lookup walks the tree and decodes a record: a corrupt file fails here rather
        // than on the request path.
        for probe in ["1.1.1.1", "8.8.8.8", "2001:4860::1"] {
            if let Ok(ip) = probe.parse() {
                geo.lookup_checked(ip).map_err(|source| GeoIpError {
                    what: geo.description.clone(),
                    source,
                })?;
            }
        }
        Ok(geo)
    }

    fn lookup_checked(&self, ip: IpAddr) -> Result<Option<Country>, maxminddb::MaxMindDbError> {
        self.lookup_field(ip, CountryField::Country, false)
            .map(|a| a.and_then(|a| a.country))
    }

    fn lookup_field(
        &self,
        ip: IpAddr,
        field: CountryField,
        anonymity: bool,
    ) -> Result<Option<GeoAnswer>, maxminddb::MaxMindDbError> {
        match geo_address(ip) {
            Some(ip) => self.lookup_mapped(ip, field, anonymity),
            None => Ok(None),
        }
    }

    /// [`Self::lookup_field`] of an address [`geo_address`] has already mapped.
    fn lookup_mapped(
        &self,
        ip: IpAddr,
        field: CountryField,
        anonymity: bool,
    ) -> Result<Option<GeoAnswer>, maxminddb::MaxMindDbError> {
        let result = self.reader.lookup(ip)?;
        if !result.has_data() {
            return Ok(None);
        }
        let key = match field {
            CountryField::Country => "country",
            CountryField::RegisteredCountry => "registered_country",
        };
        let path = [PathElement::Key(key), PathElement::Key("iso_code")];
        let code: Option<&str> = result.decode_path(&path)?;
        let code = match code {
            Some(c) => Some(c),
            // DBs with a flat `country_code` field (several free country DBs).
            None => result.decode_path(&[PathElement::Key("country_code")])?,
        };
        let flag = |path: &[PathElement<'_>]| -> bool {
            matches!(result.decode_path::<bool>(path), Ok(Some(true)))
        };
        let anonymous = anonymity
            && (flag(&[
                PathElement::Key("traits"),
                PathElement::Key("is_anonymous_proxy"),
            ]) || flag(&[PathElement::Key("traits"), PathElement::Key("is_anonymous")])
                || flag(&[PathElement::Key("is_anonymous")]));
        Ok(Some(GeoAnswer {
            country: code.and_then(|c| Country::parse(c).ok()),
            anonymous,
        }))
    }

    /// The country of `ip`; `None` when the database has no country for it or the record is
    /// unreadable (both resolve to "unknown", which is the strictest case).
    pub fn lookup(&self, ip: IpAddr) -> Option<Country> {
        self.lookup_checked(ip).ok().flatten()
    }

    /// The country of `ip` from the chosen field, and whether the database marks the address
    /// as an anonymiser (`traits.is_anonymous_proxy`, `traits.is_anonymous` or a top-level
    /// `is_anonymous`, as MaxMind's Country, City and Anonymous-IP databases do). The
    /// anonymity fields are read only when `anonymity` is asked for.
    pub fn answer(&self, ip: IpAddr, field: CountryField, anonymity: bool) -> GeoAnswer {
        let Some(ip) = geo_address(ip) else {
            return GeoAnswer::default();
        };
        let v4 = match ip {
            IpAddr::V4(v4) => Some(u32::from(v4)),
            IpAddr::V6(_) => None,
        };
        if let Some(ip) = v4
            && let Some(a) = self.cache.get(ip, field, anonymity)
        {
            return a;
        }
        match self.lookup_mapped(ip, field, anonymity) {
            Ok(found) => {
                let a = found.unwrap_or_default();
                if let Some(ip) = v4 {
                    self.cache.put(ip, field, anonymity, a);
                }
                a
            }
            Err(_) => GeoAnswer::default(),
        }
    }

    /// [`GeoIp::answer`] straight from the database, without the cache.
    pub fn answer_uncached(&self, ip: IpAddr, field: CountryField, anonymity: bool) -> GeoAnswer {
        self.lookup_field(ip, field, anonymity)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// The database's build date (UTC), `YYYY-MM-DD`, for decision records.
    pub fn build_date(&self) -> &str {
        &self.build_date
    }

    /// The database's build time (seconds since the epoch), for decision records.
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    pub fn description(&self) -> &str {
        &self.description
    }
}

/// The UTC date of a Unix time, `YYYY-MM-DD`.
fn civil_date(epoch: u64) -> String {
    domicile_policy::Date::from_unix_seconds(i64::try_from(epoch).unwrap_or(i64::MAX)).to_string()
}

/// Builds a small country database in memory, e.g. for the demo and for tests.
pub fn build_country_db(entries: &[(&str, &str)], database_type: &str) -> Result<Vec<u8>, String> {
    #[derive(serde::Serialize)]
    struct CountryRec<'a> {
        iso_code: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Rec<'a> {
        country: CountryRec<'a>,
    }
    let mut w = mmdb_writer::Writer::new(database_type);
    for (net, code) in entries {
        let net: ipnet::IpNet = net.parse().map_err(|e| format!("{net}: {e}"))?;
        w.insert(
            net,
            &Rec {
                country: CountryRec { iso_code: code },
            },
        )
        .map_err(|e| format!("{net}: {e}"))?;
    }
    w.to_bytes().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_addr::canonical;

    /// The cache answers exactly what the database answers, for every question, on repeated
    /// and colliding addresses (8,192 addresses share 4,096 slots), IPv4-mapped IPv6 included.
    #[test]
    fn cached_answers_equal_the_database() {
        let bytes = build_country_db(
            &[
                ("10.0.0.0/9", "DE"),
                ("10.128.0.0/10", "US"),
                ("192.0.2.0/24", "JP"),
            ],
            "Test-Country",
        )
        .unwrap();
        let geo = GeoIp::from_bytes(bytes, "test").unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for round in 0..2 {
            for n in 0..8192u32 {
                let v4 = std::net::Ipv4Addr::from(0x0a00_0000 + n * 4099);
                let ips = [
                    IpAddr::V4(v4),
                    IpAddr::V6(v4.to_ipv6_mapped()),
                    IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, (n % 256) as u8)),
                ];
                for ip in ips {
                    for field in [CountryField::Country, CountryField::RegisteredCountry] {
                        for anonymity in [false, true] {
                            let want = geo.answer_uncached(ip, field, anonymity);
                            // The first asking fills the slot (or finds a colliding or
                            // other question there); the second is answered from it.
                            for _ in 0..2 {
                                assert_eq!(
                                    geo.answer(ip, field, anonymity),
                                    want,
                                    "{ip} round {round}"
                                );
                            }
                            let v4 = match canonical(ip) {
                                IpAddr::V4(v4) => u32::from(v4),
                                IpAddr::V6(_) => unreachable!("every address here is IPv4"),
                            };
                            assert_eq!(geo.cache.get(v4, field, anonymity), Some(want), "{ip}");
                            seen.insert(want.country.map(|c| c.to_string()));
                        }
                    }
                }
            }
        }
        // The addresses cover the three networks and addresses outside them.
        assert_eq!(seen.len(), 4, "{seen:?}");
    }

    #[test]
    fn translated_ipv6_addresses_are_looked_up_as_the_ipv4_they_carry_and_teredo_as_unknown() {
        let bytes = build_country_db(&[("192.0.2.0/24", "DE")], "Test").unwrap();
        let geo = GeoIp::from_bytes(bytes, "test").unwrap();
        let de = Some(Country::parse("DE").unwrap());
        for ip in [
            "192.0.2.10",
            "::ffff:192.0.2.10",
            "64:ff9b::192.0.2.10",
            "2002:c000:20a::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(geo.lookup(ip), de, "{ip}");
            assert_eq!(
                geo.answer(ip, CountryField::Country, false).country,
                de,
                "{ip}"
            );
        }
        // Teredo: 192.0.2.10 as its server, the client's own address obfuscated.
        let teredo: IpAddr = "2001:0:c000:20a::1".parse().unwrap();
        assert_eq!(geo.lookup(teredo), None);
        // Trust is never widened by an embedded address.
        assert_eq!(
            canonical("2002:c000:20a::1".parse().unwrap()).to_string(),
            "2002:c000:20a::1"
        );
    }

    #[test]
    fn built_db_answers_countries() {
        let bytes = build_country_db(
            &[
                ("192.0.2.0/24", "DE"),
                ("198.51.100.0/24", "US"),
                ("2001:db8::/32", "FR"),
            ],
            "Test-Country",
        )
        .unwrap();
        let geo = GeoIp::from_bytes(bytes, "test").unwrap();
        assert_eq!(
            geo.lookup("192.0.2.77".parse().unwrap())
                .map(|c| c.to_string())
                .as_deref(),
            Some("DE")
        );
        assert_eq!(
            geo.lookup("::ffff:198.51.100.1".parse().unwrap())
                .map(|c| c.to_string())
                .as_deref(),
            Some("US")
        );
        assert_eq!(
            geo.lookup("2001:db8::1".parse().unwrap())
                .map(|c| c.to_string())
                .as_deref(),
            Some("FR")
        );
        assert_eq!(geo.lookup("203.0.113.1".parse().unwrap()), None);
    }

    /// Records that name a country only partly: the configured field (`country` by default,
    /// or `registered_country`) is read and nothing else, so a record with only the other
    /// one, only `represented_country` (a military base) or only a continent gives no
    /// country. The address is then unknown, and personal data fails closed.
    #[test]
    fn partial_records_give_only_the_configured_field() {
        let mut w = mmdb_writer::Writer::new("Test-Country");
        let rec = |v: serde_json::Value, net: &str, w: &mut mmdb_writer::Writer| {
            w.insert(net.parse::<ipnet::IpNet>().unwrap(), &v).unwrap();
        };
        rec(
            serde_json::json!({"registered_country": {"iso_code": "US"}}),
            "192.0.2.0/25",
            &mut w,
        );
        rec(
            serde_json::json!({"represented_country": {"iso_code": "US", "type": "military"}}),
            "192.0.2.128/25",
            &mut w,
        );
        rec(
            serde_json::json!({"continent": {"code": "EU"}}),
            "198.51.100.0/24",
            &mut w,
        );
        rec(
            serde_json::json!({"country": {"iso_code": "DE"}, "registered_country": {"iso_code": "US"}}),
            "203.0.113.0/24",
            &mut w,
        );
        let geo = GeoIp::from_bytes(w.to_bytes().unwrap(), "test").unwrap();
        let country = |ip: &str, field| {
            geo.answer_uncached(ip.parse().unwrap(), field, false)
                .country
                .map(|c| c.to_string())
        };
        assert_eq!(country("192.0.2.1", CountryField::Country), None);
        assert_eq!(
            country("192.0.2.1", CountryField::RegisteredCountry).as_deref(),
            Some("US")
        );
        for field in [CountryField::Country, CountryField::RegisteredCountry] {
            assert_eq!(country("192.0.2.200", field), None);
            assert_eq!(country("198.51.100.1", field), None);
        }
        assert_eq!(
            country("203.0.113.1", CountryField::Country).as_deref(),
            Some("DE")
        );
        assert_eq!(
            country("203.0.113.1", CountryField::RegisteredCountry).as_deref(),
            Some("US")
        );
    }

    #[test]
    fn build_dates_are_civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(951_782_400), "2000-02-29");
        assert_eq!(civil_date(1_795_910_466), "2026-11-29");
    }

    #[test]
    fn corrupt_db_is_refused() {
        let mut bytes = build_country_db(&[("192.0.2.0/24", "DE")], "Test-Country").unwrap();
        let keep = bytes.len() / 3;
        bytes.drain(..keep);
        assert!(GeoIp::from_bytes(bytes, "truncated").is_err());
        assert!(GeoIp::from_bytes(b"not a database".to_vec(), "junk").is_err());
    }
}
