//! The privacy officer's commands on the policy: `explain` across the dates the law changed,
//! and `check` on contracts, roles, purposes and overrides.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_domicile");

fn domicile(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// `explain` of one transfer on one date; the rest of the arguments are appended.
fn explain_at(subject: &str, purpose: &str, to: &str, at: &str, more: &[&str]) -> String {
    let mut args = vec![
        "explain",
        "--subject",
        subject,
        "--data",
        "email",
        "--purpose",
        purpose,
        "--to",
        to,
        "--at",
        at,
    ];
    args.extend_from_slice(more);
    let (code, out) = domicile(&args);
    assert_eq!(code, 0, "{out}");
    out
}

const POLICY: &str = r#"
[policy]
exporter = "acme-eu"

[[entities]]
id = "acme-eu"
country = "DE"
sector = "commercial"
role = "controller"

[[entities]]
id = "acme-us"
country = "US"
sector = "commercial"
role = "processor"

[[regions]]
id = "eu-central"
country = "DE"
entity = "acme-eu"
serves = ["EEA"]
backends = [{ url = "http://127.0.0.1:9" }]

[[regions]]
id = "us-east"
country = "US"
entity = "acme-us"
backends = [{ url = "http://127.0.0.1:9" }]

[[routes]]
id = "customers"
path = "/customers"
purpose = "storage"
placement = "home"

[[contracts]]
id = "legacy-2019"
instrument = "EU-SCC-2010/87"
exporter = "acme-eu"
importer = "acme-us"
signed = "2019-05-01"
tia = { id = "TIA-2020-08", date = "2020-08-01" }
"#;

#[test]
fn explain_at_changes_across_privacy_shield_dpf_uk_renewal_and_legacy_scc_dates() {
    let ps = ["--certified", "EU-US-PrivacyShield"];
    let out = explain_at("DE", "storage", "US", "2020-07-15", &ps);
    assert!(out.contains("verdict: allow\n"), "{out}");
    assert!(out.contains("basis: adequacy:EU/2016/1250"), "{out}");
    let out = explain_at("DE", "storage", "US", "2020-07-16", &ps);
    assert!(out.contains("verdict: block"), "{out}");
    assert!(out.contains("C-311/18"), "{out}");

    let dpf = ["--certified", "EU-US-DPF"];
    let out = explain_at("NL", "storage", "US", "2023-07-09", &dpf);
    assert!(out.contains("verdict: block"), "{out}");
    let out = explain_at("NL", "storage", "US", "2023-07-10", &dpf);
    assert!(out.contains("basis: adequacy:EU/2023/1795"), "{out}");

    // The UK decisions excluded immigration control until the renewal of 2025-12-19.
    let out = explain_at("ES", "immigration_control", "GB", "2025-12-18", &[]);
    assert!(out.contains("verdict: block"), "{out}");
    assert!(out.contains("excludes transfers for the purpose"), "{out}");
    let out = explain_at("ES", "immigration_control", "GB", "2025-12-19", &[]);
    assert!(out.contains("basis: adequacy:EU/2025/2574"), "{out}");
    assert!(out.contains("re-evaluate at: 2031-12-27"), "{out}");

    // A legacy SCC contract on file is a basis until 2022-12-27 (exclusive).
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("policy.toml");
    std::fs::write(&f, POLICY).unwrap();
    let config = ["--config", f.to_str().unwrap()];
    let out = explain_at("DE", "storage", "us-east", "2022-12-26", &config);
    assert!(out.contains("verdict: allow_with_conditions"), "{out}");
    assert!(out.contains("basis: scc:EU/2010/87"), "{out}");
    assert!(out.contains("re-evaluate at: 2022-12-27"), "{out}");
    assert!(out.contains("  - contract legacy-2019"), "{out}");
    let out = explain_at("DE", "storage", "us-east", "2022-12-28", &config);
    assert!(out.contains("verdict: block"), "{out}");
    assert!(out.contains("2021/914 Art 4"), "{out}");
}

#[test]
fn explain_json_carries_the_conditions_and_the_trail() {
    let out = explain_at(
        "FR",
        "processing",
        "IN",
        "2026-11-28",
        &[
            "--occasional",
            "--evidence",
            "consent:explicit_transfer",
            "--json",
        ],
    );
    let d: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    // No exporter on file: Art 49(1)(a) is closed to public authorities, so it fails closed.
    assert_eq!(d["verdict"], "block", "{d}");
    assert!(
        d["reasons"]
            .to_string()
            .contains("the exporter is not on file"),
        "{d}"
    );
}

#[test]
fn check_reports_policy_problems_with_file_line_column_and_key() {
    let bad = POLICY
        .replace(
            "exporter = \"acme-eu\"\n\n[[entities]]",
            "exporter = \"ghost\"\n\n[[entities]]",
        )
        .replace(
            "purpose = \"storage\"",
            "purpose = \"stroage\"\ncontracts = [\"nope\"]",
        )
        .replace(
            "role = \"processor\"",
            "role = \"controller\"\ncertifications = [{ scheme = \"EU-US-DFP\", valid_from = \"2024-01-01\" }]",
        )
        + r#"
[[contracts]]
id = "scc-2024"
instrument = "EU-SCC-2021/914"
module = 2
exporter = "acme-eu"
importer = "acme-us"
signed = "2024-02-01"
notified = "2024-01-01"
tia = { id = "T", date = "2024-01-20", review = "2023-01-20" }

[[contracts]]
id = "odd"
instrument = "EU-SCC-9999"
exporter = "acme-xx"
importer = "acme-us"
signed = "2024-02-01"

[[overrides]]
id = "loosen"
effect = "allow"
destinations = ["US"]

[[overrides]]
id = "no-ap"
effect = "block"
regions = ["ap-south"]
"#;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, &bad).unwrap();
    let (code, out) = domicile(&["check", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (needle, key, message) in [
        (
            "exporter = \"ghost\"",
            "policy.exporter",
            "no entity with id \"ghost\"",
        ),
        (
            "purpose = \"stroage\"",
            "routes[0].purpose",
            "unknown purpose \"stroage\"",
        ),
        (
            "contracts = [\"nope\"]",
            "routes[0].contracts[0]",
            "no contract with id \"nope\"",
        ),
        (
            "module = 2",
            "contracts[1].module",
            "module 2 does not match the roles: exporter acme-eu is a controller, importer acme-us is a controller, which is module 1",
        ),
        (
            "notified = \"2024-01-01\"",
            "contracts[1].notified",
            "before the contract was signed",
        ),
        (
            "review = \"2023-01-20\"",
            "contracts[1].tia.review",
            "is not after the assessment's date",
        ),
        (
            "instrument = \"EU-SCC-9999\"",
            "contracts[2].instrument",
            "unknown instrument \"EU-SCC-9999\"",
        ),
        (
            "exporter = \"acme-xx\"",
            "contracts[2].exporter",
            "no entity with id \"acme-xx\"",
        ),
        (
            "effect = \"allow\"",
            "overrides[0].effect",
            "can only tighten the law",
        ),
    ] {
        let prefix = format!("{}:{}:", f.display(), line_of(needle));
        assert!(
            out.lines().any(|l| l.starts_with(&prefix)
                && l.contains(&format!(": {key}: "))
                && l.contains(message)),
            "no line {prefix}...{key}: {message} in\n{out}"
        );
    }
}

#[test]
fn policy_rows_lists_safeguards_derogations_localisation_and_signals() {
    let (code, out) = domicile(&["policy", "rows", "--regime", "RU-152FZ", "--json"]);
    assert_eq!(code, 0, "{out}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = |id: &str| {
        rows.iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {out}"))
    };
    let old = row("ru.152fz.art18-5.242fz");
    assert_eq!(old["kind"], "localisation");
    assert_eq!(old["valid_from"], "2015-09-01");
    assert_eq!(old["valid_to"], "2025-07-01");
    assert!(old["ended_by"].as_str().unwrap().contains("23-FZ"));
    assert_eq!(row("ru.152fz.art18-5.23fz")["valid_from"], "2025-07-01");
    let rkn = row("ru.rkn-notification");
    assert_eq!(rkn["kind"], "safeguard");
    assert_eq!(rkn["valid_from"], "2023-03-01");
    assert_eq!(rkn["source"], "S36");

    let (_, out) = domicile(&[
        "policy",
        "rows",
        "--at",
        "2024-08-01",
        "--regime",
        "TR-KVKK",
    ]);
    assert!(out.contains("tr.old-art9.explicit-consent"), "{out}");
    let (_, out) = domicile(&[
        "policy",
        "rows",
        "--at",
        "2024-10-01",
        "--regime",
        "TR-KVKK",
    ]);
    assert!(!out.contains("tr.old-art9.explicit-consent"), "{out}");
    assert!(out.contains("tr.scc"), "{out}");
    let (_, out) = domicile(&["policy", "rows", "--regime", "US-CA-CCPA"]);
    assert!(
        out.contains("us-ca.ccpa.gpc") && out.contains("opt_out"),
        "{out}"
    );
}

#[test]
fn policy_test_with_a_config_applies_its_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("policy.toml");
    std::fs::write(
        &config,
        format!(
            "{POLICY}\n[[overrides]]\nid = \"no-health-abroad\"\neffect = \"block\"\ncategories = [\"health\"]\n"
        ),
    )
    .unwrap();
    let cases = dir.path().join("cases.toml");
    std::fs::write(
        &cases,
        r#"
[[case]]
name = "health data to CH with explicit consent is blocked by our own rule"
subject = ["DE"]
data = ["health"]
purpose = "storage"
to = "CH"
evidence = ["art9:9_2_a"]
at = "2026-11-28"
expect = "block"
reason_code = "policy_override"
"#,
    )
    .unwrap();
    let (code, out) = domicile(&["policy", "test", cases.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("verdict allow (expected block)"), "{out}");
    let (code, out) = domicile(&[
        "policy",
        "test",
        "--config",
        config.to_str().unwrap(),
        cases.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 passed, 0 failed"), "{out}");
}
