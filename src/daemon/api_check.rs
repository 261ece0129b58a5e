//! The start-up check, run until it passes: polling and discovery wait for it, `/readyz` says
//! what it found, and each new finding is logged once with the setting to change.

use super::stats::DaemonStats;
use crate::trigger::startup_check::{self, StartupCheckError};
use crate::trigger::TriggerClient;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Checks Trigger.dev until the check passes, then says so on `passed`. Ends early when the
/// daemon stops (the receiver is dropped).
pub(super) async fn check_until_passed(
    client: TriggerClient,
    stats: Arc<DaemonStats>,
    mut passed: oneshot::Sender<()>,
) {
    let health = &stats.health;
    let mut failures = 0u32;
    let mut last_kind = None;
    loop {
        let result = tokio::select! {
            result = startup_check::check(&client) => result,
            _ = passed.closed() => return,
        };
        match result {
            Ok(()) => {
                health.api_checked(Ok(()));
                tracing::info!(api_url = %client.api_url_shown(), "Trigger.dev API check passed: the key is accepted");
                let _ = passed.send(());
                return;
            }
            Err(error) => {
                failures += 1;
                health.api_checked(Err(error.to_string()));
                let retry_in = startup_check::retry_after(&error, failures);
                log_failure(&error, &mut last_kind, retry_in);
                tokio::select! {
                    _ = tokio::time::sleep(retry_in) => {}
                    _ = passed.closed() => return,
                }
            }
        }
    }
}

/// An error the first time its kind is seen (or after another kind), a debug line while it
/// repeats: a wrong URL checked every five minutes for a day is one error, not 288.
fn log_failure(error: &StartupCheckError, last_kind: &mut Option<&'static str>, retry_in: std::time::Duration) {
    let retry_in = crate::wording::human_duration(retry_in);
    if *last_kind == Some(error.kind()) {
        tracing::debug!(check = error.kind(), %error, %retry_in, "Trigger.dev API check failed again");
        return;
    }
    *last_kind = Some(error.kind());
    match error.is_configuration() {
        true => tracing::error!(
            check = error.kind(),
            %error,
            %retry_in,
            "Trigger.dev API check failed; not polling until it passes (fix the setting and restart)"
        ),
        false => tracing::warn!(
            check = error.kind(),
            %error,
            %retry_in,
            "Trigger.dev API check failed; not polling until it passes"
        ),
    }
}
