//! The `domicile` command: serve, check, policy test, explain.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use domicile_gateway::config::{Config, LogFormat};
use domicile_gateway::{StartOptions, demo};
use domicile_policy::{
    Category, Country, Date, Destination, Engine, EngineOptions, Entity, Facts, Frequency,
    KnowledgeBase, Query, Sector,
};

#[derive(Parser)]
#[command(
    name = "domicile",
    version,
    about = "A data-residency gateway for HTTP APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Validate a config file and report every problem with file, line, column and key.
    Check { file: PathBuf },
    /// Policy tools for privacy officers.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Evaluate one hypothetical transfer and print the reason trail.
    Explain(ExplainArgs),
    /// Read the decision trail: verify, list, show, stats.
    #[command(subcommand)]
    Trace(TraceCommand),
}

#[derive(Subcommand)]
enum TraceCommand {
    /// Check every hash chain and checkpoint under DIR, across rotated files; report the
    /// first broken record of each file.
    Verify {
        dir: PathBuf,
        /// A file holding the Ed25519 public key (hex) every checkpoint must be signed with.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Write a new random 32-byte key (hex) to FILE, for `[trace] signing_key` or
    /// `[trace.pseudonym_keys]`; prints the Ed25519 public key that goes with it.
    Keygen { file: PathBuf },
    /// List decisions and refusals (requests answered before any decision), filtered, as a
    /// table or JSON lines (each with a `kind` field).
    List {
        dir: PathBuf,
        #[command(flatten)]
        filter: TraceFilter,
        /// Only decisions or only refusals (default both).
        #[arg(long, value_parser = domicile_gateway::trace::read::KINDS)]
        kind: Option<String>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One decision with its reason trail (or one refusal), in words.
    Show { dir: PathBuf, id: String },
    /// Re-evaluate recorded decisions under another config (and date): what would change.
    Replay {
        dir: PathBuf,
        /// The config (and its knowledge base) to evaluate under.
        #[arg(long)]
        config: PathBuf,
        /// Evaluate every record on this date (YYYY-MM-DD) instead of its own.
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        filter: TraceFilter,
    },
    /// The register of transfers actually observed (Article 30(1)(e) style).
    Register {
        dir: PathBuf,
        #[command(flatten)]
        filter: TraceFilter,
    },
    /// Requests answered before any decision (no route, framing, limits, refused upgrades),
    /// with counts by reason.
    Refusals {
        dir: PathBuf,
        /// Records at or after this RFC 3339 time (or date).
        #[arg(long, value_parser = domicile_gateway::trace::read::time_bound)]
        since: Option<String>,
        /// Records before this RFC 3339 time (or date).
        #[arg(long, value_parser = domicile_gateway::trace::read::time_bound)]
        until: Option<String>,
    },
    /// Counts by verdict, destination and basis.
    Stats {
        dir: PathBuf,
        #[command(flatten)]
        filter: TraceFilter,
    },
}

#[derive(Args)]
struct TraceFilter {
    /// Records at or after this RFC 3339 time (or date).
    #[arg(long, value_parser = domicile_gateway::trace::read::time_bound)]
    since: Option<String>,
    /// Records before this RFC 3339 time (or date).
    #[arg(long, value_parser = domicile_gateway::trace::read::time_bound)]
    until: Option<String>,
    #[arg(long)]
    verdict: Option<String>,
    /// The kind of basis: adequacy, not_a_transfer, no_restriction, none...
    #[arg(long)]
    basis_kind: Option<String>,
    /// One of the subject's plausible jurisdictions (ISO code).
    #[arg(long)]
    jurisdiction: Option<String>,
    /// The destination region.
    #[arg(long)]
    region: Option<String>,
    #[arg(long)]
    route: Option<String>,
    /// A finding category (email, phone, ...).
    #[arg(long)]
    category: Option<String>,
    /// A decision id.
    #[arg(long)]
    id: Option<String>,
}

impl TraceFilter {
    fn into_filter(self) -> domicile_gateway::trace::read::Filter {
        domicile_gateway::trace::read::Filter {
            since: self.since,
            until: self.until,
            verdict: self.verdict,
            basis_kind: self.basis_kind,
            jurisdiction: self.jurisdiction.map(|j| j.to_ascii_uppercase()),
            region: self.region,
            route: self.route,
            category: self.category,
            id: self.id,
            kind: None,
        }
    }
}

#[derive(Args)]
struct ServeArgs {
    /// The config file.
    #[arg(long, required_unless_present = "demo", conflicts_with = "demo")]
    config: Option<PathBuf>,
    /// Run the embedded demo: two regions with built-in backends and a built-in GeoIP table.
    #[arg(long)]
    demo: bool,
    /// Listen address, overriding the config (port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin listen address, overriding the config.
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Run policy test cases written as data (TOML `[[case]]` tables).
    Test {
        files: Vec<PathBuf>,
        /// Evaluate under this config's policy (its knowledge-base files, overrides and
        /// [policy] options) instead of the built-in knowledge base alone.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List the knowledge base's dated rows with their references and sources.
    Rows {
        /// Only rows in force on this date (YYYY-MM-DD).
        #[arg(long)]
        at: Option<String>,
        /// Only rows of this regime (GDPR, UK-GDPR, ...).
        #[arg(long)]
        regime: Option<String>,
        /// Also the rows of these knowledge-base files.
        #[arg(long)]
        kb: Vec<PathBuf>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ExplainArgs {
    /// The subject's jurisdiction(s), comma separated ISO codes (e.g. DE or DE,US).
    #[arg(long)]
    subject: String,
    /// Data categories, comma separated (email, phone, health, ...).
    #[arg(long)]
    data: String,
    #[arg(long)]
    purpose: String,
    /// Destination: a region of --config, or a country code.
    #[arg(long)]
    to: String,
    /// Evaluation date (YYYY-MM-DD); today by default.
    #[arg(long)]
    at: Option<String>,
    /// A config file whose regions and entities to use.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Certifications the recipient holds (without --config), e.g. EU-US-DPF.
    #[arg(long, value_delimiter = ',')]
    certified: Vec<String>,
    /// The recipient's sector (without --config): commercial, non_profit or public.
    #[arg(long, default_value = "commercial")]
    sector: String,
    /// The subject's citizenships, comma separated ISO codes (152-FZ follows Russian citizens).
    #[arg(long, value_delimiter = ',')]
    citizenship: Vec<String>,
    /// The request carries `Sec-GPC: 1` (an opt-out of sale and sharing).
    #[arg(long)]
    gpc: bool,
    /// The flow is occasional (Art 49 derogations need it); systematic by default.
    #[arg(long)]
    occasional: bool,
    /// Evidence on file, comma separated (consent:explicit_transfer, contract_necessity,
    /// art9:9_2_h, consent:separate, ...).
    #[arg(long, value_delimiter = ',')]
    evidence: Vec<String>,
    /// The exporting entity (with --config; default: policy.exporter).
    #[arg(long)]
    exporter: Option<String>,
    /// The decision as JSON.
    #[arg(long)]
    json: bool,
}

// A proxy allocates and frees many small, short-lived objects per request; mimalloc does that
// with less CPU and less fragmentation than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check { file } => check(&file),
        Command::Policy(PolicyCommand::Test { files, config }) => {
            policy_test(&files, config.as_deref())
        }
        Command::Policy(PolicyCommand::Rows {
            at,
            regime,
            kb,
            json,
        }) => policy_rows(at.as_deref(), regime.as_deref(), &kb, json),
        Command::Explain(args) => explain(args),
        Command::Trace(cmd) => trace(cmd),
    }
}

/// Exit status of a reading command whose trail does not verify: what it printed may have
/// been changed (1 is for errors, 2 for usage).
const TRAIL_BROKEN: u8 = 3;

fn trace(cmd: TraceCommand) -> ExitCode {
    // The commands that read records also check the chains of the trail they read.
    let read_dir = match &cmd {
        TraceCommand::List { dir, .. }
        | TraceCommand::Show { dir, .. }
        | TraceCommand::Replay { dir, .. }
        | TraceCommand::Register { dir, .. }
        | TraceCommand::Refusals { dir, .. }
        | TraceCommand::Stats { dir, .. } => Some(dir.clone()),
        TraceCommand::Verify { .. } | TraceCommand::Keygen { .. } => None,
    };
    let code = trace_command(cmd);
    match read_dir {
        // Also after a record was not found: it may have been removed.
        Some(dir) if dir.is_dir() => match trail_verified(&dir) {
            ExitCode::SUCCESS => code,
            broken => broken,
        },
        _ => code,
    }
}

/// After a command read the trail under `dir`: whether every chain in it verifies (with the
/// first checkpoint key of a region as its key). A break is said on stderr, and the status is
/// [`TRAIL_BROKEN`] (also when the command failed: a record not found may have been removed),
/// so that neither a reader nor a script takes what was printed for the record as written.
fn trail_verified(dir: &Path) -> ExitCode {
    let results = match domicile_gateway::trace::verify::verify_live(dir, None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "warning: the trail under {} could not be verified: {e}",
                dir.display()
            );
            return ExitCode::from(TRAIL_BROKEN);
        }
    };
    let mut breaks = results.iter().filter_map(|v| v.result.as_ref().err());
    let Some(first) = breaks.next() else {
        return ExitCode::SUCCESS;
    };
    eprintln!(
        "warning: the trail under {} does not verify ({} of {} files broken; first: {first}); \
         what was shown may have been edited, removed or added: `domicile trace verify {}` \
         lists every break",
        dir.display(),
        1 + breaks.count(),
        results.len(),
        dir.display()
    );
    ExitCode::from(TRAIL_BROKEN)
}

fn trace_command(cmd: TraceCommand) -> ExitCode {
    use domicile_gateway::trace::read;
    match cmd {
        TraceCommand::Keygen { file } => keygen(&file),
        TraceCommand::Verify { dir, public_key } => {
            let pinned = match public_key.as_deref().map(read_public_key).transpose() {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let Some(results) = read_or_report(&dir, read::verify_dir(&dir, pinned.as_ref()))
            else {
                return ExitCode::FAILURE;
            };
            let mut broken = 0;
            for v in &results {
                match &v.result {
                    Ok(s) => println!(
                        "ok     {} ({} lines{})",
                        v.path.display(),
                        s.lines,
                        match s.checkpoint {
                            Some(read::Checkpoint::Signed(key)) =>
                                format!(", signed checkpoint, key {}", hex::encode(key.as_bytes())),
                            Some(read::Checkpoint::Unsigned) => ", unsigned checkpoint".to_owned(),
                            None => String::new(),
                        }
                    ),
                    Err(e) => {
                        broken += 1;
                        println!("BROKEN {e}");
                    }
                }
            }
            println!("{} files, {} broken", results.len(), broken);
            if broken == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        TraceCommand::List {
            dir,
            filter,
            kind,
            json,
        } => {
            let filter = read::Filter {
                kind,
                ..filter.into_filter()
            };
            let Some(kept) = read_or_report(&dir, read::listing(&dir, &filter, None)) else {
                return ExitCode::FAILURE;
            };
            if !json && !emit(read::table_header()) {
                return ExitCode::SUCCESS;
            }
            for r in &kept {
                let printed = if json {
                    emit(r)
                } else {
                    emit(read::table_row(r))
                };
                if !printed {
                    break;
                }
            }
            ExitCode::SUCCESS
        }
        TraceCommand::Show { dir, id } => {
            let Some(found) = read_or_report(&dir, read::find(&dir, &id)) else {
                return ExitCode::FAILURE;
            };
            match found {
                Some((r, _)) if read::kind_of(&r) == "refusal" => {
                    emit(read::show_refusal(&r).trim_end());
                    ExitCode::SUCCESS
                }
                Some((r, outcome)) => {
                    emit(read::show(&r, outcome.as_ref()).trim_end());
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("error: no decision {id} under {}", dir.display());
                    ExitCode::FAILURE
                }
            }
        }
        TraceCommand::Replay {
            dir,
            config,
            at,
            filter,
        } => {
            let at = match at.map(|a| a.parse::<Date>()) {
                Some(Ok(d)) => Some(d),
                Some(Err(e)) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
                None => None,
            };
            let snap = match Config::load(&config)
                .map_err(|e| e.to_string())
                .and_then(|c| domicile_gateway::state::Snapshot::build(c).map_err(|e| e.join("\n")))
            {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let mut replayed = Vec::new();
            let read = each_decision(&dir, filter, |r| {
                replayed.extend(domicile_gateway::trace::replay::replay_one(&r, &snap, at));
            });
            if !read {
                return ExitCode::FAILURE;
            }
            emit(domicile_gateway::trace::replay::report(&replayed).trim_end());
            ExitCode::SUCCESS
        }
        TraceCommand::Register { dir, filter } => {
            let mut register = read::Register::default();
            if !each_decision(&dir, filter, |r| register.add(&r)) {
                return ExitCode::FAILURE;
            }
            emit(register.report().trim_end());
            ExitCode::SUCCESS
        }
        TraceCommand::Refusals { dir, since, until } => {
            let filter = read::Filter {
                since,
                until,
                kind: Some("refusal".into()),
                ..read::Filter::default()
            };
            let Some(kept) = read_or_report(&dir, read::records(&dir, &filter, None)) else {
                return ExitCode::FAILURE;
            };
            emit(read::refusals(&kept).trim_end());
            ExitCode::SUCCESS
        }
        TraceCommand::Stats { dir, filter } => {
            let mut stats = read::Stats::default();
            if !each_decision(&dir, filter, |r| stats.add(&r)) {
                return ExitCode::FAILURE;
            }
            emit(stats.report().trim_end());
            ExitCode::SUCCESS
        }
    }
}

/// Hands each decision record under `dir` that passes the filter to `f`, one in memory at a
/// time; false (with the error printed) when the trail cannot be read.
fn each_decision(dir: &Path, filter: TraceFilter, f: impl FnMut(serde_json::Value)) -> bool {
    let filter = domicile_gateway::trace::read::Filter {
        kind: Some("decision".into()),
        ..filter.into_filter()
    };
    read_or_report(dir, domicile_gateway::trace::read::each(dir, &filter, f)).is_some()
}

/// What reading the trail under `dir` gave; `None` (with the error printed, naming `dir`)
/// when it could not be read.
fn read_or_report<T, E: std::fmt::Display>(dir: &Path, read: Result<T, E>) -> Option<T> {
    read.map_err(|e| eprintln!("error: {}: {e}", dir.display()))
        .ok()
}

/// Prints one line to stdout; false once the reader has gone (a closed pipe such as `| head`),
/// so long listings stop quietly instead of failing.
fn emit(line: impl std::fmt::Display) -> bool {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}").is_ok()
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn serve(args: ServeArgs) -> ExitCode {
    // One worker: a current-thread runtime, with no cross-thread wake-ups on the request path.
    let runtime = |threads: Option<usize>| {
        let mut b = match threads {
            Some(1) => tokio::runtime::Builder::new_current_thread(),
            _ => tokio::runtime::Builder::new_multi_thread(),
        };
        b.enable_all();
        if let Some(n) = threads.filter(|n| *n > 1) {
            b.worker_threads(n);
        }
        b.build()
    };
    if args.demo {
        let rt = match runtime(None) {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: cannot start the runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        return rt.block_on(async move {
            let (eu, us) = match (
                demo::start_echo_backend("eu-central").await,
                demo::start_echo_backend("us-east").await,
            ) {
                (Ok(eu), Ok(us)) => (eu, us),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("error: cannot start the demo backends: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let trace_dir = std::env::temp_dir().join("domicile-demo").join("traces");
            let text = demo::config_text(eu, us, &trace_dir);
            let config = match Config::from_str(&text, "demo.toml", Path::new(".")) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: the demo configuration is invalid:\n{e}");
                    return ExitCode::FAILURE;
                }
            };
            init_logging(config.log_format, &config.log_level);
            println!("demo backends: eu-central at {eu}, us-east at {us}");
            println!("decision records in {}", trace_dir.display());
            run(
                config,
                StartOptions {
                    listen: args.listen,
                    admin_listen: args.admin_listen,
                    config_path: None,
                    watch: false,
                },
            )
            .await
        });
    }
    let Some(path) = args.config else {
        eprintln!("error: --config FILE or --demo is required");
        return ExitCode::FAILURE;
    };
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(config.log_format, &config.log_level);
    let rt = match runtime(config.server.worker_threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(
        config,
        StartOptions {
            listen: args.listen,
            admin_listen: args.admin_listen,
            config_path: Some(path),
            watch: true,
        },
    ))
}

async fn run(config: Config, opts: StartOptions) -> ExitCode {
    // The detectors' tables are built before the first request, which would pay for them.
    let started = std::time::Instant::now();
    let sample = domicile_gateway::inspect::warm_up();
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        findings = sample.findings.len(),
        "inspection tables built"
    );
    let running = match domicile_gateway::start(config, opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", running.addr);
    println!("admin listening on {}", running.admin_addr);
    let stop = running.shutdown_handle();
    tokio::spawn(async move {
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        let Ok(mut term) = term else { return };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down: draining in-flight requests");
        let _ = stop.send(true);
    });
    running.wait().await;
    ExitCode::SUCCESS
}

fn check(file: &Path) -> ExitCode {
    match Config::load(file) {
        Ok(config) => match domicile_gateway::state::Snapshot::build(config) {
            Ok(s) => {
                println!(
                    "{}: ok ({} regions, {} routes, revision {})",
                    file.display(),
                    s.config.regions.len(),
                    s.config.routes.len(),
                    s.revision
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in errors {
                    println!("{}: {e}", file.display());
                }
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            println!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn builtin_engine() -> Option<Engine> {
    match KnowledgeBase::builtin() {
        Ok(kb) => Some(Engine::new(Arc::new(kb), EngineOptions::default())),
        Err(errors) => {
            for e in errors {
                eprintln!("knowledge base: {e}");
            }
            None
        }
    }
}

fn policy_test(files: &[PathBuf], config: Option<&Path>) -> ExitCode {
    let engine = match config {
        None => builtin_engine(),
        Some(path) => match Config::load(path)
            .map_err(|e| e.to_string())
            .and_then(|c| domicile_gateway::state::Snapshot::build(c).map_err(|e| e.join("\n")))
        {
            Ok(snap) => Some(snap.engine.clone()),
            Err(e) => {
                eprintln!("{e}");
                None
            }
        },
    };
    let Some(engine) = engine else {
        return ExitCode::FAILURE;
    };
    let (mut passed, mut failed) = (0, 0);
    for f in files {
        let parsed = std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|t| domicile_policy::cases::parse_cases(&t).map_err(|e| e.to_string()));
        let cases = match parsed {
            Ok(c) => c.cases,
            Err(e) => {
                println!("{}: {e}", f.display());
                failed += 1;
                continue;
            }
        };
        for case in cases {
            let r = case.run(&engine);
            if r.passed {
                passed += 1;
                println!("ok   {}", r.name);
            } else {
                failed += 1;
                println!("FAIL {}: {}", r.name, r.mismatch.unwrap_or_default());
                for reason in &r.decision.reasons {
                    println!(
                        "       [{}] {}: {}",
                        reason.step, reason.rule, reason.finding
                    );
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn policy_rows(at: Option<&str>, regime: Option<&str>, extra: &[PathBuf], json: bool) -> ExitCode {
    let at = match at.map(str::parse::<Date>) {
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        None => None,
    };
    let mut texts = Vec::new();
    for f in extra {
        match std::fs::read_to_string(f) {
            Ok(t) => texts.push((f.display().to_string(), t)),
            Err(e) => {
                eprintln!("error: {}: {e}", f.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let kb = match KnowledgeBase::builtin_with(texts) {
        Ok(kb) => kb,
        Err(errors) => {
            for e in errors {
                eprintln!("knowledge base: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    struct Row<'a> {
        kind: &'static str,
        id: &'a str,
        regimes: String,
        place: String,
        validity: domicile_policy::Validity,
        basis: &'a str,
        provenance: &'a domicile_policy::kb::Provenance,
        ended_by: Option<&'a str>,
    }
    let mut rows: Vec<Row<'_>> = Vec::new();
    for z in kb.zones() {
        rows.push(Row {
            kind: "zone",
            id: &z.id,
            regimes: z.zone.to_string(),
            place: z
                .countries
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            validity: z.validity,
            basis: "",
            provenance: &z.provenance,
            ended_by: None,
        });
    }
    for r in kb.regimes() {
        rows.push(Row {
            kind: "regime",
            id: &r.id,
            regimes: r.id.to_string(),
            place: format!("covers {}", r.covers_zone),
            validity: r.validity,
            basis: "",
            provenance: &r.provenance,
            ended_by: None,
        });
    }
    for i in kb.instruments() {
        rows.push(Row {
            kind: match i.kind {
                domicile_policy::kb::InstrumentKind::Adequacy => "adequacy",
                domicile_policy::kb::InstrumentKind::DataBridge => "data_bridge",
            },
            id: &i.id,
            regimes: i
                .regimes
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(","),
            place: match &i.destination {
                domicile_policy::kb::InstrumentDestination::Country(c) => c.to_string(),
                domicile_policy::kb::InstrumentDestination::Zone(z) => format!("zone {z}"),
            },
            validity: i.validity,
            basis: &i.basis,
            provenance: &i.provenance,
            ended_by: i.ended_by.as_deref(),
        });
    }
    for p in kb.prohibitions() {
        rows.push(Row {
            kind: "prohibition",
            id: &p.id,
            regimes: p
                .regimes
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(","),
            place: p
                .destinations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            validity: p.validity,
            basis: "",
            provenance: &p.provenance,
            ended_by: None,
        });
    }
    let joined = |regimes: &[Arc<str>]| {
        regimes
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let validity = |from, to| domicile_policy::Validity { from, to };
    for r in kb.safeguards() {
        rows.push(Row {
            kind: "safeguard",
            id: &r.id,
            regimes: joined(&r.regimes),
            place: format!("contract {}", r.instrument),
            validity: validity(r.valid_from, r.valid_to),
            basis: &r.basis,
            provenance: &r.provenance,
            ended_by: r.ended_by.as_deref(),
        });
    }
    for r in kb.derogations() {
        rows.push(Row {
            kind: "derogation",
            id: &r.id,
            regimes: joined(&r.regimes),
            place: r
                .evidence
                .as_deref()
                .map_or_else(|| "any".to_owned(), |e| format!("evidence {e}")),
            validity: validity(r.valid_from, r.valid_to),
            basis: &r.basis,
            provenance: &r.provenance,
            ended_by: r.ended_by.as_deref(),
        });
    }
    for r in kb.localisations() {
        rows.push(Row {
            kind: "localisation",
            id: &r.id,
            regimes: r.regime.to_string(),
            place: format!("in {}", r.home_zone),
            validity: validity(r.valid_from, r.valid_to),
            basis: "",
            provenance: &r.provenance,
            ended_by: r.ended_by.as_deref(),
        });
    }
    for r in kb.opt_outs() {
        rows.push(Row {
            kind: "opt_out",
            id: &r.id,
            regimes: joined(&r.regimes),
            place: format!("signal {}", r.signal),
            validity: validity(r.valid_from, r.valid_to),
            basis: "",
            provenance: &r.provenance,
            ended_by: None,
        });
    }
    for r in kb.eea_incorporations() {
        rows.push(Row {
            kind: "eea_jcd",
            id: &r.id,
            regimes: "GDPR".to_owned(),
            place: r.instrument.to_string(),
            validity: validity(r.valid_from, None),
            basis: "",
            provenance: &r.provenance,
            ended_by: None,
        });
    }
    let verification = |v: domicile_policy::kb::Verification| match v {
        domicile_policy::kb::Verification::Primary => "V-P",
        domicile_policy::kb::Verification::Secondary => "V-S",
        domicile_policy::kb::Verification::Unverified => "U",
    };
    if !json
        && !emit(format!(
            "{:<12} {:<32} {:<14} {:<16} {:<10} {:<10} {:<4} REFERENCE",
            "KIND", "ID", "REGIME", "PLACE", "FROM", "TO", "VER"
        ))
    {
        return ExitCode::SUCCESS;
    }
    for r in rows
        .iter()
        .filter(|r| at.is_none_or(|d| r.validity.contains(d)))
        .filter(|r| regime.is_none_or(|g| r.regimes.split(',').any(|x| x == g)))
    {
        let to = r
            .validity
            .to
            .map_or_else(|| "-".to_owned(), |d| d.to_string());
        let printed = if json {
            emit(serde_json::json!({
                    "kind": r.kind, "id": r.id, "regimes": r.regimes, "place": r.place,
                    "valid_from": r.validity.from.to_string(),
                    "valid_to": r.validity.to.map(|d| d.to_string()),
                    "basis": (!r.basis.is_empty()).then_some(r.basis),
                    "ended_by": r.ended_by,
                    "reference": r.provenance.reference, "source": r.provenance.source,
                    "verification": verification(r.provenance.verification),
            }))
        } else {
            let place: String = r.place.chars().take(16).collect();
            emit(format!(
                "{:<12} {:<32} {:<14} {:<16} {:<10} {:<10} {:<4} {}",
                r.kind,
                r.id,
                r.regimes,
                place,
                r.validity.from,
                to,
                verification(r.provenance.verification),
                r.provenance.reference
            ))
        };
        if !printed {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn explain(args: ExplainArgs) -> ExitCode {
    let fail = |m: String| {
        eprintln!("error: {m}");
        ExitCode::FAILURE
    };
    let subjects: Result<Vec<Country>, _> = args
        .subject
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Country::parse(s.trim()))
        .collect();
    let subjects = match subjects {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let categories: Result<Vec<Category>, _> = args
        .data
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse::<Category>())
        .collect();
    let categories = match categories {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    // Without --at, now: each regime then reads the instant in its own time zone.
    let (at, instant) = match &args.at {
        Some(s) => match s.parse::<Date>() {
            Ok(d) => (d, None),
            Err(e) => return fail(e.to_string()),
        },
        None => (
            domicile_gateway::clock::today(),
            Some(domicile_gateway::clock::now_micros().div_euclid(1_000_000)),
        ),
    };
    let (engine, region, country, entity, exporter, contracts) = if let Some(path) = &args.config {
        let config = match Config::load(path) {
            Ok(c) => c,
            Err(e) => return fail(e.to_string()),
        };
        let snap = match domicile_gateway::state::Snapshot::build(config) {
            Ok(s) => s,
            Err(e) => return fail(e.join("\n")),
        };
        let Some(r) = snap.registry.get(&args.to) else {
            return fail(format!("no region {:?} in {}", args.to, path.display()));
        };
        let exporter = match &args.exporter {
            None => snap.config.policy.exporter.clone(),
            Some(id) => match snap.config.policy.entities.iter().find(|e| e.id == *id) {
                Some(e) => Some(e.clone()),
                None => {
                    return fail(format!("no entity {id:?} in {}", path.display()));
                }
            },
        };
        (
            snap.engine.clone(),
            r.id.to_string(),
            r.country,
            (*r.entity).clone(),
            exporter,
            snap.config.policy.contracts.clone(),
        )
    } else {
        let Some(engine) = builtin_engine() else {
            return ExitCode::FAILURE;
        };
        let country = match Country::parse(&args.to) {
            Ok(c) => c,
            Err(e) => return fail(format!("{e} (without --config, --to is a country)")),
        };
        let sector = match args.sector.as_str() {
            "commercial" => Sector::Commercial,
            "non_profit" => Sector::NonProfit,
            "public" => Sector::Public,
            other => return fail(format!("unknown sector {other:?}")),
        };
        let mut entity = Entity::new("recipient", country);
        entity.sector = Some(sector);
        entity.certifications = args
            .certified
            .iter()
            .map(|s| domicile_policy::Certification {
                scheme: s.clone(),
                validity: domicile_policy::Validity {
                    from: Date::from_unix_days(0),
                    to: None,
                },
                hr: false,
            })
            .collect();
        (
            engine,
            country.to_string(),
            country,
            entity,
            None,
            Vec::new(),
        )
    };
    let citizenship: Result<Vec<Country>, _> = args
        .citizenship
        .iter()
        .map(|s| Country::parse(s.trim()))
        .collect();
    let citizenship = match citizenship {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    if !domicile_policy::model::is_known_purpose(&args.purpose) {
        return fail(format!(
            "unknown purpose {:?}; expected one of {}",
            args.purpose,
            domicile_policy::model::purpose_names()
        ));
    }
    let q = Query {
        jurisdictions: &subjects,
        citizenship: &citizenship,
        incomplete: false,
        categories: &categories,
        purpose: &args.purpose,
        destination: Destination {
            region: &region,
            country,
            entity: &entity,
        },
        at,
        instant,
        facts: Facts {
            gpc: args.gpc,
            limit_sensitive: false,
            frequency: if args.occasional {
                Frequency::Occasional
            } else {
                Frequency::Systematic
            },
            evidence: &args.evidence,
            exporter: exporter.as_deref(),
            contracts: &contracts,
            volume: None,
            manual: false,
        },
    };
    let d = engine.evaluate(&q);
    if args.json {
        return match serde_json::to_string(&d) {
            Ok(j) => {
                emit(j);
                ExitCode::SUCCESS
            }
            Err(e) => fail(e.to_string()),
        };
    }
    println!("verdict: {}", d.verdict);
    println!("reason: {}", d.reason_code);
    if !d.basis.is_empty() {
        let b: Vec<&str> = d.basis.iter().map(|b| &**b).collect();
        println!("basis: {}", b.join(", "));
    }
    if let Some(r) = d.re_evaluate_at {
        println!("re-evaluate at: {r}");
    }
    if !d.conditions.is_empty() {
        println!("conditions:");
        for c in &d.conditions {
            println!("  - {c}");
        }
    }
    println!("trail:");
    for r in &d.reasons {
        println!("  [{}] {}: {}", r.step, r.rule, r.finding);
    }
    ExitCode::SUCCESS
}

/// Reads an Ed25519 public key written as hex.
fn read_public_key(path: &Path) -> Result<ed25519_dalek::VerifyingKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| {
            format!(
                "{}: not an Ed25519 public key (64 hex digits)",
                path.display()
            )
        })
}

fn keygen(file: &Path) -> ExitCode {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let seed: [u8; 32] = rand::random();
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .and_then(|mut f| writeln!(f, "{}", hex::encode(seed)));
    if let Err(e) = written {
        eprintln!("error: {}: {e}", file.display());
        return ExitCode::FAILURE;
    }
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    println!("wrote {}", file.display());
    println!("public key {}", hex::encode(public.as_bytes()));
    ExitCode::SUCCESS
}
