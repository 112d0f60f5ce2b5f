//! The per-request context each phase adds to, carried in the request's extensions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use domicile_policy::Decision;
use domicile_regions::{ClientAddr, Resolution};
use http::{HeaderValue, Response, StatusCode};

use crate::body::Body;
use crate::framing::FramingLog;
use crate::inspect::Inspection;
use crate::problem::Problem;
use crate::state::Snapshot;

/// The connection a request came on and when the server took its head, put on the request
/// by the server: the clocks are read once for every phase that needs them.
#[derive(Debug, Clone)]
pub struct Received {
    pub conn: Arc<ConnInfo>,
    /// The wall clock, in microseconds since the Unix epoch.
    pub micros: i64,
    /// The monotonic clock, read with `micros`: later times of the request are `micros` plus
    /// the monotonic time since `started`.
    pub started: Instant,
    /// The head's framing facts, given only by the lean HTTP/1.1 server, which read the head
    /// itself (so their presence says that server will write the answer). Otherwise they are
    /// the next in the connection's log ([`crate::framing::FramingLog`]), which the sniffer
    /// under hyper fills.
    pub framing: Option<crate::framing::FramingFacts>,
}

impl Received {
    /// `conn`'s request, received now.
    pub fn now(conn: Arc<ConnInfo>) -> Received {
        Received {
            conn,
            micros: crate::clock::now_micros(),
            started: Instant::now(),
            framing: None,
        }
    }
}

/// What the server knows about the connection a request came on.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
    /// The TLS server name the client asked for (lower-case), when it sent one.
    pub sni: Option<String>,
    /// Text forms made once per connection, not per request.
    pub peer_ip: String,
    pub local_text: String,
    pub peer_truncated: domicile_regions::client_addr::Truncated,
    /// Framing facts hyper does not expose, recorded per HTTP/1 request head in order.
    pub framing: Arc<FramingLog>,
    /// The client's verified certificate (mTLS), when it presented one.
    pub client_cert: Option<rustls::pki_types::CertificateDer<'static>>,
}

impl ConnInfo {
    pub fn new(
        peer: SocketAddr,
        local: SocketAddr,
        tls: bool,
        sni: Option<String>,
        framing: Arc<FramingLog>,
    ) -> ConnInfo {
        ConnInfo {
            peer,
            local,
            tls,
            sni,
            peer_ip: peer.ip().to_string(),
            local_text: local.to_string(),
            peer_truncated: domicile_regions::client_addr::truncate(peer.ip()),
            framing,
            client_cert: None,
        }
    }

    /// The connection's verified client certificate.
    pub fn with_client_cert(
        mut self,
        cert: Option<rustls::pki_types::CertificateDer<'static>>,
    ) -> ConnInfo {
        self.client_cert = cert;
        self
    }

    /// Whether the verified client certificate is valid for one of these DNS names.
    pub fn client_identity_in(&self, names: &[rustls::pki_types::ServerName<'static>]) -> bool {
        let Some(der) = &self.client_cert else {
            return false;
        };
        let Ok(cert) = webpki::EndEntityCert::try_from(der) else {
            return false;
        };
        names
            .iter()
            .any(|n| cert.verify_is_valid_for_subject_name(n).is_ok())
    }
}

/// What the gateway will do with the request once the decision is recorded.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send it to a backend of this region.
    Forward { region: Arc<str> },
    /// Answer with this problem (451 block, 413/415/400 rejection, 503 unavailable).
    Respond(Problem),
}

impl Action {
    /// The outcome word recorded in the decision record.
    pub fn outcome(&self) -> &'static str {
        match self {
            Action::Forward { .. } => "forwarded",
            Action::Respond(p) if p.status == 451 => "blocked",
            Action::Respond(p) if p.status >= 500 => "unavailable",
            Action::Respond(_) => "rejected",
        }
    }
}

/// Everything the phases learned about one request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub decision_id: String,
    /// The decision id as a header value, made once and shared by every header that carries it.
    pub decision_header: HeaderValue,
    pub received_micros: i64,
    /// The monotonic clock when `received_micros` was read.
    pub started: Instant,
    pub snapshot: Arc<Snapshot>,
    pub conn: Arc<ConnInfo>,
    /// Index of the matched route in the snapshot.
    pub route: Option<usize>,
    pub inspection: Inspection,
    pub client: Option<ClientAddr>,
    pub resolution: Option<Resolution>,
    /// The subject id for the directory (personal data: never recorded or logged).
    pub subject_id: Option<String>,
    /// Why the request's token did not verify, when it carried one that did not (a token that
    /// verified with an unusable claim value is not here).
    pub invalid_token: Option<&'static str>,
    /// What the subject directory contributed.
    pub directory: DirectoryUse,
    /// The directory entry a first write will store once the decision record is written.
    pub first_write: Option<PendingFirstWrite>,
    pub decision: Option<Decision>,
    /// The region the subject calls home, where the record is stored.
    pub home_region: Option<Arc<str>>,
    /// The region the request was evaluated for.
    pub destination: Option<Arc<str>>,
    pub action: Option<Action>,
    /// False in dry-run mode: the verdict was recorded but not applied.
    pub enforced: bool,
    /// The answer is written by the lean HTTP/1.1 server, which writes a backend's header
    /// lines kept as they came ([`crate::lean::RawFields`]).
    pub lean_server: bool,
    /// The lawful destination has no live backend and no lawful failover exists.
    pub unavailable: bool,
    /// This request's share of the inspection buffer budget.
    pub buffer_permit: Option<Arc<tokio::sync::OwnedSemaphorePermit>>,
    /// This request's place under the concurrency limit.
    pub permit: Option<crate::limits::Place>,
}

/// A subject's first write, stored in the directory only after the decision record that says
/// so is written (see [`crate::decide::commit_first_write`]).
#[derive(Debug, Clone)]
pub struct PendingFirstWrite {
    /// The subject id (personal data: never recorded or logged).
    pub subject: String,
    pub entry: domicile_regions::directory::DirectoryEntry,
}

/// What the subject directory contributed to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirectoryUse {
    /// No directory, or no subject id in the request.
    #[default]
    None,
    /// The subject id has no entry.
    Absent,
    /// The subject's entry gave the home region and jurisdiction.
    Found,
    /// The subject had no entry; this request's destination is stored as its home once the
    /// decision record is written.
    Stored,
    /// The directory could not be read or written.
    Failed,
}

impl DirectoryUse {
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            DirectoryUse::None => None,
            DirectoryUse::Absent => Some("absent"),
            DirectoryUse::Found => Some("found"),
            DirectoryUse::Stored => Some("stored"),
            DirectoryUse::Failed => Some("failed"),
        }
    }
}

/// What the edge learns about a finished request, set on the response's extensions.
#[derive(Debug, Clone)]
pub struct Summary {
    pub route: Option<Arc<str>>,
    pub verdict: &'static str,
    pub decision_id: HeaderValue,
    pub subject: Option<domicile_policy::Country>,
    pub region: Option<Arc<str>>,
    /// A backend's header lines passed on as they came ([`crate::lean::RawFields`]), for the
    /// lean server to write: carried here, in the one extension the answer has, rather than in
    /// one of their own.
    pub raw: Option<crate::lean::RawFields>,
}

/// The request's context. It travels boxed in the request's extensions, so what moves between
/// layers and into the forward step's future is a pointer, not the whole context; these are
/// the only places that know it is boxed.
pub fn of<B>(req: &http::Request<B>) -> Option<&RequestContext> {
    req.extensions().get::<Box<RequestContext>>().map(|c| &**c)
}

/// [`of`], to change.
pub fn of_mut<B>(req: &mut http::Request<B>) -> Option<&mut RequestContext> {
    req.extensions_mut()
        .get_mut::<Box<RequestContext>>()
        .map(|c| &mut **c)
}

/// Takes the context off the request (the forward step, which carries it to the effect).
pub fn take<B>(req: &mut http::Request<B>) -> Option<Box<RequestContext>> {
    req.extensions_mut().remove::<Box<RequestContext>>()
}

/// Puts the context on the request (the limits step, where it is made).
pub fn attach<B>(req: &mut http::Request<B>, ctx: RequestContext) {
    req.extensions_mut().insert(Box::new(ctx));
}

/// The response for a request that lost its context: an internal error, never a forward.
pub fn missing() -> Response<Body> {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the request context is missing; nothing was forwarded",
    )
    .into_response()
}
