//! Configuration: the TOML file is read into raw structs ([`raw`]) and converted into validated
//! types that cannot be invalid. Every problem found is reported at once, each with file, line,
//! column and key.

pub mod raw;
pub mod signals;
pub mod trace;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use domicile_policy::{
    Assessment, Category, Certification, Contract, Country, Date, Entity, Frequency, Override,
    OverrideEffect, Role, Sector, Unmodelled, Validity,
};
use ipnet::IpNet;

use raw::{FileConfig, S};

/// One problem in a config file, located in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The dotted key path (`routes[2].placement`), empty when the file cannot be parsed.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        } else {
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, self.line, self.column, self.key, self.message
            )
        }
    }
}

/// All the problems of one config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, p) in self.0.iter().enumerate() {
            if n > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Roots for optional client certificates; a verified one is an mTLS identity.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    pub max_concurrent_requests: usize,
    pub max_connections: usize,
    /// All bodies buffered for inspection at once, across requests.
    pub max_buffered_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    pub header_read: Duration,
    pub body_read: Duration,
    pub idle: Duration,
    /// A response the client takes nothing of for this long ends its connection.
    pub send: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub worker_threads: Option<usize>,
    /// The region this gateway runs in (recorded in every decision).
    pub region: Option<Arc<str>>,
    /// The instance name in records; the host name and a random suffix by default.
    pub instance: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token: Option<String>,
}

/// How durable a decision record must be before the request takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync each record before forwarding.
    Always,
    /// Group commit: requests wait for a shared fsync.
    Batch,
    /// Written to the OS, no fsync.
    None,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Always => "always",
            Durability::Batch => "batch",
            Durability::None => "none",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TraceConfig {
    pub dir: PathBuf,
    pub durability: Durability,
    /// Append an outcome line (upstream status and latency) after each forwarded request.
    pub outcomes: bool,
    /// Rotation, checkpoint signing and subject pseudonyms.
    pub extras: trace::TraceExtras,
}

/// Where the GeoIP database comes from.
#[derive(Debug, Clone)]
pub enum GeoipSource {
    File(PathBuf),
    /// The demo's built-in table.
    Demo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub url: http::Uri,
    pub protocol: Protocol,
    pub ca: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// Active health check: `GET` this path every interval; a failure marks the backend down.
    pub health: Option<(String, Duration)>,
    /// At most this many requests awaiting the backend at once; more are shed with 503.
    pub max_concurrent: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct RegionConfig {
    pub id: Arc<str>,
    pub country: Country,
    pub entity: Arc<Entity>,
    pub serves: Vec<Country>,
    pub backends: Vec<BackendConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The subject's home region.
    Home,
    /// A named region; the transfer there is evaluated.
    Fixed(Arc<str>),
    /// Anywhere: the route carries no personal data. Requests go to the named region.
    Any(Arc<str>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    DryRun,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamHost {
    Preserve,
    Backend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUninspectable {
    /// Refuse with 413/415.
    Reject,
    /// Keep it in the subject's home region.
    Local,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub id: Arc<str>,
    /// `route.<id>`: the rule id of this route's own entries in reason trails.
    pub rule: Arc<str>,
    pub host: Option<String>,
    pub path: String,
    pub methods: Option<Vec<http::Method>>,
    pub purpose: Arc<str>,
    pub placement: Placement,
    pub inspect: bool,
    pub mode: Mode,
    pub upstream_host: UpstreamHost,
    pub on_uninspectable: OnUninspectable,
    pub allow_upgrade: bool,
    /// How often the route's flow happens (Art 49 derogations need `occasional`).
    pub frequency: Frequency,
    /// Evidence on file for the route's flow (`contract_necessity`, `art9:9_2_h`, ...).
    pub evidence: Vec<String>,
    /// The contracts the route's transfers may rely on (all contracts unless the route names
    /// some).
    pub contracts: Arc<[Contract]>,
    /// Regions besides the home region that reads (GET, HEAD, OPTIONS) of a `home` route may
    /// go to, each only when the policy allows the transfer there.
    pub read_regions: Vec<Arc<str>>,
    /// What a binary multipart part does to inspection.
    pub binary_parts: crate::inspect::BinaryParts,
    /// Declared fields (`fields`, `openapi`), when the route has any.
    pub field_map: Option<Arc<crate::inspect::fieldmap::FieldMap>>,
}

/// `[inspect]`: what is inspected beyond the URL and body, and the decoding limits.
#[derive(Debug, Clone)]
pub struct InspectConfig {
    pub head: crate::inspect::HeadOptions,
    pub decode: crate::inspect::decode::DecodeLimits,
    pub max_parts: usize,
    /// The detectors' work budget per byte of a body.
    pub work_per_byte: usize,
}

#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub unmodelled: Unmodelled,
    pub allow_unverified: bool,
    pub knowledge_base: Vec<PathBuf>,
    /// The exporting entity (`policy.exporter`): whose contracts, role and flags count.
    pub exporter: Option<Arc<Entity>>,
    /// `[[contracts]]`.
    pub contracts: Vec<Contract>,
    /// `[[overrides]]`.
    pub overrides: Vec<Override>,
    /// Every `[[entities]]` entry, in file order.
    pub entities: Vec<Arc<Entity>>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: String,
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub log_format: LogFormat,
    pub log_level: String,
    pub trace: TraceConfig,
    pub geoip: Option<GeoipSource>,
    pub trusted_proxies: Vec<IpNet>,
    pub policy: PolicyConfig,
    pub regions: Vec<RegionConfig>,
    pub routes: Vec<RouteConfig>,
    /// `[resolve]`: jurisdiction signals, their precedence and the GeoIP rules.
    pub resolve: signals::ResolveConfig,
    pub inspect: InspectConfig,
    /// A digest of the file text, part of the policy revision.
    pub text_digest: u64,
}

/// Maps byte offsets to 1-based line and column.
struct Locator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    fn at(
        &self,
        offset: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigProblem {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigProblem {
            file: self.file.to_owned(),
            line,
            column,
            key: key.into(),
            message: message.into(),
        }
    }
}

struct Checker<'a> {
    loc: Locator<'a>,
    problems: Vec<ConfigProblem>,
    base_dir: PathBuf,
    /// The inspection buffer budget of the running gateway, when reloading.
    budget: Option<usize>,
}

impl Checker<'_> {
    fn err<T>(&mut self, spanned: &S<T>, key: impl Into<String>, message: impl Into<String>) {
        let p = self.loc.at(spanned.span().start, key, message);
        self.problems.push(p);
    }

    fn parse<T, V>(
        &mut self,
        v: &S<T>,
        key: &str,
        f: impl FnOnce(&T) -> Result<V, String>,
    ) -> Option<V> {
        match f(v.get_ref()) {
            Ok(x) => Some(x),
            Err(e) => {
                self.err(v, key, e);
                None
            }
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    fn duration(&mut self, v: &Option<S<String>>, key: &str, default: Duration) -> Duration {
        match v {
            None => default,
            Some(v) => self.parse(v, key, |s| parse_duration(s)).unwrap_or(default),
        }
    }

    fn positive(&mut self, v: &Option<S<i64>>, key: &str, default: usize) -> usize {
        match v {
            None => default,
            Some(v) => self
                .parse(v, key, |n| {
                    usize::try_from(*n)
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("must be a positive number, got {n}"))
                })
                .unwrap_or(default),
        }
    }

    fn one_of<T: Copy>(
        &mut self,
        v: &Option<S<String>>,
        key: &str,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(v) = v else { return default };
        match options.iter().find(|(name, _)| *name == v.get_ref()) {
            Some((_, t)) => *t,
            None => {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                self.err(
                    v,
                    key,
                    format!(
                        "unknown value {:?}; expected one of {}",
                        v.get_ref(),
                        names.join(", ")
                    ),
                );
                default
            }
        }
    }
}

/// Parses `250ms`, `10s`, `2m`, `1h`: from 1 ms to 7 days.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid duration {s:?}; expected a number and a unit (ms, s, m, h)")
    })?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => {
            return Err(format!(
                "invalid duration {s:?}; expected a unit of ms, s, m or h"
            ));
        }
    };
    match ms {
        Some(ms) if (1..=7 * 24 * 3_600_000).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(format!("duration {s:?} is out of range (1ms to 7 days)")),
    }
}

fn parse_country(s: &str) -> Result<Country, String> {
    Country::parse(s).map_err(|e| e.to_string())
}

fn parse_date(s: &str) -> Result<Date, String> {
    s.parse::<Date>().map_err(|e| e.to_string())
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "controller" => Ok(Role::Controller),
        "processor" => Ok(Role::Processor),
        other => Err(format!(
            "unknown role {other:?}; expected controller or processor"
        )),
    }
}

/// `[[contracts]]`: references to entities and instruments, dates in order, the SCC module
/// against the roles.
fn convert_contracts(
    c: &mut Checker<'_>,
    raw: &[raw::FileContract],
    entities: &HashMap<String, Arc<Entity>>,
    declared: &HashSet<&str>,
    kb: Option<&domicile_policy::KnowledgeBase>,
) -> Vec<Contract> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for (n, k) in raw.iter().enumerate() {
        let key = |f: &str| format!("contracts[{n}].{f}");
        if !ids.insert(k.id.get_ref().clone()) {
            c.err(
                &k.id,
                key("id"),
                format!("contract {:?} is defined twice", k.id.get_ref()),
            );
        }
        let entity = |c: &mut Checker<'_>, v: &S<String>, f: &str| {
            let e = entities.get(v.get_ref()).cloned();
            if e.is_none() && !declared.contains(v.get_ref().as_str()) {
                c.err(
                    v,
                    key(f),
                    format!("no entity with id {:?} in [[entities]]", v.get_ref()),
                );
            }
            e
        };
        let exporter = entity(c, &k.exporter, "exporter");
        let importer = entity(c, &k.importer, "importer");
        let safeguards: Vec<&domicile_policy::kb::Safeguard> = kb
            .map(|kb| {
                kb.safeguards()
                    .iter()
                    .filter(|s| s.instrument == *k.instrument.get_ref())
                    .collect()
            })
            .unwrap_or_default();
        if kb.is_some() && safeguards.is_empty() {
            let mut known: Vec<&str> = kb
                .map(|kb| {
                    kb.safeguards()
                        .iter()
                        .map(|s| s.instrument.as_str())
                        .collect()
                })
                .unwrap_or_default();
            known.sort_unstable();
            known.dedup();
            c.err(
                &k.instrument,
                key("instrument"),
                format!(
                    "unknown instrument {:?}; expected one of {}",
                    k.instrument.get_ref(),
                    known.join(", ")
                ),
            );
        }
        let module = k.module.as_ref().and_then(|m| {
            c.parse(m, &key("module"), |v| {
                u8::try_from(*v)
                    .ok()
                    .filter(|v| (1..=4).contains(v))
                    .ok_or_else(|| format!("module {v} does not exist; expected 1, 2, 3 or 4"))
            })
        });
        if safeguards.iter().any(|s| s.modules) {
            match (module, exporter.as_ref().and_then(|e| e.role), importer.as_ref().and_then(|e| e.role)) {
                (None, _, _) if k.module.is_none() => c.err(
                    &k.instrument,
                    key("module"),
                    format!(
                        "{} needs a module: 1 controller to controller, 2 controller to processor, 3 processor to processor, 4 processor to controller",
                        k.instrument.get_ref()
                    ),
                ),
                (Some(m), Some(er), Some(ir)) => {
                    let want = domicile_policy::engine::scc_module(er, ir);
                    if m != want
                        && let Some(span) = &k.module
                    {
                        c.err(
                            span,
                            key("module"),
                            format!(
                                "module {m} does not match the roles: exporter {} is a {}, importer {} is a {}, which is module {want}",
                                k.exporter.get_ref(),
                                er.as_str(),
                                k.importer.get_ref(),
                                ir.as_str()
                            ),
                        );
                    }
                }
                (Some(_), er, ir) if exporter.is_some() && importer.is_some() => {
                    let missing: Vec<&str> = [
                        (er.is_none(), k.exporter.get_ref().as_str()),
                        (ir.is_none(), k.importer.get_ref().as_str()),
                    ]
                    .into_iter()
                    .filter_map(|(m, id)| m.then_some(id))
                    .collect();
                    c.err(
                        &k.instrument,
                        key("module"),
                        format!(
                            "the module cannot be checked: set role (controller or processor) on entity {}",
                            missing.join(" and ")
                        ),
                    );
                }
                _ => {}
            }
        }
        let signed = c.parse(&k.signed, &key("signed"), |s| parse_date(s));
        let notified = k
            .notified
            .as_ref()
            .and_then(|v| c.parse(v, &key("notified"), |s| parse_date(s)));
        if let (Some(sd), Some(nd), Some(span)) = (signed, notified, k.notified.as_ref())
            && nd < sd
        {
            c.err(
                span,
                key("notified"),
                format!("{nd} is before the contract was signed on {sd}"),
            );
        }
        let assessment = k.tia.as_ref().and_then(|t| {
            let date = c.parse(&t.date, &key("tia.date"), |s| parse_date(s));
            let review = t
                .review
                .as_ref()
                .and_then(|v| c.parse(v, &key("tia.review"), |s| parse_date(s)));
            if let (Some(d), Some(r), Some(span)) = (date, review, t.review.as_ref())
                && r <= d
            {
                c.err(
                    span,
                    key("tia.review"),
                    format!("{r} is not after the assessment's date {d}"),
                );
            }
            Some(Assessment {
                id: t.id.get_ref().clone(),
                date: date?,
                review,
                impingement: t.impingement.unwrap_or(false),
            })
        });
        for (m, measure) in k.measures.iter().enumerate() {
            let v = measure.get_ref();
            let ok = match v.split_once(':') {
                Some(("encryption-keys-held", place)) => {
                    place == "EEA" || Country::parse(place).is_ok()
                }
                Some(("pseudonymised", fields)) => !fields.is_empty(),
                _ => false,
            };
            if !ok {
                c.err(
                    measure,
                    format!("contracts[{n}].measures[{m}]"),
                    format!(
                        "unknown measure {v:?}; expected encryption-keys-held:<EEA or country> or pseudonymised:<fields>"
                    ),
                );
            }
        }
        if let Some(signed) = signed {
            out.push(Contract {
                id: k.id.get_ref().clone(),
                instrument: k.instrument.get_ref().clone(),
                module,
                exporter: k.exporter.get_ref().clone(),
                importer: k.importer.get_ref().clone(),
                signed,
                assessment,
                measures: k.measures.iter().map(|m| m.get_ref().clone()).collect(),
                notified,
            });
        }
    }
    out
}

/// `[[overrides]]`: a rule may only tighten the law (`effect = "block"`) unless it is marked
/// `exception = true` with a reason and an owner.
fn convert_overrides(
    c: &mut Checker<'_>,
    raw: &[raw::FileOverride],
    kb: Option<&domicile_policy::KnowledgeBase>,
) -> Vec<Override> {
    let mut out = Vec::new();
    for (n, o) in raw.iter().enumerate() {
        let key = |f: &str| format!("overrides[{n}].{f}");
        let exception = o.exception.as_ref().is_some_and(|e| *e.get_ref());
        let effect = match o.effect.get_ref().as_str() {
            "block" => Some(OverrideEffect::Block),
            "allow" if !exception => {
                c.err(
                    &o.effect,
                    key("effect"),
                    "an override can only tighten the law; an \"allow\" must be marked exception = true with a reason and an owner",
                );
                None
            }
            "allow" => {
                let mut text = |v: &Option<S<String>>, f: &str| match v {
                    Some(v) if !v.get_ref().trim().is_empty() => Some(v.get_ref().clone()),
                    Some(v) => {
                        c.err(v, key(f), format!("an exception needs a non-empty {f}"));
                        None
                    }
                    None => {
                        c.err(&o.effect, key(f), format!("an exception needs a {f}"));
                        None
                    }
                };
                let reason = text(&o.reason, "reason");
                let owner = text(&o.owner, "owner");
                Some(OverrideEffect::Exception {
                    reason: reason.unwrap_or_default(),
                    owner: owner.unwrap_or_default(),
                })
            }
            other => {
                c.err(
                    &o.effect,
                    key("effect"),
                    format!("unknown effect {other:?}; expected block or allow"),
                );
                None
            }
        };
        let destinations: Vec<Country> = o
            .destinations
            .iter()
            .enumerate()
            .filter_map(|(m, v)| {
                c.parse(v, &format!("overrides[{n}].destinations[{m}]"), |s| {
                    parse_country(s)
                })
            })
            .collect();
        let categories: Vec<Category> = o
            .categories
            .iter()
            .enumerate()
            .filter_map(|(m, v)| {
                c.parse(v, &format!("overrides[{n}].categories[{m}]"), |s| {
                    s.parse::<Category>()
                })
            })
            .collect();
        for (m, p) in o.purposes.iter().enumerate() {
            if !domicile_policy::model::is_known_purpose(p.get_ref()) {
                c.err(
                    p,
                    format!("overrides[{n}].purposes[{m}]"),
                    format!(
                        "unknown purpose {:?}; expected one of {}",
                        p.get_ref(),
                        domicile_policy::model::purpose_names()
                    ),
                );
            }
        }
        for (m, r) in o.regimes.iter().enumerate() {
            if kb.is_some_and(|kb| !kb.has_regime(r.get_ref())) {
                c.err(
                    r,
                    format!("overrides[{n}].regimes[{m}]"),
                    format!("unknown regime {:?}", r.get_ref()),
                );
            }
        }
        if let Some(effect) = effect {
            out.push(Override {
                id: o.id.get_ref().clone(),
                destinations,
                purposes: o.purposes.iter().map(|p| p.get_ref().clone()).collect(),
                categories,
                regimes: o.regimes.iter().map(|r| r.get_ref().clone()).collect(),
                regions: o.regions.iter().map(|r| r.get_ref().clone()).collect(),
                effect,
            });
        }
    }
    out
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_within(path, None)
    }

    /// [`Config::load`] for a gateway already running, whose inspection buffer budget was set
    /// at start (`buffer_budget` bytes): a `server.limits.max_body_bytes` above it would turn
    /// every inspected request away with 503, and is a problem located like every other.
    pub fn load_for_running(path: &Path, buffer_budget: usize) -> Result<Config, ConfigErrors> {
        Config::load_within(path, Some(buffer_budget))
    }

    fn load_within(path: &Path, budget: Option<usize>) -> Result<Config, ConfigErrors> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigProblem {
                file: name.clone(),
                line: 0,
                column: 0,
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            }])
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::from_str_within(&text, &name, &base, budget)
    }

    /// Validates config text; relative paths resolve against `base_dir`.
    pub fn from_str(text: &str, file: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
        Config::from_str_within(text, file, base_dir, None)
    }

    fn from_str_within(
        text: &str,
        file: &str,
        base_dir: &Path,
        budget: Option<usize>,
    ) -> Result<Config, ConfigErrors> {
        let loc = Locator { file, text };
        let raw: FileConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let offset = e.span().map_or(0, |s| s.start);
                let key = e
                    .message()
                    .split('`')
                    .nth(1)
                    .filter(|_| e.message().contains("field"))
                    .unwrap_or("");
                return Err(ConfigErrors(vec![loc.at(
                    offset,
                    key,
                    e.message().trim_end(),
                )]));
            }
        };
        let mut c = Checker {
            loc,
            problems: Vec::new(),
            base_dir: base_dir.to_path_buf(),
            budget,
        };
        let config = convert(&mut c, raw, text);
        if c.problems.is_empty() {
            Ok(config)
        } else {
            c.problems.sort_by_key(|p| (p.line, p.column));
            Err(ConfigErrors(c.problems))
        }
    }
}

fn convert(c: &mut Checker<'_>, raw: FileConfig, text: &str) -> Config {
    let mut digest = domicile_policy::kb::Fnv::new();
    digest.write(text.as_bytes());

    // [server]
    let listen = match &raw.server.listen {
        Some(v) => c
            .parse(v, "server.listen", |s| {
                s.parse::<SocketAddr>()
                    .map_err(|_| format!("invalid address {s:?}; expected IP:PORT"))
            })
            .unwrap_or_else(default_listen),
        None => default_listen(),
    };
    let tls = raw.server.tls.as_ref().map(|t| TlsFiles {
        cert: c.path(t.cert.get_ref()),
        key: c.path(t.key.get_ref()),
        client_ca: t.client_ca.as_ref().map(|p| c.path(p.get_ref())),
    });
    let l = &raw.server.limits;
    let limits = Limits {
        max_header_bytes: c.positive(
            &l.max_header_bytes,
            "server.limits.max_header_bytes",
            64 * 1024,
        ),
        max_body_bytes: c.positive(
            &l.max_body_bytes,
            "server.limits.max_body_bytes",
            1024 * 1024,
        ),
        max_concurrent_requests: c.positive(
            &l.max_concurrent_requests,
            "server.limits.max_concurrent_requests",
            4096,
        ),
        max_connections: c.positive(&l.max_connections, "server.limits.max_connections", 16_384),
        max_buffered_bytes: c.positive(
            &l.max_buffered_bytes,
            "server.limits.max_buffered_bytes",
            256 * 1024 * 1024,
        ),
    };
    // One body must fit in the budget all bodies share, or every inspected request would be
    // turned away with 503.
    if limits.max_buffered_bytes < limits.max_body_bytes {
        match (&l.max_buffered_bytes, &l.max_body_bytes) {
            (Some(v), _) => c.err(
                v,
                "server.limits.max_buffered_bytes",
                "must be at least server.limits.max_body_bytes",
            ),
            (None, Some(v)) => c.err(
                v,
                "server.limits.max_body_bytes",
                format!(
                    "must be at most server.limits.max_buffered_bytes ({} bytes when not set)",
                    limits.max_buffered_bytes
                ),
            ),
            (None, None) => {}
        }
    } else if let Some(budget) = c.budget
        && limits.max_body_bytes > budget
    {
        let message = format!(
            "{} bytes is above the running inspection budget ({budget} bytes, \
             server.limits.max_buffered_bytes at start); raise both and restart",
            limits.max_body_bytes
        );
        match &l.max_body_bytes {
            Some(v) => c.err(v, "server.limits.max_body_bytes", message),
            // Not set: the default is what is too large; there is no line to name.
            None => {
                let p = c.loc.at(0, "server.limits.max_body_bytes", message);
                c.problems.push(ConfigProblem {
                    line: 0,
                    column: 0,
                    ..p
                });
            }
        }
    }
    let t = &raw.server.timeouts;
    let timeouts = Timeouts {
        header_read: c.duration(
            &t.header_read,
            "server.timeouts.header_read",
            Duration::from_secs(10),
        ),
        body_read: c.duration(
            &t.body_read,
            "server.timeouts.body_read",
            Duration::from_secs(30),
        ),
        idle: c.duration(&t.idle, "server.timeouts.idle", Duration::from_secs(60)),
        send: c.duration(&t.send, "server.timeouts.send", Duration::from_secs(60)),
        shutdown_grace: c.duration(
            &t.shutdown_grace,
            "server.timeouts.shutdown_grace",
            Duration::from_secs(30),
        ),
    };
    let worker_threads = raw
        .server
        .worker_threads
        .as_ref()
        .map(|w| c.positive(&Some(w.clone()), "server.worker_threads", 1));

    // [admin]
    let admin_listen = match &raw.admin.listen {
        Some(v) => c
            .parse(v, "admin.listen", |s| {
                s.parse::<SocketAddr>()
                    .map_err(|_| format!("invalid address {s:?}; expected IP:PORT"))
            })
            .unwrap_or_else(default_admin),
        None => default_admin(),
    };
    let token = raw.admin.token.as_ref().map(|t| t.get_ref().clone());
    if let Some(t) = &raw.admin.token
        && t.get_ref().trim().len() < 16
    {
        c.err(
            t,
            "admin.token",
            "the admin token must be at least 16 characters (e.g. openssl rand -hex 32)",
        );
    }
    if let Some(v) = &raw.admin.listen
        && !admin_listen.ip().is_loopback()
        && token.is_none()
    {
        c.err(
            v,
            "admin.listen",
            "a non-loopback admin listener needs admin.token",
        );
    }

    // [log]
    let log_format = c.one_of(
        &raw.log.format,
        "log.format",
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        LogFormat::Text,
    );
    let log_level = raw
        .log
        .level
        .as_ref()
        .map_or_else(|| "info".to_owned(), |l| l.get_ref().clone());

    // [trace]
    let trace = TraceConfig {
        dir: raw
            .trace
            .dir
            .as_ref()
            .map_or_else(|| c.path("traces"), |d| c.path(d.get_ref())),
        durability: c.one_of(
            &raw.trace.durability,
            "trace.durability",
            &[
                ("always", Durability::Always),
                ("batch", Durability::Batch),
                ("none", Durability::None),
            ],
            Durability::Batch,
        ),
        outcomes: raw.trace.outcomes.unwrap_or(true),
        extras: trace::validate(c, &raw),
    };

    // [geoip]
    let geoip = raw.geoip.as_ref().map(|g| {
        if g.database.get_ref() == "builtin:demo" {
            GeoipSource::Demo
        } else {
            GeoipSource::File(c.path(g.database.get_ref()))
        }
    });

    // [network]
    let trusted_proxies = raw
        .network
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(n, v)| {
            c.parse(v, &format!("network.trusted_proxies[{n}]"), |s| {
                let net = s
                    .parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("invalid CIDR {s:?}"))?;
                // Trusting a whole address family (or most of it) would let any client
                // choose its own address, and so its jurisdiction.
                let too_wide = match net {
                    IpNet::V4(n) => n.prefix_len() < 8,
                    IpNet::V6(n) => n.prefix_len() < 16,
                };
                if too_wide {
                    return Err(format!(
                        "{s} is too wide to trust: list your proxies' own networks (/8 or longer for IPv4, /16 or longer for IPv6)"
                    ));
                }
                Ok(net)
            })
        })
        .collect();

    // [policy]
    let unmodelled = c.one_of(
        &raw.policy.unmodelled_jurisdictions,
        "policy.unmodelled_jurisdictions",
        &[("block", Unmodelled::Block), ("allow", Unmodelled::Allow)],
        Unmodelled::Block,
    );
    let knowledge_base: Vec<PathBuf> = raw
        .policy
        .knowledge_base
        .iter()
        .map(|p| c.path(p.get_ref()))
        .collect();

    // The knowledge base with the user's files, best effort: a file that cannot be read or
    // parsed is reported when the snapshot is built.
    let extra_kb = knowledge_base
        .iter()
        .filter_map(|p| Some((p.display().to_string(), std::fs::read_to_string(p).ok()?)));
    let kb = domicile_policy::KnowledgeBase::builtin_with(extra_kb)
        .or_else(|_| domicile_policy::KnowledgeBase::builtin())
        .ok();

    // [[entities]]
    let mut entities: HashMap<String, Arc<Entity>> = HashMap::new();
    // Declared ids, valid or not: a reference to an invalid entity is not a second problem.
    let declared: HashSet<&str> = raw
        .entities
        .iter()
        .map(|e| e.id.get_ref().as_str())
        .collect();
    for (n, e) in raw.entities.iter().enumerate() {
        let key = |k: &str| format!("entities[{n}].{k}");
        let country = c.parse(&e.country, &key("country"), |s| parse_country(s));
        let sector = e.sector.as_ref().and_then(|s| {
            c.parse(s, &key("sector"), |v| match v.as_str() {
                "commercial" => Ok(Sector::Commercial),
                "non_profit" => Ok(Sector::NonProfit),
                "public" => Ok(Sector::Public),
                other => Err(format!(
                    "unknown sector {other:?}; expected one of commercial, non_profit, public"
                )),
            })
        });
        let mut certifications = Vec::new();
        for (m, cert) in e.certifications.iter().enumerate() {
            let ck = |k: &str| format!("entities[{n}].certifications[{m}].{k}");
            if let Some(kb) = &kb {
                let mut schemes: Vec<&str> = kb
                    .instruments()
                    .iter()
                    .filter_map(|i| i.scope.certification.as_deref())
                    .collect();
                schemes.sort_unstable();
                schemes.dedup();
                if !schemes.contains(&cert.scheme.get_ref().as_str()) {
                    c.err(
                        &cert.scheme,
                        ck("scheme"),
                        format!(
                            "unknown certification scheme {:?}: no knowledge-base row asks for it; expected one of {}",
                            cert.scheme.get_ref(),
                            schemes.join(", ")
                        ),
                    );
                }
            }
            let from = c.parse(&cert.valid_from, &ck("valid_from"), |s| parse_date(s));
            let to = cert
                .valid_to
                .as_ref()
                .and_then(|t| c.parse(t, &ck("valid_to"), |s| parse_date(s)));
            if let (Some(from), Some(to), Some(span)) = (from, to, cert.valid_to.as_ref())
                && to <= from
            {
                c.err(
                    span,
                    ck("valid_to"),
                    format!("{to} is not after valid_from {from}"),
                );
            }
            if let Some(from) = from {
                certifications.push(Certification {
                    scheme: cert.scheme.get_ref().clone(),
                    validity: Validity { from, to },
                    hr: cert.hr,
                });
            }
        }
        if entities.contains_key(e.id.get_ref()) {
            c.err(
                &e.id,
                key("id"),
                format!("entity {:?} is defined twice", e.id.get_ref()),
            );
        }
        let role = e
            .role
            .as_ref()
            .and_then(|r| c.parse(r, &key("role"), |v| parse_role(v)));
        if let Some(country) = country {
            entities.insert(
                e.id.get_ref().clone(),
                Arc::new(Entity {
                    id: e.id.get_ref().clone(),
                    name: e.name.clone().unwrap_or_else(|| e.id.get_ref().clone()),
                    country,
                    sector,
                    certifications,
                    role,
                    public_authority: e.public_authority.unwrap_or(false),
                    ciio: e.ciio.unwrap_or(false),
                    data_broker: e.data_broker,
                    organisation: e.organisation.as_ref().map(|o| o.get_ref().clone()),
                }),
            );
        }
    }

    // [[regions]]
    let mut regions = Vec::new();
    let mut region_ids = HashSet::new();
    let mut served: HashMap<Country, String> = HashMap::new();
    let today = crate::clock::today();
    let exporter = raw.policy.exporter.as_ref().and_then(|v| {
        let found = entities.get(v.get_ref()).cloned();
        if found.is_none() && !declared.contains(v.get_ref().as_str()) {
            c.err(
                v,
                "policy.exporter",
                format!("no entity with id {:?} in [[entities]]", v.get_ref()),
            );
        }
        found
    });
    let contracts = convert_contracts(c, &raw.contracts, &entities, &declared, kb.as_ref());
    let overrides = convert_overrides(c, &raw.overrides, kb.as_ref());
    for (n, r) in raw.regions.iter().enumerate() {
        let key = |k: &str| format!("regions[{n}].{k}");
        // A region's id names its trace directory: two ids must never share one (each keeps a
        // chain of its own), and `unresolved` holds the refusals.
        let id = r.id.get_ref();
        let plain = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !plain || id == "unresolved" {
            c.err(
                &r.id,
                key("id"),
                format!(
                    "region id {id:?} must be 1 to 64 letters, digits, '-' or '_', and not \"unresolved\" (it names the region's trace directory)"
                ),
            );
        }
        if !region_ids.insert(r.id.get_ref().clone()) {
            c.err(
                &r.id,
                key("id"),
                format!("region {:?} is defined twice", r.id.get_ref()),
            );
        }
        let country = c.parse(&r.country, &key("country"), |s| parse_country(s));
        let entity = match entities.get(r.entity.get_ref()) {
            Some(e) => Some(e.clone()),
            None if declared.contains(r.entity.get_ref().as_str()) => None,
            None => {
                c.err(
                    &r.entity,
                    key("entity"),
                    format!("no entity with id {:?} in [[entities]]", r.entity.get_ref()),
                );
                None
            }
        };
        let mut serves = Vec::new();
        for (m, s) in r.serves.iter().enumerate() {
            let sk = format!("regions[{n}].serves[{m}]");
            let countries: Vec<Country> = if s.get_ref().len() == 2 {
                c.parse(s, &sk, |v| parse_country(v)).into_iter().collect()
            } else {
                // A zone name: the countries in it today.
                let zone = s.get_ref();
                let members: Vec<Country> = kb
                    .as_ref()
                    .map(|kb| {
                        kb.zones()
                            .iter()
                            .filter(|z| &*z.zone == zone.as_str() && z.validity.contains(today))
                            .flat_map(|z| z.countries.iter().copied())
                            .collect()
                    })
                    .unwrap_or_default();
                if members.is_empty() {
                    c.err(
                        s,
                        &sk,
                        format!("{zone:?} is neither a country code nor a zone with members today"),
                    );
                }
                members
            };
            for country in countries {
                if let Some(prev) = served.insert(country, r.id.get_ref().clone()) {
                    c.err(
                        s,
                        &sk,
                        format!("{country} is already served by region {prev:?}"),
                    );
                }
                serves.push(country);
            }
        }
        let mut backends = Vec::new();
        for (m, b) in r.backends.iter().enumerate() {
            let bk = |k: &str| format!("regions[{n}].backends[{m}].{k}");
            let url = c.parse(&b.url, &bk("url"), |s| {
                let uri: http::Uri = s.parse().map_err(|e| format!("invalid URL {s:?}: {e}"))?;
                match uri.scheme_str() {
                    Some("http") | Some("https") => {}
                    _ => {
                        return Err(format!(
                            "invalid URL {s:?}: the scheme must be http or https"
                        ));
                    }
                }
                if uri.authority().is_none() {
                    return Err(format!("invalid URL {s:?}: no host"));
                }
                Ok(uri)
            });
            let protocol = c.one_of(
                &b.protocol,
                &bk("protocol"),
                &[("http1", Protocol::Http1), ("http2", Protocol::Http2)],
                Protocol::Http1,
            );
            let client_cert = match (&b.client_cert, &b.client_key) {
                (Some(cert), Some(key)) => Some((c.path(cert.get_ref()), c.path(key.get_ref()))),
                (None, None) => None,
                (Some(v), None) | (None, Some(v)) => {
                    c.err(
                        v,
                        bk("client_cert"),
                        "client_cert and client_key go together",
                    );
                    None
                }
            };
            let connect_timeout = c.duration(
                &b.connect_timeout,
                &bk("connect_timeout"),
                Duration::from_secs(2),
            );
            let response_timeout = c.duration(
                &b.response_timeout,
                &bk("response_timeout"),
                Duration::from_secs(30),
            );
            let health_interval = c.duration(
                &b.health_interval,
                &bk("health_interval"),
                Duration::from_secs(5),
            );
            let health = b.health_path.as_ref().and_then(|p| {
                c.parse(p, &bk("health_path"), |v| {
                    if v.starts_with('/') && crate::route::ambiguous_path(v).is_none() {
                        Ok((v.clone(), health_interval))
                    } else {
                        Err(format!(
                            "invalid health path {v:?}: an absolute path such as /healthz"
                        ))
                    }
                })
            });
            let max_concurrent = b
                .max_concurrent
                .as_ref()
                .map(|v| c.positive(&Some(v.clone()), &bk("max_concurrent"), 1));
            if let Some(url) = url {
                backends.push(BackendConfig {
                    url,
                    protocol,
                    ca: b.ca.as_ref().map(|p| c.path(p.get_ref())),
                    client_cert,
                    connect_timeout,
                    response_timeout,
                    health,
                    max_concurrent,
                });
            }
        }
        if r.backends.is_empty() {
            c.err(
                &r.id,
                key("backends"),
                "a region needs at least one backend",
            );
        }
        if let (Some(country), Some(entity)) = (country, entity) {
            regions.push(RegionConfig {
                id: Arc::from(r.id.get_ref().as_str()),
                country,
                entity,
                serves,
                backends,
            });
        }
    }

    for (n, o) in raw.overrides.iter().enumerate() {
        for (m, r) in o.regions.iter().enumerate() {
            if !region_ids.contains(r.get_ref()) {
                c.err(
                    r,
                    format!("overrides[{n}].regions[{m}]"),
                    format!("no region with id {:?}", r.get_ref()),
                );
            }
        }
    }

    // [[routes]]
    let mut routes = Vec::new();
    let mut route_ids = HashSet::new();
    for (n, r) in raw.routes.iter().enumerate() {
        let key = |k: &str| format!("routes[{n}].{k}");
        if !route_ids.insert(r.id.get_ref().clone()) {
            c.err(
                &r.id,
                key("id"),
                format!("route {:?} is defined twice", r.id.get_ref()),
            );
        }
        if !r.path.get_ref().starts_with('/') {
            c.err(&r.path, key("path"), "a route path starts with /");
        }
        let methods = r.methods.as_ref().map(|ms| {
            ms.iter()
                .filter_map(|m| {
                    c.parse(m, &key("methods"), |s| {
                        http::Method::from_bytes(s.to_ascii_uppercase().as_bytes())
                            .map_err(|_| format!("invalid method {s:?}"))
                    })
                })
                .collect()
        });
        let region_ref = |c: &mut Checker<'_>| -> Option<Arc<str>> {
            match &r.region {
                Some(v) if region_ids.contains(v.get_ref()) => {
                    Some(Arc::from(v.get_ref().as_str()))
                }
                Some(v) => {
                    c.err(
                        v,
                        key("region"),
                        format!("no region with id {:?}", v.get_ref()),
                    );
                    None
                }
                None => {
                    c.err(
                        &r.placement,
                        key("region"),
                        format!("placement {:?} needs a region", r.placement.get_ref()),
                    );
                    None
                }
            }
        };
        let placement = match r.placement.get_ref().as_str() {
            "home" => {
                if let Some(v) = &r.region {
                    c.err(
                        v,
                        key("region"),
                        "placement \"home\" takes no region: it is the subject's",
                    );
                }
                Some(Placement::Home)
            }
            "fixed" => region_ref(c).map(Placement::Fixed),
            "any" => region_ref(c).map(Placement::Any),
            other => {
                c.err(
                    &r.placement,
                    key("placement"),
                    format!("unknown placement {other:?}; expected one of home, fixed, any"),
                );
                None
            }
        };
        let mode = c.one_of(
            &r.mode,
            &key("mode"),
            &[("enforce", Mode::Enforce), ("dry_run", Mode::DryRun)],
            Mode::Enforce,
        );
        let upstream_host = match &r.upstream_host {
            None => UpstreamHost::Preserve,
            Some(v) => match v.get_ref().as_str() {
                "preserve" => UpstreamHost::Preserve,
                "backend" => UpstreamHost::Backend,
                other => {
                    c.err(
                        v,
                        key("upstream_host"),
                        format!("unknown value {other:?}; expected one of preserve, backend"),
                    );
                    UpstreamHost::Preserve
                }
            },
        };
        let on_uninspectable = c.one_of(
            &r.on_uninspectable,
            &key("on_uninspectable"),
            &[
                ("reject", OnUninspectable::Reject),
                ("local", OnUninspectable::Local),
            ],
            OnUninspectable::Reject,
        );
        let inspect = r
            .inspect
            .unwrap_or(!matches!(placement, Some(Placement::Any(_))));
        if !domicile_policy::model::is_known_purpose(r.purpose.get_ref()) {
            c.err(
                &r.purpose,
                key("purpose"),
                format!(
                    "unknown purpose {:?}; expected one of {}",
                    r.purpose.get_ref(),
                    domicile_policy::model::purpose_names()
                ),
            );
        }
        let frequency = c.one_of(
            &r.frequency,
            &key("frequency"),
            &[
                ("systematic", Frequency::Systematic),
                ("occasional", Frequency::Occasional),
            ],
            Frequency::Systematic,
        );
        let route_contracts: Arc<[Contract]> = match &r.contracts {
            None => Arc::from(contracts.clone()),
            Some(names) => {
                let mut picked = Vec::new();
                for (m, name) in names.iter().enumerate() {
                    match contracts.iter().find(|k| k.id == *name.get_ref()) {
                        Some(k) => picked.push(k.clone()),
                        None if raw
                            .contracts
                            .iter()
                            .any(|k| k.id.get_ref() == name.get_ref()) => {}
                        None => c.err(
                            name,
                            format!("routes[{n}].contracts[{m}]"),
                            format!("no contract with id {:?} in [[contracts]]", name.get_ref()),
                        ),
                    }
                }
                Arc::from(picked)
            }
        };
        let mut read_regions = Vec::new();
        for (m, v) in r.read_regions.iter().enumerate() {
            let rk = format!("routes[{n}].read_regions[{m}]");
            if placement != Some(Placement::Home) {
                c.err(v, &rk, "read_regions applies to placement \"home\" only");
            } else if region_ids.contains(v.get_ref()) {
                read_regions.push(Arc::from(v.get_ref().as_str()));
            } else {
                c.err(v, &rk, format!("no region with id {:?}", v.get_ref()));
            }
        }
        let binary_parts = c.one_of(
            &r.binary_parts,
            &key("binary_parts"),
            &[
                ("uninspectable", crate::inspect::BinaryParts::Uninspectable),
                ("skip", crate::inspect::BinaryParts::Skip),
            ],
            crate::inspect::BinaryParts::Uninspectable,
        );
        let field_map = field_map(c, r, n);
        if let Some(placement) = placement {
            routes.push(RouteConfig {
                id: Arc::from(r.id.get_ref().as_str()),
                rule: Arc::from(format!("route.{}", r.id.get_ref())),
                // As requests' hosts are compared: lower-case, without a port or a trailing
                // dot (`API.example.com.:8443` matches `Host: api.example.com`).
                host: r.host.as_ref().and_then(|h| {
                    let canonical = crate::route::canonical_host(h.get_ref()).into_owned();
                    if crate::route::valid_host(&canonical) {
                        Some(canonical)
                    } else {
                        c.err(h, key("host"), "not a host name or address");
                        None
                    }
                }),
                path: r.path.get_ref().clone(),
                methods,
                purpose: Arc::from(r.purpose.get_ref().as_str()),
                placement,
                inspect,
                mode,
                upstream_host,
                on_uninspectable,
                allow_upgrade: r.allow_upgrade.unwrap_or(false),
                frequency,
                evidence: r.evidence.iter().map(|e| e.get_ref().clone()).collect(),
                contracts: route_contracts,
                read_regions,
                binary_parts,
                field_map,
            });
        }
    }

    let region = raw.server.region.as_ref().and_then(|v| {
        if region_ids.contains(v.get_ref()) {
            Some(Arc::from(v.get_ref().as_str()))
        } else {
            c.err(
                v,
                "server.region",
                format!("no region with id {:?}", v.get_ref()),
            );
            None
        }
    });
    let resolve = signals::convert(c, &raw);
    Config {
        source: c.loc.file.to_owned(),
        server: ServerConfig {
            listen,
            tls,
            limits,
            timeouts,
            worker_threads,
            region,
            instance: raw.server.instance.clone(),
        },
        admin: AdminConfig {
            listen: admin_listen,
            token,
        },
        log_format,
        log_level,
        trace,
        geoip,
        trusted_proxies,
        policy: PolicyConfig {
            unmodelled,
            allow_unverified: raw.policy.allow_unverified.unwrap_or(false),
            knowledge_base,
            exporter,
            contracts,
            overrides,
            entities: raw
                .entities
                .iter()
                .filter_map(|e| entities.get(e.id.get_ref()).cloned())
                .collect(),
        },
        regions,
        routes,
        resolve,
        inspect: inspect_config(c, &raw.inspect),
        text_digest: digest.finish(),
    }
}

/// `[inspect]`.
fn inspect_config(c: &mut Checker<'_>, raw: &raw::FileInspect) -> InspectConfig {
    use crate::inspect::{CookieList, HeadOptions, HeaderList, decode::DecodeLimits};
    let defaults = DecodeLimits::default();
    let decode = DecodeLimits {
        max_decoded_bytes: c.positive(
            &raw.max_decoded_bytes,
            "inspect.max_decoded_bytes",
            defaults.max_decoded_bytes,
        ),
        max_ratio: u32::try_from(c.positive(
            &raw.max_decode_ratio,
            "inspect.max_decode_ratio",
            defaults.max_ratio as usize,
        ))
        .unwrap_or(u32::MAX),
    };
    let max_parts = c.positive(
        &raw.max_parts,
        "inspect.max_parts",
        crate::inspect::DEFAULT_MAX_PARTS,
    );
    let work_per_byte = c.positive(
        &raw.work_per_byte,
        "inspect.work_per_byte",
        crate::inspect::DEFAULT_WORK_PER_BYTE,
    );
    let header_names = |c: &mut Checker<'_>, list: &[S<String>], key: &str| {
        list.iter()
            .filter(|h| h.get_ref() != "*")
            .filter_map(|h| {
                c.parse(h, key, |s| {
                    http::HeaderName::from_bytes(s.to_ascii_lowercase().as_bytes())
                        .map_err(|_| format!("invalid header name {s:?}"))
                })
            })
            .collect::<Vec<_>>()
    };
    let skip = raw
        .skip_headers
        .as_deref()
        .map(|l| header_names(c, l, "inspect.skip_headers"))
        .unwrap_or_default();
    let headers = match &raw.headers {
        Some(list) if !list.iter().any(|v| v.get_ref() == "*") => {
            if let Some(first) = raw.skip_headers.as_deref().and_then(<[_]>::first) {
                c.err(
                    first,
                    "inspect.skip_headers",
                    "skip_headers applies to headers = [\"*\"] (the default); a list of headers is read as it is",
                );
            }
            HeaderList::Named(header_names(c, list, "inspect.headers"))
        }
        _ => HeaderList::All { skip },
    };
    let mut head = HeadOptions {
        headers,
        ..HeadOptions::default()
    };
    if let Some(list) = &raw.cookies {
        head.cookies = if list.iter().any(|v| v.get_ref() == "*") {
            CookieList::All
        } else {
            CookieList::Named(list.iter().map(|v| v.get_ref().clone()).collect())
        };
    }
    InspectConfig {
        head,
        decode,
        max_parts,
        work_per_byte,
    }
}

/// A route's `fields` and `openapi`, as one field map.
fn field_map(
    c: &mut Checker<'_>,
    r: &raw::FileRoute,
    n: usize,
) -> Option<Arc<crate::inspect::fieldmap::FieldMap>> {
    let mut map = crate::inspect::fieldmap::FieldMap::default();
    for (i, f) in r.fields.iter().enumerate() {
        if let Err(e) = map.declare(f.path.get_ref(), f.category.get_ref()) {
            // Name the value that is wrong: the category when the path parses.
            let (at, k) = if e.starts_with("unknown data category") {
                (&f.category, "category")
            } else {
                (&f.path, "path")
            };
            c.err(at, format!("routes[{n}].fields[{i}].{k}"), e);
        }
    }
    if let Some(file) = &r.openapi {
        let path = c.path(file.get_ref());
        match std::fs::read_to_string(&path) {
            Err(e) => c.err(
                file,
                format!("routes[{n}].openapi"),
                format!("cannot read {}: {e}", path.display()),
            ),
            Ok(text) => {
                if let Err(e) = map.load_openapi(&text) {
                    c.err(
                        file,
                        format!("routes[{n}].openapi"),
                        format!("{}: {e}", path.display()),
                    );
                }
            }
        }
    }
    (!map.is_empty()).then(|| Arc::new(map))
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}

fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9901))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, ConfigErrors> {
        Config::from_str(text, "t.toml", Path::new("/etc/domicile"))
    }

    #[test]
    fn unknown_key_names_file_line_column_and_key() {
        let e = check("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert_eq!(e.0.len(), 1);
        let p = &e.0[0];
        assert_eq!((p.line, p.column), (3, 1), "{p}");
        assert_eq!(p.key, "lisen");
        assert!(p.message.contains("unknown field"), "{p}");
    }

    #[test]
    fn every_semantic_problem_is_reported() {
        let text = r#"
[server]
listen = "nowhere"

[[entities]]
id = "e"
country = "Germany"

[[regions]]
id = "eu"
country = "DE"
entity = "missing"
backends = [{ url = "ftp://x" }]

[[routes]]
id = "r"
path = "customers"
purpose = "storage"
placement = "fixed"
region = "nope"
"#;
        let e = check(text).unwrap_err();
        let lines: Vec<String> = e.0.iter().map(ToString::to_string).collect();
        let want = [
            "t.toml:3:10: server.listen: invalid address",
            "t.toml:7:11: entities[0].country: invalid country code",
            "t.toml:12:10: regions[0].entity: no entity with id \"missing\"",
            "t.toml:13:21: regions[0].backends[0].url: invalid URL",
            "t.toml:17:8: routes[0].path: a route path starts with /",
            "t.toml:20:10: routes[0].region: no region with id \"nope\"",
        ];
        for w in want {
            assert!(
                lines.iter().any(|l| l.starts_with(w)),
                "missing {w:?} in {lines:#?}"
            );
        }
        assert_eq!(lines.len(), want.len(), "{lines:#?}");
    }

    /// A file of one entity and one region `id` (its id on line 7), then `extra`.
    fn one_region(id: &str, extra: &str) -> String {
        format!(
            "[[entities]]\nid = \"e\"\ncountry = \"DE\"\nsector = \"commercial\"\n\n\
             [[regions]]\nid = \"{id}\"\ncountry = \"DE\"\nentity = \"e\"\n\
             backends = [{{ url = \"http://127.0.0.1:1\" }}]\n{extra}"
        )
    }

    #[test]
    fn header_lists_are_checked_where_they_are_written() {
        use crate::inspect::HeaderList;
        let c = check(&one_region(
            "eu",
            "[inspect]\nskip_headers = [\"X-Note\"]\n",
        ))
        .unwrap();
        assert_eq!(
            c.inspect.head.headers,
            HeaderList::All {
                skip: vec![http::HeaderName::from_static("x-note")]
            }
        );
        let e = check(&one_region(
            "eu",
            "[inspect]\nheaders = [\"x-user\"]\nskip_headers = [\"x-note\", \"bad name\"]\n",
        ))
        .unwrap_err();
        let lines: Vec<String> = e.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "t.toml:13:17: inspect.skip_headers: skip_headers applies to headers = [\"*\"] (the default); a list of headers is read as it is",
                "t.toml:13:27: inspect.skip_headers: invalid header name \"bad name\"",
            ],
        );
    }

    #[test]
    fn region_ids_name_trace_directories_and_must_be_plain() {
        for (id, ok) in [
            ("eu-central_1", true),
            ("eu.west", false),
            ("eu/west", false),
            ("", false),
            ("unresolved", false),
        ] {
            let text = one_region(id, "");
            let lines: Vec<String> = match check(&text) {
                Ok(_) => Vec::new(),
                Err(e) => e.0.iter().map(ToString::to_string).collect(),
            };
            let refused = lines
                .iter()
                .any(|l| l.starts_with("t.toml:7:6: regions[0].id: region id"));
            assert_eq!(refused, !ok, "{id:?}: {lines:#?}");
        }
    }

    #[test]
    fn a_route_host_is_kept_as_request_hosts_are_compared() {
        let with_host = |host: &str| {
            check(&one_region(
                "eu",
                &format!(
                    "\n[[routes]]\nid = \"r\"\npath = \"/\"\npurpose = \"storage\"\n\
                     placement = \"home\"\nhost = \"{host}\"\n"
                ),
            ))
        };
        for given in [
            "API.example.com",
            "api.example.com.",
            "api.example.com:8443",
        ] {
            let c = with_host(given).unwrap();
            assert_eq!(
                c.routes[0].host.as_deref(),
                Some("api.example.com"),
                "{given}"
            );
        }
        let e = with_host("api example").unwrap_err().to_string();
        assert!(
            e.contains("t.toml:17:8: routes[0].host: not a host name or address"),
            "{e}"
        );
    }

    #[test]
    fn one_body_must_fit_in_the_shared_budget() {
        let e = check("[server.limits]\nmax_body_bytes = 300000000\n").unwrap_err();
        let lines: Vec<String> = e.0.iter().map(ToString::to_string).collect();
        assert!(
            lines.iter().any(|l| l.starts_with(
                "t.toml:2:18: server.limits.max_body_bytes: must be at most server.limits.max_buffered_bytes (268435456 bytes when not set)"
            )),
            "{lines:#?}"
        );
        let text = "[server.limits]\nmax_body_bytes = 300000000\nmax_buffered_bytes = 300000000\n";
        assert!(check(text).is_ok());
    }

    #[test]
    fn a_running_gateway_refuses_a_body_limit_above_its_budget_where_the_limit_is() {
        let within = |text: &str, budget| {
            Config::from_str_within(text, "t.toml", Path::new("/etc/domicile"), Some(budget))
                .err()
                .map(|e| e.to_string())
        };
        let text = "[server.limits]\nmax_buffered_bytes = 4000000\nmax_body_bytes = 3000000\n";
        assert_eq!(within(text, 3_000_000), None);
        assert_eq!(
            within(text, 2_000_000).as_deref(),
            Some(
                "t.toml:3:18: server.limits.max_body_bytes: 3000000 bytes is above the running \
                 inspection budget (2000000 bytes, server.limits.max_buffered_bytes at start); \
                 raise both and restart"
            )
        );
        // The default limit (1 MiB) is what is too large: no line to name, the key still named.
        let text = "[server.limits]\nmax_buffered_bytes = 4000000\n";
        assert_eq!(
            within(text, 1000).as_deref(),
            Some(
                "t.toml:0:0: server.limits.max_body_bytes: 1048576 bytes is above the running \
                 inspection budget (1000 bytes, server.limits.max_buffered_bytes at start); \
                 raise both and restart"
            )
        );
    }

    #[test]
    fn trusting_everyone_is_refused() {
        let e = check("[network]\ntrusted_proxies = [\"0.0.0.0/0\", \"10.0.0.0/8\", \"::/0\"]\n")
            .unwrap_err();
        let lines: Vec<String> = e.0.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(
            lines[0].contains("network.trusted_proxies[0]: 0.0.0.0/0 is too wide to trust"),
            "{lines:#?}"
        );
        assert!(
            lines[1].contains("network.trusted_proxies[2]: ::/0 is too wide"),
            "{lines:#?}"
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("2").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("99999999999999h").is_err());
        assert!(parse_duration("s").is_err());
    }
}
