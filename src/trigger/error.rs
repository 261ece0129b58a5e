//! `ApiError`: every way a Trigger.dev API call can fail, each naming the endpoint (whose path holds
//! the run id) and never the secret key.

use std::time::Duration;

use thiserror::Error;

/// A failed Trigger.dev API call. `endpoint` is the request path as sent, such as
/// `/api/v1/runs/run_abc/events`; transient variants say how many attempts were made.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("cannot build the Trigger.dev API client: {reason}")]
    Build { reason: String },

    #[error(
        "Trigger.dev rejected the secret key ({}) with HTTP {status} on GET {endpoint}: check TRIGGER_SECRET_KEY \
         and that the key belongs to the project and environment of the run",
        key_description(*environment)
    )]
    Unauthorized {
        endpoint: String,
        status: u16,
        /// The key's environment (`"dev"`, `"prod"`, `"stg"`, `"preview"`) read from its prefix.
        environment: Option<&'static str>,
    },

    #[error("GET {endpoint}: not found (HTTP 404{})", server_says(message))]
    NotFound { endpoint: String, message: Option<String> },

    #[error("GET {endpoint}: still rate limited by Trigger.dev (HTTP 429) after {attempts} attempts")]
    RateLimited { endpoint: String, attempts: u32 },

    #[error(
        "GET {endpoint}: Trigger.dev answered HTTP {status}{} after {attempts} attempt(s)",
        server_says(message)
    )]
    Server {
        endpoint: String,
        status: u16,
        message: Option<String>,
        attempts: u32,
    },

    #[error(
        "GET {endpoint}: Trigger.dev refused the request with HTTP {status}{}",
        server_says(message)
    )]
    Rejected {
        endpoint: String,
        status: u16,
        message: Option<String>,
    },

    /// No response head within `timeout`, or a body that stalled for `timeout`. (A body still
    /// arriving after the overall body deadline is a `BodyCut`.)
    #[error("GET {endpoint}: timed out after {} (trigger.timeout), {attempts} attempt(s)", humantime::format_duration(*timeout))]
    Timeout {
        endpoint: String,
        timeout: Duration,
        attempts: u32,
    },

    #[error("GET {endpoint}: connection failed after {attempts} attempt(s): {reason}")]
    Connection {
        endpoint: String,
        reason: String,
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

    #[error("GET {endpoint}: the response is not JSON; it starts with {snippet:?}")]
    NotJson { endpoint: String, snippet: String },

    #[error("GET {endpoint}: unexpected JSON: {reason}")]
    Invalid { endpoint: String, reason: String },

    /// A body without what the bridge cannot do without (a run's `id`, a trace's `traceId`…),
    /// as the typed views (`RunTrace::from_value`…) find it, knowing no endpoint. The client
    /// reports it as [`ApiError::Invalid`], naming the endpoint.
    #[error("{reason}")]
    Shape { reason: String },
}

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

fn server_says(message: &Option<String>) -> String {
    message.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
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
            "GET /api/v3/runs/run_x: timed out after 1s 500ms (trigger.timeout), 3 attempt(s)"
        );
        assert!(error.is_retryable());
        assert_eq!(error.endpoint(), Some("/api/v3/runs/run_x"));
    }
}
