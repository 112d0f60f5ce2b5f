//! The cost per decision of each trace durability mode: the time a request waits for its
//! record to be as durable as configured, one at a time and with 64 requests at once (where
//! `batch` shares one fsync among them). Runs on the file system of the temporary directory
//! (`DOMICILE_BENCH_DIR` overrides it); fsync costs depend on the disk, so read the ratios.
//!
//! `cargo bench -p domicile-gateway --bench trace_durability`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use divan::Bencher;
use divan::counter::ItemsCount;
use domicile_gateway::config::Durability;
use domicile_gateway::trace::TraceWriter;

fn main() {
    divan::main();
}

const MODES: [&str; 3] = ["always", "batch", "none"];

fn durability(mode: &str) -> Durability {
    match mode {
        "always" => Durability::Always,
        "batch" => Durability::Batch,
        _ => Durability::None,
    }
}

fn bench_dir() -> PathBuf {
    std::env::var_os("DOMICILE_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// A decision record of the usual size (about 1.2 KB), without its chain fields, its fields in
/// the order the gateway writes them (what changes per request last).
fn record(n: usize) -> Vec<u8> {
    format!(
        concat!(
            r#"{{"schema":"domicile.decision/1","gateway":{{"instance":"vm-8de6c8","region":"eu-central","listen":"127.0.0.1:8080"}},"policy_revision":"e611dbe2897b2ca9","#,
            r#""route":"analytics","method":"POST","purpose":"processing","#,
            r#""destination":{{"region":"us-east","country":"US","entity":"acme-us"}},"verdict":"block","reason_code":"no_transfer_basis","#,
            r#""basis":[],"conditions":[],"re_evaluate_at":null,"reasons":[{{"step":"regimes","rule":"zone.eea.eu-gdpr","finding":"GDPR covers subjects in DE on 2026-11-29"}},"#,
            r#"{{"step":"transfer","rule":"GDPR","finding":"us-east (US) is outside GDPR's home zones on 2026-11-29: this is a transfer"}},"#,
            r#"{{"step":"adequacy","rule":"eu.adequacy.us.privacy-shield","finding":"EU-US Privacy Shield is not in force on 2026-11-29 (in force 2016-07-12 to 2020-07-16)"}},"#,
            r#"{{"step":"basis","rule":"GDPR","finding":"no adequacy decision or data bridge covers this transfer to US under GDPR on 2026-11-29"}}],"#,
            r#""enforced":true,"outcome":{{"action":"blocked","status":451}},"inspection":{{"status":"complete"}},"#,
            r#""findings":[{{"category":"email","location":"/user/email","detector":"email.rfc5322"}}],"#,
            r#""subject":{{"jurisdictions":["DE"],"regimes":["GDPR"],"conflict":false,"#,
            r#""evidence":[{{"source":"geoip","country":"DE","weight":60,"location":"client_address"}}],"#,
            r#""home_region":"eu-central","geoip_build_epoch":1795910466,"client_address_source":"x_forwarded_for","#,
            r#""forwarded_for_ignored":false,"client_address":"192.0.2.0/24"}},"#,
            r#""decision_id":"01a224d3ecf7bbc0d3{:08x}","time":"2026-11-29T00:01:07.787074Z"}}"#
        ),
        n
    )
    .into_bytes()
}

fn setup(mode: &str) -> (tempfile::TempDir, TraceWriter, tokio::runtime::Runtime) {
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let w = TraceWriter::start(dir.path().to_path_buf(), durability(mode)).unwrap();
    (dir, w, rt)
}

/// One request at a time: each waits for its own record.
#[divan::bench(args = MODES, sample_count = 30, sample_size = 20)]
fn one_at_a_time(bencher: Bencher, mode: &str) {
    let (_dir, w, rt) = setup(mode);
    let region: Arc<str> = Arc::from("eu-central");
    let body = record(0);
    bencher
        .counter(ItemsCount::new(1usize))
        .bench_local(|| rt.block_on(w.append(region.clone(), body.clone())).unwrap());
}

/// 64 requests at once, each waiting for its own record.
#[divan::bench(args = MODES, sample_count = 30, sample_size = 2)]
fn sixty_four_at_once(bencher: Bencher, mode: &str) {
    let (_dir, w, rt) = setup(mode);
    let region: Arc<str> = Arc::from("eu-central");
    let bodies: Vec<Vec<u8>> = (0..64).map(record).collect();
    bencher.counter(ItemsCount::new(64usize)).bench_local(|| {
        rt.block_on(async {
            let tasks: Vec<_> = bodies
                .iter()
                .map(|b| {
                    let (w, region, b) = (w.clone(), region.clone(), b.clone());
                    tokio::spawn(async move { w.append(region, b).await })
                })
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        });
    });
}
