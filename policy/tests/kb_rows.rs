//! Every knowledge-base row carries its provenance, and the README's row list names them all.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use domicile_policy::KnowledgeBase;
use domicile_policy::kb::Provenance;

fn rows(kb: &KnowledgeBase) -> Vec<(String, &Provenance)> {
    let mut out: Vec<(String, &Provenance)> = Vec::new();
    out.extend(kb.zones().iter().map(|r| (r.id.to_string(), &r.provenance)));
    out.extend(
        kb.regimes()
            .iter()
            .map(|r| (r.id.to_string(), &r.provenance)),
    );
    out.extend(
        kb.instruments()
            .iter()
            .map(|r| (r.id.to_string(), &r.provenance)),
    );
    out.extend(
        kb.prohibitions()
            .iter()
            .map(|r| (r.id.to_string(), &r.provenance)),
    );
    out.extend(
        kb.safeguards()
            .iter()
            .map(|r| (r.id.to_string(), &r.provenance)),
    );
    out.extend(
        kb.derogations()
            .iter()
            .map(|r| (r.id.to_string(), &r.provenance)),
    );
    out.extend(
        kb.localisations()
            .iter()
            .map(|r| (r.id.to_string(), &r.provenance)),
    );
    out.extend(
        kb.opt_outs()
            .iter()
            .map(|r| (r.id.to_string(), &r.provenance)),
    );
    out.extend(
        kb.eea_incorporations()
            .iter()
            .map(|r| (r.id.to_string(), &r.provenance)),
    );
    out
}

#[test]
fn every_row_has_a_reference_and_a_source() {
    let kb = KnowledgeBase::builtin().unwrap();
    let all = rows(&kb);
    assert!(all.len() > 90, "{}", all.len());
    for (id, p) in all {
        assert!(!p.reference.trim().is_empty(), "{id} has no reference");
        assert!(!p.source.trim().is_empty(), "{id} has no source");
    }
}

#[test]
fn the_readme_lists_every_row() {
    let readme = include_str!("../../README.md");
    let kb = KnowledgeBase::builtin().unwrap();
    let missing: Vec<String> = rows(&kb)
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| !readme.contains(&format!("| `{id}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's knowledge-base row list lacks {missing:?}; regenerate it from `domicile policy rows --json`"
    );
}
