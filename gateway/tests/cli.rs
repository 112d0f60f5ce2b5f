//! The `domicile` command as a user runs it: exit codes and what it prints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_domicile");

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:0"

[trace]
dir = "traces"

[[entities]]
id = "acme-eu"
country = "DE"
sector = "commercial"

[[regions]]
id = "eu-central"
country = "DE"
entity = "acme-eu"
serves = ["EEA"]
backends = [{ url = "http://127.0.0.1:9" }]

[[routes]]
id = "customers"
path = "/customers"
purpose = "storage"
placement = "home"
"#;

#[test]
fn check_accepts_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("good.toml");
    std::fs::write(&f, GOOD).unwrap();
    let (code, out) = run(&["check", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok (1 regions, 1 routes"), "{out}");
}

#[test]
fn check_reports_every_problem_with_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    let bad = GOOD
        .replace("country = \"DE\"\nsector", "country = \"Germany\"\nsector")
        .replace(
            "placement = \"home\"",
            "placement = \"home\"\nregion = \"mars\"",
        );
    std::fs::write(&f, bad).unwrap();
    let (code, out) = run(&["check", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let name = f.display().to_string();
    assert!(
        out.contains(&format!(
            "{name}:10:11: entities[0].country: invalid country code \"Germany\""
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{name}:25:10: routes[0].region: placement \"home\" takes no region"
        )),
        "{out}"
    );
    assert_eq!(out.lines().count(), 2, "{out}");

    std::fs::write(
        &f,
        GOOD.replace("[trace]\ndir", "[trace]\ndurabilty = \"batch\"\ndir"),
    )
    .unwrap();
    let (code, out) = run(&["check", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{name}:6:1: durabilty: unknown field `durabilty`")),
        "{out}"
    );
}

#[test]
fn policy_test_runs_cases_and_fails_on_a_wrong_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cases.toml");
    std::fs::write(
        &f,
        r#"
[[case]]
name = "Schrems II"
subject = ["DE"]
data = ["email"]
purpose = "storage"
to = "US"
recipient = { sector = "commercial", certifications = [{ scheme = "EU-US-PrivacyShield", from = "2016-08-01" }] }
at = "2020-07-16"
expect = "block"

[[case]]
name = "wrong on purpose"
subject = ["DE"]
data = ["email"]
purpose = "storage"
to = "US"
at = "2026-11-28"
expect = "allow"
"#,
    )
    .unwrap();
    let (code, out) = run(&["policy", "test", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ok   Schrems II"), "{out}");
    assert!(
        out.contains("FAIL wrong on purpose: verdict block (expected allow)"),
        "{out}"
    );
    assert!(out.contains("1 passed, 1 failed"), "{out}");
}

#[test]
fn explain_prints_the_verdict_basis_and_trail() {
    let (code, out) = run(&[
        "explain",
        "--subject",
        "DE",
        "--data",
        "email",
        "--purpose",
        "storage",
        "--to",
        "US",
        "--certified",
        "EU-US-PrivacyShield",
        "--at",
        "2019-03-01",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verdict: allow"), "{out}");
    assert!(out.contains("basis: adequacy:EU/2016/1250"), "{out}");
    assert!(out.contains("re-evaluate at: 2020-07-16"), "{out}");
    let (_, out) = run(&[
        "explain",
        "--subject",
        "DE",
        "--data",
        "email",
        "--purpose",
        "storage",
        "--to",
        "US",
        "--certified",
        "EU-US-PrivacyShield",
        "--at",
        "2020-08-01",
    ]);
    assert!(out.contains("verdict: block"), "{out}");
    assert!(out.contains("C-311/18"), "{out}");
}

/// Starts `domicile serve` and returns the child with its two announced addresses.
fn serve(args: &[&str]) -> (std::process::Child, String, String) {
    serve_in(args, None)
}

/// As [`serve`], with the child's temporary directory (where the demo keeps its trace) set.
fn serve_in(args: &[&str], tmp: Option<&std::path::Path>) -> (std::process::Child, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
    if let Some(t) = tmp {
        cmd.env("TMPDIR", t);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (mut listen, mut admin) = (None, None);
    while listen.is_none() || admin.is_none() {
        let line = lines
            .next()
            .expect("serve exited before announcing its addresses")
            .unwrap();
        if let Some(a) = line.strip_prefix("listening on ") {
            listen = Some(a.to_owned());
        } else if let Some(a) = line.strip_prefix("admin listening on ") {
            admin = Some(a.to_owned());
        }
    }
    (child, listen.unwrap(), admin.unwrap())
}

fn http(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn stop(mut child: std::process::Child) {
    // SIGTERM, then wait for the drain to finish.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("domicile did not stop on SIGTERM");
}

#[test]
fn serve_demo_routes_by_jurisdiction_and_blocks_with_451() {
    let (child, listen, admin) = serve(&[
        "serve",
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let body = r#"{"email":"jane@example.com"}"#;
    let post = |path: &str, ip: &str| {
        http(
            &listen,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: demo\r\nX-Forwarded-For: {ip}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let eu = post("/customers", "192.0.2.10");
    assert!(eu.starts_with("HTTP/1.1 200"), "{eu}");
    assert!(eu.contains("domicile-region: eu-central"), "{eu}");
    assert!(eu.contains("\"region\":\"eu-central\""), "{eu}");
    let us = post("/customers", "198.51.100.7");
    assert!(us.contains("\"region\":\"us-east\""), "{us}");
    let blocked = post("/analytics", "192.0.2.10");
    assert!(blocked.starts_with("HTTP/1.1 451"), "{blocked}");
    assert!(!blocked.contains("jane@example.com"), "{blocked}");
    let health = http(
        &admin,
        "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(health.ends_with("ok\n"), "{health}");
    stop(child);
}

#[test]
fn serve_reloads_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("domicile.toml");
    std::fs::write(&f, GOOD).unwrap();
    let (child, _listen, admin) = serve(&[
        "serve",
        "--config",
        f.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let readyz = || {
        http(
            &admin,
            "GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
    };
    let revision = |s: String| {
        s.split("\"revision\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    };
    let before = revision(readyz());
    // Rewrite the file (the watcher may also see it) and send SIGHUP.
    std::fs::write(
        &f,
        GOOD.replace("purpose = \"storage\"", "purpose = \"support\""),
    )
    .unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status();
    let mut after = before.clone();
    for _ in 0..100 {
        after = revision(readyz());
        if after != before {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_ne!(after, before, "the revision did not change after SIGHUP");
    stop(child);
}

#[test]
fn an_admin_listener_off_loopback_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("domicile.toml");
    std::fs::write(&f, GOOD).unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--config",
            f.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not on loopback: set admin.token"), "{err}");

    std::fs::write(&f, format!("{GOOD}\n[admin]\ntoken = \"\"\n")).unwrap();
    let (code, out) = run(&["check", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("admin.token: the admin token must be at least 16 characters"),
        "{out}"
    );
}

#[test]
fn trace_commands_verify_list_show_and_count_the_demo_trail() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, listen, _) = serve_in(
        &[
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        Some(tmp.path()),
    );
    let body = r#"{"email":"jane@example.com"}"#;
    let post = |path: &str, ip: &str| {
        http(
            &listen,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: demo\r\nX-Forwarded-For: {ip}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    assert!(post("/customers", "192.0.2.10").starts_with("HTTP/1.1 200"));
    let blocked = post("/analytics", "192.0.2.10");
    assert!(blocked.starts_with("HTTP/1.1 451"));
    let id = blocked
        .split("\"decision_id\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    assert!(post("/customers", "198.51.100.7").starts_with("HTTP/1.1 200"));
    let refused = http(
        &listen,
        "GET /nowhere HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n",
    );
    assert!(refused.starts_with("HTTP/1.1 404"), "{refused}");
    let refused_id = refused
        .split("\"decision_id\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    stop(child);

    let dir = tmp.path().join("domicile-demo").join("traces");
    let d = dir.to_str().unwrap();
    let (code, out) = run(&["trace", "verify", d]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("3 files, 0 broken"), "{out}");

    // Refusals are listed beside decisions; --kind keeps one kind.
    let (code, out) = run(&["trace", "list", d]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 5, "{out}");
    let (code, out) = run(&["trace", "list", d, "--kind", "refusal"]);
    assert_eq!(code, 0, "{out}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert!(
        rows[0].contains(&refused_id)
            && rows[0].contains("refused")
            && rows[0].contains("no_route")
            && rows[0].contains("answered 404"),
        "{out}"
    );
    let (_, out) = run(&["trace", "list", d, "--kind", "decision", "--json"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.lines().all(|l| l.contains("\"kind\":\"decision\"")),
        "{out}"
    );
    let (code, out) = run(&["trace", "list", d, "--kind", "other"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("invalid value 'other' for '--kind <KIND>'"),
        "{out}"
    );
    let (code, out) = run(&["trace", "show", d, &refused_id]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("outcome      refused with 404 (no_route) before any decision"),
        "{out}"
    );

    let (code, out) = run(&["trace", "list", d, "--verdict", "block"]);
    assert_eq!(code, 0, "{out}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert!(
        rows[0].contains(&id)
            && rows[0].contains("analytics")
            && rows[0].contains("no_transfer_basis"),
        "{out}"
    );
    let (_, out) = run(&["trace", "list", d, "--jurisdiction", "us", "--json"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("\"region\":\"us-east\""), "{out}");

    let (code, out) = run(&["trace", "show", d, &id]);
    assert_eq!(code, 0, "{out}");
    for want in [
        "verdict      block (no_transfer_basis)",
        "finding      email at /email (email.rfc5322)",
        "destination  us-east (US, operated by acme-us)",
        "outcome      blocked (451)",
        "requires the recipient to hold EU-US-DPF",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    assert!(!out.contains("jane@example.com"));

    let (_, stats) = run(&["trace", "stats", d]);
    assert!(stats.starts_with("3 decisions"), "{stats}");
    let (code, out) = run(&["trace", "register", d]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("2 transfer groups observed"), "{out}");
    let de = out.lines().find(|l| l.starts_with("DE ")).expect(&out);
    assert!(
        de.contains("acme-eu") && de.contains("not_a_transfer:EEA") && de.contains("email"),
        "{de}"
    );
    // The blocked DE -> us-east request is not a transfer: us-east only has the US subject's.
    let us = out.lines().find(|l| l.starts_with("US ")).expect(&out);
    assert!(
        us.contains("acme-us") && us.contains("not_a_transfer:US") && !us.contains("DE"),
        "a blocked request is not a transfer:\n{out}"
    );
    assert!(
        stats.contains("by verdict:\n         2  allow\n         1  block"),
        "{stats}"
    );

    // An edited record breaks its file's chain at that line.
    let file = dir.join("eu-central").join("decisions.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replacen("\"route\":\"analytics\"", "\"route\":\"catalog\"", 1),
    )
    .unwrap();
    let (code, out) = run(&["trace", "verify", d]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("BROKEN") && out.contains("(the record was edited)"),
        "{out}"
    );
    // The commands that read records still print them, and say that the trail does not
    // verify, with an exit status of their own.
    for (args, printed) in [
        (
            vec!["trace", "show", d, &id],
            "verdict      block (no_transfer_basis)",
        ),
        (vec!["trace", "list", d], id.as_str()),
        (vec!["trace", "stats", d], "3 decisions"),
        (vec!["trace", "register", d], "transfer groups observed"),
        (vec!["trace", "refusals", d], refused_id.as_str()),
    ] {
        let (code, out) = run(&args);
        assert_eq!(code, 3, "{args:?}: {out}");
        assert!(
            out.contains(printed),
            "{args:?} printed no {printed:?}: {out}"
        );
        assert!(
            out.contains("warning: the trail under")
                && out.contains("does not verify (1 of 3 files broken; first:")
                && out.contains("(the record was edited)"),
            "{args:?}: {out}"
        );
    }
    // A record that is not found may have been removed: the broken trail decides the status.
    let (code, out) = run(&["trace", "show", d, "01a2000000000000000000000"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("no decision") && out.contains("does not verify"),
        "{out}"
    );
}

#[test]
fn policy_rows_lists_dated_rows_with_their_references() {
    let (code, out) = run(&["policy", "rows", "--regime", "GDPR", "--at", "2019-03-01"]);
    assert_eq!(code, 0, "{out}");
    let ps = out
        .lines()
        .find(|l| l.contains("eu.adequacy.us.privacy-shield"))
        .expect(&out);
    assert!(
        ps.contains("2016-07-12 2020-07-16 V-P  Commission Implementing Decision (EU) 2016/1250"),
        "{ps}"
    );
    assert!(
        !out.contains("eu.adequacy.us.dpf"),
        "the DPF was not in force in 2019:\n{out}"
    );
    let (_, out) = run(&["policy", "rows", "--regime", "GDPR", "--at", "2020-07-16"]);
    assert!(!out.contains("privacy-shield"), "{out}");
    let (_, out) = run(&["policy", "rows", "--json"]);
    for line in out.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in ["id", "valid_from", "reference", "source", "verification"] {
            assert!(row[key].is_string(), "{key} missing in {line}");
        }
    }
}

/// The demo's regions and entities, with `cert` added to the US entity.
fn demo_like(cert: &str) -> String {
    format!(
        r#"
[[entities]]
id = "acme-eu"
country = "DE"
sector = "commercial"

[[entities]]
id = "acme-us"
country = "US"
sector = "commercial"
{cert}

[[regions]]
id = "eu-central"
country = "DE"
entity = "acme-eu"
serves = ["EEA"]
backends = [{{ url = "http://127.0.0.1:9" }}]

[[regions]]
id = "us-east"
country = "US"
entity = "acme-us"
serves = ["US"]
backends = [{{ url = "http://127.0.0.1:9" }}]
"#
    )
}

#[test]
fn trace_replay_shows_what_a_new_policy_or_date_would_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, listen, _) = serve_in(
        &[
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        Some(tmp.path()),
    );
    let body = r#"{"email":"jane@example.com"}"#;
    for path in ["/analytics", "/customers"] {
        let r = http(
            &listen,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: demo\r\nX-Forwarded-For: 192.0.2.10\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(
            r.starts_with("HTTP/1.1 451") || r.starts_with("HTTP/1.1 200"),
            "{r}"
        );
    }
    stop(child);
    let dir = tmp.path().join("domicile-demo").join("traces");
    let d = dir.to_str().unwrap();

    // The US entity gets certified under the DPF: the blocked analytics transfer would pass.
    let dpf = tmp.path().join("dpf.toml");
    std::fs::write(
        &dpf,
        demo_like("certifications = [{ scheme = \"EU-US-DPF\", valid_from = \"2023-07-10\" }]"),
    )
    .unwrap();
    let (code, out) = run(&["trace", "replay", d, "--config", dpf.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("2 decisions replayed, 1 would change"),
        "{out}"
    );
    assert!(
        out.contains("analytics      DE         us-east        block -> allow (adequacy)"),
        "{out}"
    );

    // A Privacy Shield certification only: the same traffic in 2019 passes, after Schrems II not.
    let ps = tmp.path().join("ps.toml");
    std::fs::write(
        &ps,
        demo_like(
            "certifications = [{ scheme = \"EU-US-PrivacyShield\", valid_from = \"2016-08-01\" }]",
        ),
    )
    .unwrap();
    let p = ps.to_str().unwrap();
    let (_, out) = run(&["trace", "replay", d, "--config", p, "--at", "2019-03-01"]);
    assert!(out.contains("block -> allow (adequacy)"), "{out}");
    let (_, out) = run(&["trace", "replay", d, "--config", p, "--at", "2020-07-16"]);
    assert!(
        out.starts_with("2 decisions replayed, 0 would change"),
        "{out}"
    );
}
