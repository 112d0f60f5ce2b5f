//! The real `domicile` binary under faults: `kill -9` under load loses no record of an answered
//! request and the chains verify after restart; a trace directory that cannot grow (a file-size
//! limit, as a full disk) turns requests into 503s and nothing reaches a backend.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_domicile");

/// A minimal HTTP/1.1 backend that counts the requests it receives.
fn backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let c = c.clone();
            std::thread::spawn(move || serve_backend(stream, &c));
        }
    });
    (addr, count)
}

fn serve_backend(stream: TcpStream, count: &AtomicUsize) {
    let mut out = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        count.fetch_add(1, Ordering::SeqCst);
        if out
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .is_err()
        {
            return;
        }
    }
}

fn config(dir: &Path, backend: SocketAddr, durability: &str) -> std::path::PathBuf {
    let text = domicile_gateway::demo::config_text(backend, backend, &dir.join("traces")).replace(
        "durability = \"batch\"",
        &format!("durability = \"{durability}\"\nrotate_bytes = 65536"),
    );
    let path = dir.join("domicile.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running gateway process: killed with SIGKILL when dropped, also when a test fails.
struct Proc(Child);

impl Proc {
    /// `kill -9`, and wait for the process to be gone.
    fn kill9(self) {}
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary (through `sh` when `shell_prefix` is set) and returns it with its address.
fn serve(config: &Path, shell_prefix: Option<&str>) -> (Proc, String) {
    let args = format!(
        "serve --config {} --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0",
        config.display()
    );
    let mut cmd = match shell_prefix {
        Some(prefix) => {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("{prefix} exec {BIN} {args}")]);
            c
        }
        None => {
            let mut c = Command::new(BIN);
            c.args(args.split(' '));
            c
        }
    };
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut listen = None;
    while listen.is_none() {
        let line = lines
            .next()
            .expect("serve exited before announcing its address")
            .unwrap();
        listen = line.strip_prefix("listening on ").map(str::to_owned);
    }
    // Keep reading: a closed pipe would fail the gateway's later lines on stdout.
    std::thread::spawn(move || lines.for_each(drop));
    (Proc(child), listen.unwrap())
}

/// One request on a new connection: the status and decision id when an answer arrived.
fn request(addr: &str, path: &str, ip: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: api\r\nConnection: close\r\nX-Forwarded-For: {ip}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    // The header on decided answers, the problem body's decision_id on the gateway's own.
    let id = match out
        .lines()
        .find_map(|l| l.strip_prefix("domicile-decision: "))
    {
        Some(h) => h.trim().to_owned(),
        None => {
            let at = out.find("\"decision_id\":\"")? + 15;
            out.get(at..at + 26)?.to_owned()
        }
    };
    Some((status, id))
}

/// Every decision id in the trace files under `dir`.
/// An EU customer's record sent to `/customers`: stored in eu-central.
fn store_eu_customer(addr: &str) -> Option<(u16, String)> {
    request(
        addr,
        "/customers",
        "192.0.2.10",
        r#"{"email":"jane@example.com"}"#,
    )
}

fn recorded_ids(dir: &Path) -> HashSet<String> {
    let mut ids = HashSet::new();
    for region in std::fs::read_dir(dir).unwrap().flatten() {
        for f in std::fs::read_dir(region.path()).unwrap().flatten() {
            let text = std::fs::read_to_string(f.path()).unwrap();
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                if v["schema"] == "domicile.decision/1" {
                    ids.insert(v["decision_id"].as_str().unwrap().to_owned());
                }
            }
        }
    }
    ids
}

fn verify(dir: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["trace", "verify"])
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn kill_9_under_load_loses_no_record_of_an_answered_request() {
    for durability in ["batch", "always"] {
        let (backend, _) = backend();
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), backend, durability);
        let traces = dir.path().join("traces");
        let mut answered: Vec<String> = Vec::new();
        for round in 0..3 {
            answered.extend(kill_9_under_load_and_restart(
                &config, &traces, round, durability,
            ));
        }
        let recorded = recorded_ids(&traces);
        let lost: Vec<&String> = answered
            .iter()
            .filter(|id| !recorded.contains(*id))
            .collect();
        assert!(
            lost.is_empty(),
            "{durability}: {} of {} answered requests have no record: {lost:?}",
            lost.len(),
            answered.len()
        );
    }
}

#[test]
fn kill_9_under_load_without_fsync_leaves_chains_that_verify_and_go_on() {
    // `none` loses what was buffered (up to a write-out period), and a direct write leaves the
    // file ending in whole blocks, a record cut at the last one: restarted, the writer cuts
    // the torn record and the chains go on.
    let (backend, _) = backend();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), backend, "none");
    let traces = dir.path().join("traces");
    let mut answered = Vec::new();
    let mut after_restart = Vec::new();
    for round in 0..3 {
        let ids = kill_9_under_load_and_restart(&config, &traces, round, "none");
        after_restart.extend(ids.last().cloned());
        answered.extend(ids);
    }
    // How many of the records under load were written depends on when the kills came (a
    // request whose record was written may not have been answered, and the other way round);
    // each check above found the chains whole after the restart, and every restarted
    // gateway's record is there, chained on after the torn one was cut.
    assert!(!answered.is_empty());
    let recorded = recorded_ids(&traces);
    assert!(!recorded.is_empty());
    for id in &after_restart {
        assert!(
            recorded.contains(id),
            "the restarted gateway's record {id} is missing"
        );
    }
    assert_eq!(after_restart.len(), 3);
}

/// Starts the gateway, loads it from four threads, kills it with `kill -9` mid-load, restarts
/// it for one more request, kills it again and checks every chain under `traces`. Returns the
/// decision ids of the requests answered, the restarted gateway's last.
fn kill_9_under_load_and_restart(
    config: &Path,
    traces: &Path,
    round: usize,
    durability: &str,
) -> Vec<String> {
    let (child, addr) = serve(config, None);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (addr, stop, count) = (addr.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let cases = [
                    (
                        "/customers",
                        "192.0.2.10",
                        r#"{"email":"jane@example.com"}"#,
                    ),
                    (
                        "/customers",
                        "198.51.100.7",
                        r#"{"email":"joe@example.com"}"#,
                    ),
                    (
                        "/analytics",
                        "192.0.2.10",
                        r#"{"email":"jane@example.com"}"#,
                    ),
                ];
                let mut n = w;
                while !stop.load(Ordering::SeqCst) {
                    let (path, ip, body) = cases[n % cases.len()];
                    if let Some((status, id)) = request(&addr, path, ip, body) {
                        assert!(status == 200 || status == 451, "{status}");
                        got.push(id);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    n += 1;
                }
                got
            })
        })
        .collect();
    // Let the load run, then kill without warning while requests are in flight.
    let target = 50 + 25 * round;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::SeqCst) < target && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill9();
    stop.store(true, Ordering::SeqCst);
    let mut answered = Vec::new();
    for w in workers {
        answered.extend(w.join().unwrap());
    }
    assert!(answered.len() >= target, "too little load in round {round}");
    // Restart: the writer repairs a torn tail and continues the chains.
    let (child, addr) = serve(config, None);
    let (status, id) = store_eu_customer(&addr).unwrap();
    assert_eq!(status, 200);
    answered.push(id);
    if durability == "none" {
        // Long enough for the flusher to write the record out (a period, and one more for the
        // bytes after the last whole block), after the torn one it cut.
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill9();
    let (ok, report) = verify(traces);
    assert!(ok, "{durability} round {round}: {report}");
    answered
}

#[test]
fn a_trace_directory_that_cannot_grow_fails_closed_and_forwards_nothing() {
    let (backend, received) = backend();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), backend, "batch");
    // 16 blocks of 512 bytes: room for a few records. SIGXFSZ is ignored so the write fails
    // with an error (as on a full disk) instead of killing the process.
    let (child, addr) = serve(&config, Some("trap '' XFSZ; ulimit -f 16;"));
    let mut ok = 0;
    let mut failed = Vec::new();
    for _ in 0..40 {
        let (status, id) = store_eu_customer(&addr).unwrap();
        match status {
            200 if failed.is_empty() => ok += 1,
            503 => failed.push(id),
            other => panic!(
                "unexpected {other} after {ok} answers and {} 503s",
                failed.len()
            ),
        }
    }
    child.kill9();
    assert!(ok >= 1, "no request succeeded before the limit");
    assert!(
        failed.len() >= 10,
        "the limit was never reached: {ok} answered"
    );
    // Every request after the first failure was refused, and none of them was forwarded.
    assert_eq!(received.load(Ordering::SeqCst), ok);
    let recorded = recorded_ids(&dir.path().join("traces"));
    assert_eq!(recorded.len(), ok);
    assert!(failed.iter().all(|id| !recorded.contains(id)));
    let (verified, report) = verify(&dir.path().join("traces"));
    assert!(verified, "{report}");
}

#[test]
fn trace_verify_exits_non_zero_and_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let region = dir.path().join("eu-central");
    std::fs::create_dir(&region).unwrap();
    let mut text = String::new();
    let mut prev = domicile_gateway::trace::writer::GENESIS.to_owned();
    for n in 0..3 {
        let (line, hash) =
            domicile_gateway::trace::writer::chain_line(format!("{{\"n\":{n}}}").as_bytes(), &prev);
        text.push_str(std::str::from_utf8(&line).unwrap());
        prev = hash;
    }
    let file = region.join("decisions.jsonl");
    std::fs::write(&file, text.replacen("{\"n\":1", "{\"n\":9", 1)).unwrap();
    let (ok, report) = verify(dir.path());
    assert!(!ok);
    assert!(
        report.contains(&format!(
            "BROKEN {}:2: hash does not match the record's content (the record was edited)",
            file.display()
        )),
        "{report}"
    );
}

#[test]
fn trace_refusals_lists_the_requests_answered_before_a_decision() {
    let (backend, received) = backend();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), backend, "batch");
    let (child, addr) = serve(&config, None);
    let (status, nowhere) = request(&addr, "/nowhere", "192.0.2.10", "{}").unwrap();
    assert_eq!(status, 404);
    let (status, _) = request(&addr, "/customers", "192.0.2.10", r#"{"a":1}"#).unwrap();
    assert_eq!(status, 200);
    child.kill9();
    assert_eq!(received.load(Ordering::SeqCst), 1);
    let out = Command::new(BIN)
        .args(["trace", "refusals"])
        .arg(dir.path().join("traces"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.contains(&nowhere))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains(" POST "), "{row}");
    assert!(row.contains(" 404 "), "{row}");
    assert!(row.contains(" no_route "), "{row}");
    assert!(row.ends_with("127.0.0.0/24"), "{row}");
    assert!(text.contains("\n1 refused before a decision\n"), "{text}");
    assert!(text.contains("     1  no_route (404)"), "{text}");
}
