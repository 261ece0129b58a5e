//! The Trigger.dev REST API: the shapes of its responses (`model`, `api_types`; `out_of_range`
//! keeps a number literal no float holds from failing an events body) and the HTTP
//! client (`client`) with its rate limit (`rate_limit`), retry policy (`retry`) and errors (`error`).

pub mod api_types;
pub mod client;
pub mod error;
pub mod model;
mod out_of_range;
pub mod rate_limit;
pub mod retry;
pub mod startup_check;

pub use api_types::{RunDetails, RunFilters, RunPage, RunSummary, RunTrace};
pub use client::{ClientTuning, EventsFetch, TriggerClient};
pub use error::{ApiError, ErrorBody};
pub use rate_limit::{RateLimitTuning, RateLimiter};
pub use retry::RetryPolicy;
pub use startup_check::StartupCheckError;
