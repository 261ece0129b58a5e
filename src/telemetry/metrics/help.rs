//! The help text of every metric family, shared by `/metrics` and the OTLP push (their descriptions).

pub const BUILD_INFO: &str = "The bridge's version (always 1)";
pub const RUNS_WATCHED: &str = "Runs being polled now";
pub const RUNS_RETIRED: &str = "Runs no longer watched, by reason (settled, max_age, not_found, removed)";
pub const POLL_LAG: &str = "How late the due run was when its poll started";
pub const API_REQUESTS: &str =
    "Trigger.dev API attempts, by endpoint (events, trace, run, list) and HTTP status (or error)";
pub const RATE_LIMIT_REMAINING: &str =
    "The lowest x-ratelimit-remaining Trigger.dev reported in its current refill window";
pub const RATE_LIMIT_LIMIT: &str = "x-ratelimit-limit: the size of Trigger.dev's bucket, shared with the application";
pub const RATE_LIMIT_RESERVE: &str =
    "Tokens of Trigger.dev's bucket the bridge leaves to the application (trigger.rate_limit_reserve)";
pub const ALLOWED_REQUESTS_PER_MINUTE: &str = "The pace the bridge allows itself now: the client budget, lowered to spread what is above the reserve and after 429s; 0 while holding";
pub const API_HOLDS: &str =
    "Times every request was held: the remaining budget reached the reserve (reserve), or a 429 (rate_limited)";
pub const POLLS: &str = "Polls of a run that finished";
pub const POLLS_UNCHANGED: &str =
    "Polls whose events body was byte-identical to the run's last one, so not parsed again";
pub const POLL_ERRORS: &str = "Polls that failed (after the client's retries)";
pub const SPANS_EXPORTED: &str = "Spans the collector accepted and the state store recorded";
pub const SPANS_EXPORT_FAILED: &str =
    "Spans in export attempts that failed and are retried (collector down, 5xx, timeout)";
pub const SPANS_REJECTED: &str =
    "Spans the collector refused: as invalid data (isolated and dropped), or in an accepted request's partial_success";
pub const LOG_RECORDS_EXPORTED: &str =
    "Log records (conversion.logs = otlp_logs) the collector accepted and the state store recorded";
pub const LOG_RECORDS_EXPORT_FAILED: &str = "Log records in export attempts that failed and are retried";
pub const LOG_RECORDS_REJECTED: &str = "Log records the collector refused: as invalid data (isolated and dropped), or in an accepted request's partial_success";
pub const EXPORT_BATCH_DURATION: &str = "Time of one export attempt of one batch";
pub const INVALID_EVENTS: &str = "Trigger.dev elements skipped as invalid, by reason";
pub const PENDING_SPANS: &str = "Spans and log records converted and waiting for the collector";
pub const DISCOVERY_SOURCE: &str =
    "1 for the source discovering runs now (realtime: Trigger.dev's stream; list: the list endpoint), 0 for the other";
pub const DISCOVERY_SOURCE_SWITCHES: &str = "Switches of the discovery source, by reason (the stream not_served, refused, busy or failing: to the list endpoint; recovered: back to the stream)";
