//! The engine's cost per decision, as the gateway asks it: the knowledge base is loaded and
//! indexed once, then each request is lookups, the trail's text and the decision.
//!
//! Run: `cargo bench -p domicile-policy --bench engine` (allocations are counted too).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use divan::{AllocProfiler, Bencher, black_box};
use domicile_policy::{
    Assessment, Category, Certification, Contract, Country, Date, Destination, Engine,
    EngineOptions, Entity, Facts, KnowledgeBase, Query, Role, Sector, Validity,
};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

fn engine() -> Engine {
    Engine::new(
        Arc::new(KnowledgeBase::builtin().unwrap()),
        EngineOptions::default(),
    )
}

fn c(s: &str) -> Country {
    Country::parse(s).unwrap()
}

fn d(s: &str) -> Date {
    s.parse().unwrap()
}

/// A US processor with a DPF certification.
fn us_entity() -> Entity {
    let mut e = Entity::new("acme-us", c("US"));
    e.sector = Some(Sector::Commercial);
    e.role = Some(Role::Processor);
    e.certifications.push(Certification {
        scheme: "EU-US-DPF".into(),
        validity: Validity {
            from: d("2024-03-01"),
            to: None,
        },
        hr: false,
    });
    e
}

const AT: i64 = 1_795_000_000; // 2026-11-18, as the gateway passes the instant.

fn run(b: Bencher, subject: &[Country], to: &Entity, facts: Facts<'_>) {
    let engine = engine();
    let categories = [Category::Email, Category::Name];
    b.bench_local(|| {
        let q = Query {
            jurisdictions: black_box(subject),
            citizenship: &[],
            incomplete: false,
            categories: &categories,
            purpose: "storage",
            destination: Destination {
                region: "us-east",
                country: to.country,
                entity: to,
            },
            at: d("2026-11-18"),
            instant: Some(AT),
            facts,
        };
        black_box(engine.evaluate(black_box(&q)))
    });
}

/// The demo's home route: an EU subject stored in the EU (not a transfer).
#[divan::bench]
fn eu_subject_to_eu_region(b: Bencher) {
    let eu = Entity::new("acme-eu", c("DE"));
    run(b, &[c("DE")], &eu, Facts::default());
}

/// The typical cross-border request: an EU subject's data to a DPF-certified US processor.
#[divan::bench]
fn eu_subject_to_dpf_certified_us(b: Bencher) {
    run(b, &[c("DE")], &us_entity(), Facts::default());
}

/// Conflicting evidence {DE, US}: GDPR, US federal law and the CCPA all evaluated.
#[divan::bench]
fn two_jurisdictions_three_regimes(b: Bencher) {
    run(b, &[c("DE"), c("US")], &us_entity(), Facts::default());
}

/// No adequacy in scope: the engine walks the instruments, then a contract with its TIA gate.
#[divan::bench]
fn eu_subject_to_us_under_scc_with_tia(b: Bencher) {
    let mut us = us_entity();
    us.certifications.clear();
    let mut exporter = Entity::new("acme-eu", c("DE"));
    exporter.role = Some(Role::Controller);
    let contracts = [Contract {
        id: "scc".into(),
        instrument: "EU-SCC-2021/914".into(),
        module: Some(2),
        exporter: "acme-eu".into(),
        importer: "acme-us".into(),
        signed: d("2024-02-01"),
        assessment: Some(Assessment {
            id: "TIA-1".into(),
            date: d("2024-01-20"),
            review: Some(d("2027-01-20")),
            impingement: true,
        }),
        measures: vec!["encryption-keys-held:EEA".into()],
        notified: None,
    }];
    let facts = Facts {
        exporter: Some(&exporter),
        contracts: &contracts,
        ..Facts::default()
    };
    run(b, &[c("DE")], &us, facts);
}

/// Loading and indexing the built-in knowledge base: done once per config, never per request.
#[divan::bench]
fn load_knowledge_base() -> KnowledgeBase {
    KnowledgeBase::builtin().unwrap()
}
