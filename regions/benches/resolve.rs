//! Resolver cost per request: the client address through a trusted proxy, its GeoIP country,
//! and the resolution of the evidence into plausible jurisdictions.
//!
//! `cargo bench -p domicile-regions --bench resolve`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::IpAddr;

use domicile_policy::Country;
use domicile_regions::geoip::{CountryField, GeoIp, build_country_db};
use domicile_regions::{
    Evidence, EvidenceKind, EvidenceSource, Precedence, Resolution, TrustedProxies,
};

fn main() {
    divan::main();
}

fn geo() -> GeoIp {
    // A table of a realistic shape: a few thousand networks, so the tree has depth.
    let mut rows: Vec<(String, &str)> = Vec::new();
    let codes = ["DE", "US", "FR", "JP", "GB", "BR", "IN", "CH"];
    for a in 1u32..=223 {
        for b in (0u32..=255).step_by(16) {
            rows.push((format!("{a}.{b}.0.0/12"), codes[((a + b) % 8) as usize]));
        }
    }
    rows.push(("198.51.100.0/24".into(), "US"));
    let refs: Vec<(&str, &str)> = rows.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    GeoIp::from_bytes(build_country_db(&refs, "Bench-Country").unwrap(), "bench").unwrap()
}

/// An address seen before: answered from the per-database cache.
#[divan::bench]
fn geoip_lookup(b: divan::Bencher) {
    let g = geo();
    let ip: IpAddr = "198.51.100.7".parse().unwrap();
    b.bench(|| g.answer(black_box(ip), CountryField::Country, false));
}

/// The database walk itself (a first sight, or an address whose cache slot was taken).
#[divan::bench]
fn geoip_lookup_uncached(b: divan::Bencher) {
    let g = geo();
    let ip: IpAddr = "198.51.100.7".parse().unwrap();
    b.bench(|| g.answer_uncached(black_box(ip), CountryField::Country, false));
}

#[divan::bench]
fn client_address_through_a_trusted_proxy(b: divan::Bencher) {
    let t = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
    let peer: IpAddr = "10.1.2.3".parse().unwrap();
    let xff: &[u8] = b"192.0.2.66, 198.51.100.7, 10.0.0.9";
    b.bench(|| t.resolve(black_box(peer), [black_box(xff)].into_iter()));
}

/// GeoIP + resolution for the common request: one address, no body evidence.
#[divan::bench]
fn geoip_and_resolution(b: divan::Bencher) {
    let g = geo();
    let p = Precedence::default();
    let ip: IpAddr = "198.51.100.7".parse().unwrap();
    b.bench(|| {
        let a = g.answer(black_box(ip), CountryField::Country, false);
        let mut ev = Vec::with_capacity(2);
        if let Some(c) = a.country {
            ev.push(Evidence::new(
                &p,
                EvidenceSource::Geoip,
                EvidenceKind::Country,
                c,
                "client_address",
            ));
        }
        Resolution::resolve(ev, &p)
    });
}

/// The whole resolver for a +49 phone number from a US client behind a trusted proxy: client
/// address, GeoIP, body evidence, resolution into {US, DE}.
#[divan::bench]
fn full_resolution_with_body_evidence(b: divan::Bencher) {
    let g = geo();
    let p = Precedence::default();
    let t = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
    let peer: IpAddr = "10.1.2.3".parse().unwrap();
    let xff: &[u8] = b"198.51.100.7";
    let de = Country::parse("DE").unwrap();
    let location = String::from("/customer/phone");
    b.bench(|| {
        let client = t.resolve(black_box(peer), [black_box(xff)].into_iter());
        let mut ev = Vec::with_capacity(2);
        if let Some(ip) = client.ip
            && let Some(c) = g.answer(ip, CountryField::Country, false).country
        {
            ev.push(Evidence::new(
                &p,
                EvidenceSource::Geoip,
                EvidenceKind::Country,
                c,
                "client_address",
            ));
        }
        let mut e = Evidence::new(
            &p,
            EvidenceSource::Body,
            EvidenceKind::Country,
            de,
            location.clone(),
        );
        e.category = Some("phone");
        e.detector = Some("phone.e164");
        ev.push(e);
        Resolution::resolve(ev, &p)
    });
}

/// A subject-directory read (redb) for a subject that has an entry.
#[divan::bench]
fn directory_lookup(b: divan::Bencher) {
    use domicile_regions::directory::{Directory, DirectoryEntry, EntrySource};
    let dir = std::env::temp_dir().join(format!("domicile-bench-{}", std::process::id()));
    let d = Directory::open(&dir.join("subjects.redb")).unwrap();
    for n in 0..10_000 {
        d.set(
            &format!("subject-{n}"),
            &DirectoryEntry {
                home_region: "eu-central".into(),
                jurisdiction: Country::parse("DE").unwrap(),
                source: EntrySource::Admin,
                updated: 0,
                decision_id: None,
            },
        )
        .unwrap();
    }
    b.bench(|| d.get(black_box("subject-4711")).unwrap());
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Verifying a token (signature, issuer, audience, expiry) and reading its claims, per
/// algorithm, with keys generated here; `cached` is a token seen before.
#[divan::bench(args = ["ES256", "EdDSA", "ES256 cached"])]
fn token_verification(b: divan::Bencher, alg: &str) {
    use domicile_regions::token::{ClaimNames, Issuer, TokenVerifier};
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let (key, algorithm) = match alg {
        "ES256" | "ES256 cached" => (
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
            Algorithm::ES256,
        ),
        _ => (
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
            Algorithm::EdDSA,
        ),
    };
    let dir = std::env::temp_dir().join(format!("domicile-bench-tok-{}-{alg}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("key.pem");
    std::fs::write(&pem, key.public_key_pem()).unwrap();
    let mut issuer = Issuer::new("https://id.example".into(), vec!["domicile".into()]);
    issuer.add_pem_file(&pem, None).unwrap();
    let v = TokenVerifier::new(vec![issuer], ClaimNames::default(), 30);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = serde_json::json!({"iss": "https://id.example", "aud": "domicile", "exp": exp,
        "sub": "user-7", "country": "DE"});
    let pkcs8 = key.serialize_pem();
    let ek = match algorithm {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pkcs8.as_bytes()).unwrap(),
        _ => EncodingKey::from_ed_pem(pkcs8.as_bytes()).unwrap(),
    };
    let token = encode(&Header::new(algorithm), &claims, &ek).unwrap();
    if alg.ends_with("cached") {
        v.verify(&token).unwrap();
        b.bench(|| v.verify(black_box(&token)).unwrap());
    } else {
        b.bench(|| v.verify_uncached(black_box(&token)).unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
