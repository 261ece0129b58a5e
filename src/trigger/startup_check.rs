//! The start-up check: one cheap authenticated call (the run list, a page of one) whose answer
//! tells a wrong `api_url`, a rejected key and an unreachable host apart, each with the setting to
//! change, before the daemon polls anything.
//!
//! Why the list endpoint: it needs only the key (no run id the check would have to know), every
//! Trigger.dev instance serves it, and a page of one is the cheapest authenticated answer there
//! is. A non-API path answers 404 or an HTML page there; a wrong key 401/403; no host, no answer.

use std::time::Duration;

use thiserror::Error;

use super::{ApiError, RunFilters, TriggerClient};

/// What the check found wrong. Every message names the URL asked, what came back and the setting
/// that fixes it; none carries the key.
#[derive(Debug, Error)]
pub enum StartupCheckError {
    /// An answer, but not from Trigger.dev's API: 404, an HTML page, a JSON that is no run list,
    /// or a 4xx the API never gives for this request.
    #[error(
        "{url} is not a Trigger.dev API: GET {endpoint} answered {answer}; check trigger.api_url \
         (TRIGGER_API_URL): it is the instance's origin, such as https://api.trigger.dev or \
         http://localhost:3030, without a path"
    )]
    WrongApiUrl {
        url: String,
        endpoint: String,
        answer: String,
    },

    /// 401 or 403: the API is there and refused the key (the error names the key's environment).
    #[error("{0}")]
    KeyRejected(#[source] ApiError),

    /// No answer at all: connection refused, DNS, TLS, or a timeout, after the client's retries.
    /// The client's error names the cause and the setting to check.
    #[error("cannot reach Trigger.dev at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: ApiError,
    },

    /// The API answered, but not usefully for now (5xx, 429 after retries): a fault of the
    /// moment, not of the configuration.
    #[error("Trigger.dev at {url} is not answering normally: {source}")]
    Unavailable {
        url: String,
        #[source]
        source: ApiError,
    },
}

impl StartupCheckError {
    /// Whether the configuration is at fault (only a change to it helps), as opposed to the
    /// network or the API's moment.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::WrongApiUrl { .. } | Self::KeyRejected(_))
    }

    /// A short name for logs and metrics: `wrong_api_url`, `key_rejected`, `unreachable`,
    /// `unavailable`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::WrongApiUrl { .. } => "wrong_api_url",
            Self::KeyRejected(_) => "key_rejected",
            Self::Unreachable { .. } => "unreachable",
            Self::Unavailable { .. } => "unavailable",
        }
    }

    /// Sorts a failed list call into what it says about the configuration.
    fn classify(url: String, error: ApiError) -> Self {
        let endpoint = error.endpoint().unwrap_or("/api/v1/runs").to_owned();
        match error {
            ApiError::Unauthorized { .. } => Self::KeyRejected(error),
            ApiError::NotFound { .. } => Self::WrongApiUrl {
                url,
                endpoint,
                answer: "HTTP 404 (no such path)".to_owned(),
            },
            ApiError::NotJson { snippet, .. } => Self::WrongApiUrl {
                url,
                endpoint,
                answer: format!("a page that is not JSON (it starts with {snippet:?})"),
            },
            ApiError::Invalid { reason, .. } | ApiError::Shape { reason } => Self::WrongApiUrl {
                url,
                endpoint,
                answer: format!("JSON that is not a run list ({reason})"),
            },
            ApiError::Rejected { status, .. } => Self::WrongApiUrl {
                url,
                endpoint,
                answer: format!("HTTP {status}, which Trigger.dev's API does not answer to this request"),
            },
            source @ (ApiError::Timeout { .. } | ApiError::Connection { .. } | ApiError::BodyCut { .. }) => {
                Self::Unreachable { url, source }
            }
            source => Self::Unavailable { url, source },
        }
    }
}

/// Asks for one run. `Ok` means the URL is Trigger.dev's API and it accepts the key.
pub async fn check(client: &TriggerClient) -> Result<(), StartupCheckError> {
    let filters = RunFilters {
        page_size: Some(1),
        ..RunFilters::default()
    };
    client
        .list_runs(&filters, None)
        .await
        .map(|_| ())
        .map_err(|error| StartupCheckError::classify(client.api_url_shown(), error))
}

/// How long to wait before checking again after the `failures`-th failure in a row: a fault of
/// the moment is tried again soon; a configuration fault slowly (a reload or a fixed proxy may
/// still cure it, and each try is one cheap request).
pub fn retry_after(error: &StartupCheckError, failures: u32) -> Duration {
    let (initial_backoff, max_backoff) = match error.is_configuration() {
        true => (Duration::from_secs(10), Duration::from_secs(300)),
        false => (Duration::from_secs(2), Duration::from_secs(60)),
    };
    // The API client's doubling, without its jitter: one check at a time needs no spreading.
    super::RetryPolicy {
        initial_backoff,
        max_backoff,
        ..super::RetryPolicy::default()
    }
    .backoff_ceiling(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> String {
        "/api/v1/runs".to_owned()
    }

    #[test]
    fn each_failure_names_its_setting() {
        let url = || "http://127.0.0.1:9/trigger".to_owned();
        let cases = [
            (
                ApiError::NotFound {
                    endpoint: "/trigger/api/v1/runs".into(),
                    message: None,
                },
                "wrong_api_url",
                "GET /trigger/api/v1/runs answered HTTP 404",
            ),
            (
                ApiError::NotJson {
                    endpoint: endpoint(),
                    snippet: "<!DOCTYPE html>".into(),
                },
                "wrong_api_url",
                "<!DOCTYPE html>",
            ),
            (
                ApiError::Unauthorized {
                    endpoint: endpoint(),
                    status: 401,
                    environment: Some("dev"),
                },
                "key_rejected",
                "TRIGGER_SECRET_KEY",
            ),
            (
                ApiError::Connection {
                    endpoint: endpoint(),
                    reason: "connection refused".into(),
                    cause: crate::net::error_chain::Cause::Refused,
                    attempts: 3,
                },
                "unreachable",
                "connection refused",
            ),
            (
                ApiError::Server {
                    endpoint: endpoint(),
                    status: 503,
                    message: None,
                    attempts: 3,
                },
                "unavailable",
                "HTTP 503",
            ),
        ];
        for (error, kind, named) in cases {
            let failure = StartupCheckError::classify(url(), error);
            let message = failure.to_string();
            assert_eq!(failure.kind(), kind, "{message}");
            assert!(message.contains(named), "{kind}: {message}");
            assert_eq!(
                failure.is_configuration(),
                matches!(kind, "wrong_api_url" | "key_rejected")
            );
        }
    }

    #[test]
    fn configuration_faults_are_checked_again_slowly() {
        let wrong = StartupCheckError::WrongApiUrl {
            url: "u".into(),
            endpoint: "/api/v1/runs".into(),
            answer: "a".into(),
        };
        let down = StartupCheckError::Unavailable {
            url: "u".into(),
            source: ApiError::Shape { reason: "x".into() },
        };
        assert_eq!(retry_after(&wrong, 1), Duration::from_secs(10));
        assert_eq!(retry_after(&wrong, 2), Duration::from_secs(20));
        assert_eq!(retry_after(&wrong, 50), Duration::from_secs(300));
        assert_eq!(retry_after(&down, 1), Duration::from_secs(2));
        assert_eq!(retry_after(&down, 50), Duration::from_secs(60));
    }
}
