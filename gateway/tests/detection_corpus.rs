//! Detection quality on the labelled corpus (`domicile_gateway::inspect::corpus`): every body
//! goes through the inspection entry point as a request would, and recall and precision are
//! reported per category, per identifier kind, per evasion and per locale.
//!
//! Run with `-- --nocapture` to see the report. The bars: recall of checksummed identifiers
//! (IBAN, cards, national identifiers) at least 99.5 %, of email and phone at least 99 %, and
//! at least 99 % of the bodies without personal data with no finding at all.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use domicile_gateway::inspect::corpus::{self, Class, Format, Sample};
use domicile_gateway::inspect::{InspectStatus, Inspection, inspect_body};
use http::{HeaderMap, header};

const SEED: u64 = 0x00d0_c11e;
const PER_LOCALE: usize = 30;

fn inspect(s: &Sample) -> Inspection {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, s.content_type.parse().unwrap());
    let mut i = Inspection::default();
    i.status = inspect_body(&headers, &s.body, &mut i);
    i
}

#[derive(Default)]
struct Tally {
    expected: usize,
    found: usize,
    /// Findings of the category at a location no label put it.
    false_positives: usize,
    country_expected: usize,
    country_right: usize,
}

impl Tally {
    fn recall(&self) -> f64 {
        if self.expected == 0 {
            1.0
        } else {
            self.found as f64 / self.expected as f64
        }
    }
    fn precision(&self) -> f64 {
        let tp = self.found;
        if tp + self.false_positives == 0 {
            1.0
        } else {
            tp as f64 / (tp + self.false_positives) as f64
        }
    }
}

#[test]
fn recall_and_precision_on_the_corpus() {
    let corpus = corpus::generate(SEED, PER_LOCALE);
    assert!(corpus.locales().len() >= 12, "{:?}", corpus.locales());

    let mut by_category: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut by_kind: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut by_evasion: BTreeMap<(&str, Class), Tally> = BTreeMap::new();
    let mut by_locale: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut by_class: BTreeMap<Class, Tally> = BTreeMap::new();
    let mut clean = (0usize, 0usize);
    let mut clean_hits: BTreeMap<String, usize> = BTreeMap::new();
    let mut misses: Vec<String> = Vec::new();

    for s in &corpus.samples {
        let found = inspect(s);
        assert_eq!(
            found.status,
            InspectStatus::Complete,
            "{} {}",
            s.locale,
            s.format.as_str()
        );
        if s.labels.is_empty() {
            clean.0 += 1;
            if !found.findings.is_empty() {
                clean.1 += 1;
                for f in &found.findings {
                    *clean_hits
                        .entry(format!("{} {} at {}", s.locale, f.detector, f.location))
                        .or_default() += 1;
                }
            }
            continue;
        }
        for l in &s.labels {
            let hit = found
                .findings
                .iter()
                .find(|f| f.category == l.category && f.location == l.location);
            let tallies = [
                by_category.entry(l.category.as_str()).or_default(),
                by_kind.entry(l.kind).or_default(),
                by_evasion.entry((s.evasion.as_str(), l.class)).or_default(),
                by_locale.entry(s.locale).or_default(),
                by_class.entry(l.class).or_default(),
            ];
            for t in tallies {
                t.expected += 1;
                if let Some(f) = hit {
                    t.found += 1;
                    if l.country.is_some() {
                        t.country_expected += 1;
                        if f.country == l.country {
                            t.country_right += 1;
                        }
                    }
                }
            }
            if hit.is_none() {
                misses.push(format!(
                    "{} {} {} {}: {} at {} not found (found: {:?})",
                    s.locale,
                    s.format.as_str(),
                    s.evasion.as_str(),
                    l.kind,
                    l.category.as_str(),
                    l.location,
                    found
                        .findings
                        .iter()
                        .map(|f| (f.category.as_str(), f.location.as_str()))
                        .collect::<Vec<_>>()
                ));
            }
        }
        for f in &found.findings {
            let labelled = s
                .labels
                .iter()
                .any(|l| l.category == f.category && l.location == f.location);
            if !labelled {
                by_category
                    .entry(f.category.as_str())
                    .or_default()
                    .false_positives += 1;
            }
        }
    }

    let pct = |x: f64| format!("{:6.2} %", 100.0 * x);
    println!(
        "corpus: {} samples, seed {SEED:#x}, {} locales: {:?}",
        corpus.samples.len(),
        corpus.locales().len(),
        corpus.locales()
    );
    println!(
        "\n{:<24} {:>8} {:>10} {:>11} {:>9}",
        "category", "labels", "recall", "precision", "country"
    );
    for (name, t) in &by_category {
        let country = if t.country_expected > 0 {
            pct(t.country_right as f64 / t.country_expected as f64)
        } else {
            "-".into()
        };
        println!(
            "{name:<24} {:>8} {:>10} {:>11} {country:>9}",
            t.expected,
            pct(t.recall()),
            pct(t.precision())
        );
    }
    println!(
        "\n{:<24} {:>8} {:>10} {:>9}",
        "kind", "labels", "recall", "country"
    );
    for (name, t) in &by_kind {
        let country = if t.country_expected > 0 {
            pct(t.country_right as f64 / t.country_expected as f64)
        } else {
            "-".into()
        };
        println!(
            "{name:<24} {:>8} {:>10} {country:>9}",
            t.expected,
            pct(t.recall())
        );
    }
    println!(
        "\n{:<32} {:>8} {:>10}",
        "evasion (class)", "labels", "recall"
    );
    for ((e, c), t) in &by_evasion {
        if *c != Class::Other {
            println!(
                "{:<32} {:>8} {:>10}",
                format!("{e} ({c:?})"),
                t.expected,
                pct(t.recall())
            );
        }
    }
    println!("\n{:<10} {:>8} {:>10}", "locale", "labels", "recall");
    for (name, t) in &by_locale {
        println!("{name:<10} {:>8} {:>10}", t.expected, pct(t.recall()));
    }
    let clean_precision = 1.0 - clean.1 as f64 / clean.0.max(1) as f64;
    println!(
        "\nbodies without personal data: {} inspected, {} with a finding: {} clean",
        clean.0,
        clean.1,
        pct(clean_precision)
    );
    for (what, n) in clean_hits.iter().take(20) {
        println!("  false positive: {what} ({n})");
    }
    for m in misses.iter().take(30) {
        println!("  miss: {m}");
    }

    let checksummed = &by_class[&Class::Checksummed];
    let contact = &by_class[&Class::Contact];
    for kind in ["email", "phone"] {
        let t = &by_kind[kind];
        assert!(
            t.recall() >= 0.99,
            "{kind} recall {} under 99 %",
            pct(t.recall())
        );
    }
    assert!(
        checksummed.recall() >= 0.995,
        "checksummed identifier recall {} under 99.5 %",
        pct(checksummed.recall())
    );
    assert!(
        contact.recall() >= 0.99,
        "email and phone recall {} under 99 %",
        pct(contact.recall())
    );
    assert!(
        clean_precision >= 0.99,
        "{} of bodies without personal data are clean, under 99 %",
        pct(clean_precision)
    );
    // Within labelled bodies too: findings of a category where no label put one, and the
    // country named for values that carry one.
    for (name, t) in &by_category {
        assert!(
            t.precision() >= 0.98,
            "{name} precision {} under 98 %",
            pct(t.precision())
        );
        if t.country_expected > 0 {
            let right = t.country_right as f64 / t.country_expected as f64;
            assert!(
                right >= 0.90,
                "{name} country right {} under 90 %",
                pct(right)
            );
        }
    }
    assert!(checksummed.expected > 500 && contact.expected > 500 && clean.0 > 500);
}

#[test]
fn the_corpus_lists_its_personal_values() {
    let corpus = corpus::generate(SEED, 2);
    let values = corpus.personal_values();
    // The listed values are what the bodies carry: in every JSON body sent without evasions,
    // each labelled value stands in the body as generated (JSON-escaped), up to the spaces and
    // dashes that group its digits.
    let bare = |t: &str| -> String { t.chars().filter(|c| !matches!(c, ' ' | '-')).collect() };
    let mut checked = 0;
    for s in corpus
        .samples
        .iter()
        .filter(|s| s.format == Format::Json && s.evasion == corpus::Evasion::None)
    {
        let body = bare(&String::from_utf8_lossy(&s.body));
        for l in &s.labels {
            assert!(values.contains(&l.value));
            let escaped = serde_json::to_string(&l.value).unwrap();
            let escaped = bare(&escaped[1..escaped.len() - 1]);
            assert!(
                body.contains(&escaped),
                "{} {}: {:?} not in {body}",
                s.locale,
                l.location,
                l.value
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
    assert!(values.iter().all(|v| !v.is_empty()));
    // Bodies without personal data carry none of the values.
    for s in corpus.samples.iter().filter(|s| s.labels.is_empty()) {
        let body = String::from_utf8_lossy(&s.body);
        assert!(
            values
                .iter()
                .filter(|v| v.len() > 6)
                .all(|v| !body.contains(v.as_str())),
            "{body}"
        );
    }
}
