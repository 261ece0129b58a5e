//! Retry and rejection rules as data: what each collector answer means for a batch.
//!
//! The transport turns each attempt's answer (an HTTP status, a gRPC status code) into a
//! `Disposition` here, and the sender acts on it. The rule that matters most:
//! only answers that blame the *data* (HTTP 400/413, gRPC InvalidArgument) may lead to dropping
//! spans, and only single spans after splitting. Answers that blame the setup (401, 403, 404,
//! wrong path, unauthenticated) are retried forever with an error log, because splitting would
//! drop every span of a misconfigured bridge.

use rand::Rng;
use std::time::Duration;

/// What to do with a batch after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Accepted (possibly with some spans rejected by the collector, see `rejected`).
    Delivered { rejected: u64, message: String },
    /// Try the same batch again later (at `after` when the collector said so).
    Retry { after: Option<Duration>, reason: String },
    /// The collector refuses this data: split the batch to isolate the offending spans.
    Reject { reason: String },
    /// The batch may be too large, or the collector overloaded (gRPC ResourceExhausted: a Go
    /// collector's answer to a message over its size limit, and its memory limiter's). Retried
    /// like `Retry`; a batch of several records answered so on its [`SHRINK_AFTER`]th attempt
    /// or later is split in halves. Never dropped: a single record is retried for as long as it
    /// takes.
    Shrink { after: Option<Duration>, reason: String },
}

impl Disposition {
    /// The same disposition, its reason (if it has one) replaced by `reason`: the transport
    /// classifies an answer here, then tells it in full (`transport/failure.rs`).
    pub fn with_reason(self, reason: String) -> Self {
        match self {
            Disposition::Retry { after, .. } => Disposition::Retry { after, reason },
            Disposition::Reject { .. } => Disposition::Reject { reason },
            Disposition::Shrink { after, .. } => Disposition::Shrink { after, reason },
            delivered => delivered,
        }
    }
}

/// The attempt from which a `Shrink` answer splits a batch of several records (the first is
/// retried whole: an overloaded collector often recovers).
pub const SHRINK_AFTER: u32 = 2;

/// HTTP statuses of an OTLP/HTTP answer.
pub fn classify_http(status: u16, retry_after: Option<Duration>) -> Disposition {
    match status {
        200..=299 => Disposition::Delivered {
            rejected: 0,
            message: String::new(),
        },
        400 | 413 | 422 => Disposition::Reject {
            reason: format!("HTTP {status}"),
        },
        _ => Disposition::Retry {
            after: retry_after,
            reason: format!("HTTP {status}"),
        },
    }
}

/// gRPC status codes; the reason names the code ("gRPC Unavailable").
pub fn classify_grpc(code: tonic::Code) -> Disposition {
    use tonic::Code;
    let reason = format!("gRPC {code:?}");
    match code {
        Code::Ok => Disposition::Delivered {
            rejected: 0,
            message: String::new(),
        },
        Code::InvalidArgument | Code::OutOfRange => Disposition::Reject { reason },
        Code::ResourceExhausted => Disposition::Shrink { after: None, reason },
        // Unavailable, DeadlineExceeded, Aborted, Cancelled, DataLoss,
        // Internal, Unknown; and the setup errors (Unauthenticated, PermissionDenied,
        // Unimplemented, NotFound): retried, never dropped.
        _ => Disposition::Retry { after: None, reason },
    }
}

/// Exponential backoff with jitter: 5 s, ×1.5 each attempt, capped at 30 s; a collector's
/// Retry-After replaces the computed delay, bounded below by half the first step (a proxy
/// answering `Retry-After: 0` must not be hammered in a tight loop) and above by the cap ×2 (a
/// bogus header cannot park the bridge for hours).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    pub initial: Duration,
    pub multiplier: f64,
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_secs(5),
            multiplier: 1.5,
            max: Duration::from_secs(30),
        }
    }
}

impl BackoffPolicy {
    /// The delay before retry number `attempt` (1-based), jittered to 50–100 % of the step.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.max(self.initial / 2).min(self.max * 2);
        }
        let step = self.initial.as_secs_f64() * self.multiplier.powi(attempt.saturating_sub(1) as i32);
        let capped = step.min(self.max.as_secs_f64());
        let jitter = rand::rng().random_range(0.5..=1.0);
        Duration::from_secs_f64(capped * jitter)
    }
}

/// `Retry-After`: delta seconds or an HTTP date, in any of the three formats RFC 9110 §5.6.7
/// makes a recipient accept (IMF-fixdate, RFC 850, asctime). A date already past is zero.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_errors_reject() {
        assert!(matches!(classify_http(400, None), Disposition::Reject { .. }));
        assert!(matches!(classify_http(413, None), Disposition::Reject { .. }));
        for status in [401, 403, 404, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify_http(status, None), Disposition::Retry { .. }),
                "{status}"
            );
        }
        use tonic::Code;
        assert!(matches!(
            classify_grpc(Code::InvalidArgument),
            Disposition::Reject { .. }
        ));
        assert!(matches!(classify_grpc(Code::OutOfRange), Disposition::Reject { .. }));
        assert_eq!(
            classify_grpc(Code::ResourceExhausted),
            Disposition::Shrink {
                after: None,
                reason: "gRPC ResourceExhausted".into()
            }
        );
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::Unimplemented,
            Code::NotFound,
            Code::Unknown,
        ] {
            assert!(matches!(classify_grpc(code), Disposition::Retry { .. }), "{code:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_and_bounded() {
        let policy = BackoffPolicy::default();
        assert_eq!(policy.delay(1, Some(Duration::from_secs(7))), Duration::from_secs(7));
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
        // `Retry-After: 0` (or a date in the past) waits at least half the first step.
        assert_eq!(policy.delay(1, Some(Duration::ZERO)), Duration::from_millis(2500));
        assert_eq!(
            classify_http(503, Some(Duration::from_secs(2))),
            Disposition::Retry {
                after: Some(Duration::from_secs(2)),
                reason: "HTTP 503".into()
            }
        );
    }

    #[test]
    fn backoff_grows_by_half_and_caps_with_jitter() {
        let policy = BackoffPolicy::default();
        for _ in 0..50 {
            let first = policy.delay(1, None);
            assert!(
                first >= Duration::from_millis(2500) && first <= Duration::from_secs(5),
                "{first:?}"
            );
            let second = policy.delay(2, None);
            assert!(second >= Duration::from_millis(3750) && second <= Duration::from_millis(7500));
            let late = policy.delay(20, None);
            assert!(late >= Duration::from_secs(15) && late <= Duration::from_secs(30));
        }
    }

    #[test]
    fn retry_after_formats() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        // 2015-10-21T07:28:00Z is 1445412480.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        // The obsolete formats RFC 9110 still requires a recipient to accept.
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:30:00 GMT", now),
            Some(Duration::from_secs(120)),
            "RFC 850"
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:30:00 2015", now),
            Some(Duration::from_secs(120)),
            "asctime"
        );
        assert_eq!(
            parse_retry_after("Wed Oct  7 07:30:00 2015", now),
            Some(Duration::ZERO),
            "asctime pads a one-digit day with a space; a date past waits nothing"
        );
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
    }
}
