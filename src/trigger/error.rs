//! `ApiError`: every way a Trigger.dev API call can fail. Each message names the request's URL
//! (never the secret key), the cause once, and the setting to check when one can cure it.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

use crate::net::error_chain::Cause;

/// A failed Trigger.dev API call. `endpoint` is the request's URL as sent, without its query
/// (`https://api.trigger.dev/api/v1/runs/run_abc/events`; a user name or password in
/// `trigger.api_url` is left out too); transient variants say how many attempts were made.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("cannot build the Trigger.dev API client: {reason}")]
    Build { reason: String },

    #[error(
        "Trigger.dev rejected the secret key ({}) with HTTP {status} on GET {endpoint}; check trigger.secret_key \
         (TRIGGER_SECRET_KEY): the key must belong to the project and environment of the run",
        key_description(*environment)
    )]
    Unauthorized {
        endpoint: String,
        status: u16,
        /// The key's environment (`"dev"`, `"prod"`, `"stg"`, `"preview"`) read from its prefix.
        environment: Option<&'static str>,
    },

    #[error("GET {endpoint}: not found (HTTP 404{}); {}", says(message), not_found_cure(message))]
    NotFound {
        endpoint: String,
        message: Option<ErrorBody>,
    },

    #[error(
        "GET {endpoint}: still rate limited by Trigger.dev (HTTP 429) after {attempts} attempts; the \
         environment's budget is shared with the application: lower trigger.requests_per_minute or raise \
         trigger.rate_limit_reserve"
    )]
    RateLimited { endpoint: String, attempts: u32 },

    #[error(
        "GET {endpoint}: Trigger.dev answered HTTP {status}{} after {attempts} attempt(s){}",
        says(message),
        not_json_cure(message)
    )]
    Server {
        endpoint: String,
        status: u16,
        message: Option<ErrorBody>,
        attempts: u32,
    },

    #[error(
        "GET {endpoint}: Trigger.dev refused the request with HTTP {status}{}{}",
        says(message),
        not_json_cure(message)
    )]
    Rejected {
        endpoint: String,
        status: u16,
        message: Option<ErrorBody>,
    },

    /// No response head within `timeout`, or a body that stalled for `timeout`. (A body still
    /// arriving after the overall body deadline is a `BodyCut`.)
    #[error(
        "GET {endpoint}: timed out after {} (trigger.timeout), {attempts} attempt(s); check trigger.api_url \
         (TRIGGER_API_URL) and the network, or raise trigger.timeout",
        humantime::format_duration(*timeout)
    )]
    Timeout {
        endpoint: String,
        timeout: Duration,
        attempts: u32,
    },

    /// No answer: the connection failed (refused, DNS, TLS) or dropped before the response.
    #[error(
        "GET {endpoint}: connection failed after {attempts} attempt(s): {reason}; {}",
        connection_cure(*cause)
    )]
    Connection {
        endpoint: String,
        /// The transport's error and its causes, each once (`net::error_chain`).
        reason: String,
        cause: Cause,
        attempts: u32,
    },

    #[error("GET {endpoint}: the response body was cut off before its end after {attempts} attempt(s): {reason}")]
    BodyCut {
        endpoint: String,
        reason: String,
        attempts: u32,
    },

    #[error("GET {endpoint}: the response body is larger than trigger.max_body_bytes ({limit} bytes, decompressed)")]
    BodyTooLarge { endpoint: String, limit: u64 },

    /// A successful status with a body that is not JSON: a web page where the API should be.
    #[error("GET {endpoint}: the response is not JSON; it starts with {snippet:?}; {NOT_THE_API}")]
    NotJson { endpoint: String, snippet: String },

    #[error("GET {endpoint}: unexpected JSON: {reason}")]
    Invalid { endpoint: String, reason: String },

    /// A body without what the bridge cannot do without (a run's `id`, a trace's `traceId`…),
    /// as the typed views (`RunTrace::from_value`…) find it, knowing no endpoint. The client
    /// reports it as [`ApiError::Invalid`], naming the endpoint.
    #[error("{reason}")]
    Shape { reason: String },
}

/// What the body of an error answer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorBody {
    /// Trigger.dev's JSON error: its `error` (or `message`, `detail`, `title`), shortened.
    Message(String),
    /// A body that is not Trigger.dev's JSON (a web server's or a proxy's page, or nothing): its
    /// start, whitespace collapsed. The request most likely did not reach the API.
    NotJson(String),
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorBody::Message(message) => f.write_str(message),
            ErrorBody::NotJson(excerpt) if excerpt.is_empty() => f.write_str("an empty body, not Trigger.dev's JSON"),
            ErrorBody::NotJson(excerpt) => write!(f, "not Trigger.dev's JSON but {excerpt:?}"),
        }
    }
}

/// The cure of an answer that did not come from Trigger.dev's API.
const NOT_THE_API: &str =
    "check trigger.api_url (TRIGGER_API_URL): the API's base URL, such as https://api.trigger.dev, without a path";

impl ApiError {
    /// True when trying again later may succeed (rate limits, 5xx, timeouts, connection trouble,
    /// cut bodies). The client has already retried these; this is for schedulers deciding whether
    /// to come back to a run.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Timeout { .. }
                | Self::Connection { .. }
                | Self::BodyCut { .. }
        )
    }

    /// The request path the error is about (`None` for [`ApiError::Build`] and
    /// [`ApiError::Shape`]).
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            Self::Build { .. } | Self::Shape { .. } => None,
            Self::Unauthorized { endpoint, .. }
            | Self::NotFound { endpoint, .. }
            | Self::RateLimited { endpoint, .. }
            | Self::Server { endpoint, .. }
            | Self::Rejected { endpoint, .. }
            | Self::Timeout { endpoint, .. }
            | Self::Connection { endpoint, .. }
            | Self::BodyCut { endpoint, .. }
            | Self::BodyTooLarge { endpoint, .. }
            | Self::NotJson { endpoint, .. }
            | Self::Invalid { endpoint, .. } => Some(endpoint),
        }
    }

    /// Replaces `secret` wherever a quoted body or a transport's reason could repeat it (a
    /// proxy's page echoing the `Authorization` header): the key never reaches a message.
    pub(crate) fn scrubbed(mut self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        let scrub = |text: &mut String| {
            if text.contains(secret) {
                *text = text.replace(secret, "****");
            }
        };
        match &mut self {
            Self::NotFound { message, .. } | Self::Server { message, .. } | Self::Rejected { message, .. } => {
                if let Some(ErrorBody::Message(text) | ErrorBody::NotJson(text)) = message {
                    scrub(text);
                }
            }
            Self::NotJson { snippet: text, .. }
            | Self::Connection { reason: text, .. }
            | Self::BodyCut { reason: text, .. }
            | Self::Invalid { reason: text, .. } => scrub(text),
            _ => {}
        }
        self
    }

    /// Sets the attempt count of the variants that carry one.
    pub(crate) fn with_attempts(mut self, count: u32) -> Self {
        match &mut self {
            Self::RateLimited { attempts, .. }
            | Self::Server { attempts, .. }
            | Self::Timeout { attempts, .. }
            | Self::Connection { attempts, .. }
            | Self::BodyCut { attempts, .. } => *attempts = count,
            _ => {}
        }
        self
    }
}

/// `a tr_dev_ key (dev environment)`: the prefix is printed next to the key in the dashboard, so it
/// is safe to show and tells the operator which key to look at.
fn key_description(environment: Option<&'static str>) -> String {
    match environment {
        Some(environment) => format!("a tr_{environment}_… key, {environment} environment"),
        None => "a key without a tr_dev_/tr_prod_/tr_stg_/tr_preview_ prefix".to_owned(),
    }
}

fn says(message: &Option<ErrorBody>) -> String {
    message.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
}

/// A 404 in Trigger.dev's JSON is about the run; one in anything else, about the URL (a wrong
/// path prefix answers 404 for every run).
fn not_found_cure(message: &Option<ErrorBody>) -> &'static str {
    match message {
        Some(ErrorBody::NotJson(_)) => NOT_THE_API,
        _ => {
            "check the run id, and that trigger.secret_key (TRIGGER_SECRET_KEY) is the key of the run's \
             project and environment"
        }
    }
}

/// `; ` and the cure of an answer that is not Trigger.dev's, or nothing for the API's own.
fn not_json_cure(message: &Option<ErrorBody>) -> String {
    match message {
        Some(ErrorBody::NotJson(_)) => format!("; {NOT_THE_API}"),
        _ => String::new(),
    }
}

fn connection_cure(cause: Cause) -> &'static str {
    match cause {
        Cause::Refused => "check trigger.api_url (TRIGGER_API_URL): nothing listens at its host and port",
        Cause::Dns => "check trigger.api_url (TRIGGER_API_URL): its host name does not resolve",
        Cause::Certificate => {
            "check trigger.api_url (TRIGGER_API_URL); a self-hosted instance's certificate must be trusted by \
             this host (its CA in the system's store, or in SSL_CERT_FILE)"
        }
        Cause::NotTls => "check trigger.api_url (TRIGGER_API_URL): the server there does not speak TLS (http://?)",
        Cause::TimedOut | Cause::Other => "check trigger.api_url (TRIGGER_API_URL) and the network",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_names_the_prefix() {
        let error = ApiError::Unauthorized {
            endpoint: "/api/v1/runs/run_x/events".into(),
            status: 401,
            environment: Some("dev"),
        };
        let message = error.to_string();
        assert!(message.contains("tr_dev_") && message.contains("401"), "{message}");
        assert!(!error.is_retryable());
        let unknown = ApiError::Unauthorized {
            endpoint: "/x".into(),
            status: 403,
            environment: None,
        };
        assert!(unknown.to_string().contains("without a tr_dev_/"));
    }

    #[test]
    fn timeout_names_the_duration_and_attempts() {
        let error = ApiError::Timeout {
            endpoint: "/api/v3/runs/run_x".into(),
            timeout: Duration::from_millis(1500),
            attempts: 0,
        }
        .with_attempts(3);
        assert_eq!(
            error.to_string(),
            "GET /api/v3/runs/run_x: timed out after 1s 500ms (trigger.timeout), 3 attempt(s); check \
             trigger.api_url (TRIGGER_API_URL) and the network, or raise trigger.timeout"
        );
        assert!(error.is_retryable());
        assert_eq!(error.endpoint(), Some("/api/v3/runs/run_x"));
    }
}
