//! RFC 9457 problem responses. Bodies never echo request content.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::body::Body;

/// The problem body. `type` is a URN naming the problem; `reason` is the stable machine code.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_jurisdiction: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Seconds for a `Retry-After` header (503s the client may retry).
    #[serde(skip)]
    pub retry_after: Option<u32>,
    /// Answered with the `WWW-Authenticate: Bearer error="invalid_token"` challenge (RFC 6750
    /// section 3.1): a bearer token that did not verify.
    #[serde(skip)]
    pub invalid_bearer: bool,
    /// Extension members (RFC 9457 section 3.2) particular to one problem; boxed, as few
    /// problems have any and problems travel in every request's context.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub members: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl Problem {
    /// A problem named `code`, with the standard title for `status`.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:domicile:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            reason: None,
            decision_id: None,
            subject_jurisdiction: None,
            destination_region: None,
            request_id: None,
            retry_after: None,
            invalid_bearer: false,
            members: None,
        }
    }

    /// Adds an extension member.
    pub fn with_member(mut self, name: &str, value: impl Into<serde_json::Value>) -> Problem {
        self.members
            .get_or_insert_default()
            .insert(name.to_owned(), value.into());
        self
    }

    pub fn with_reason(mut self, reason: &str) -> Problem {
        self.reason = Some(reason.to_owned());
        self
    }

    pub fn with_decision(mut self, id: &str) -> Problem {
        self.decision_id = Some(id.to_owned());
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The HTTP response carrying this problem.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let answered = Answered {
            code: self
                .kind
                .strip_prefix("urn:domicile:problem:")
                .unwrap_or(&self.kind)
                .to_owned(),
            decision_id: self.decision_id.clone(),
        };
        let bytes = serde_json::to_vec(&self).unwrap_or_else(|_| {
            br#"{"type":"urn:domicile:problem:internal","title":"Internal Server Error","status":500}"#.to_vec()
        });
        let mut res = Response::new(Body::full(Bytes::from(bytes)));
        *res.status_mut() = status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.invalid_bearer {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        res.extensions_mut().insert(answered);
        res
    }
}

/// Set on every problem response: which problem the gateway answered with, for the record of
/// a request refused before a decision.
#[derive(Debug, Clone)]
pub struct Answered {
    pub code: String,
    pub decision_id: Option<String>,
}

/// Marks a response so the connection is closed after it (HTTP/1).
pub fn close_connection(mut res: Response<Body>) -> Response<Body> {
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}
