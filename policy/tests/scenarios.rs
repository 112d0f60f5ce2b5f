//! Runs the legal scenarios in `scenarios.toml` against the built-in knowledge base.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use domicile_policy::cases::parse_cases;
use domicile_policy::{Engine, EngineOptions, KnowledgeBase};

#[test]
fn legal_scenarios() {
    let kb = Arc::new(KnowledgeBase::builtin().expect("built-in knowledge base loads"));
    let engine = Engine::new(kb, EngineOptions::default());
    let file = parse_cases(include_str!("scenarios.toml")).expect("scenarios parse");
    assert!(file.cases.len() >= 30);
    let failures: Vec<String> = file
        .cases
        .iter()
        .map(|c| c.run(&engine))
        .filter(|r| !r.passed)
        .map(|r| {
            format!(
                "{}: {}\n  trail: {:#?}",
                r.name,
                r.mismatch.unwrap_or_default(),
                r.decision.reasons
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} scenario(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn privacy_shield_decision_names_schrems_ii_and_re_evaluation_date() {
    let kb = Arc::new(KnowledgeBase::builtin().unwrap());
    let engine = Engine::new(kb, EngineOptions::default());
    let file = parse_cases(include_str!("scenarios.toml")).unwrap();
    let allow = file
        .cases
        .iter()
        .find(|c| c.name.starts_with("B1.1"))
        .unwrap()
        .run(&engine);
    assert_eq!(
        allow
            .decision
            .re_evaluate_at
            .map(|d| d.to_string())
            .as_deref(),
        Some("2020-07-16")
    );
    let block = file
        .cases
        .iter()
        .find(|c| c.name.starts_with("B1.2 DE"))
        .unwrap()
        .run(&engine);
    assert!(
        block
            .decision
            .reasons
            .iter()
            .any(|r| r.rule.as_ref() == "eu.adequacy.us.privacy-shield"
                && r.finding.contains("C-311/18")),
        "{:#?}",
        block.decision.reasons
    );
}
