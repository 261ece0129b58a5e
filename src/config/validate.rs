//! The checks that span more than one value's type: bounds and relations between fields.

use super::schema::BridgeConfig;
use super::values::Protocol;
use super::ConfigError;

/// The levels `log.level` may name alone.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// A broken rule: the key to blame and what is wrong. `load` adds where the value came from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    pub key: &'static str,
    pub message: String,
}

impl BridgeConfig {
    /// Checks the rules that span more than one value's type: bounds and cross-field relations.
    /// `load` runs it; call it on a config built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.first_violation() {
            None => Ok(()),
            Some(Violation { key, message }) => Err(ConfigError::Invalid {
                key: key.to_owned(),
                origin: None,
                message,
            }),
        }
    }

    pub(crate) fn first_violation(&self) -> Option<Violation> {
        let violation = |key: &'static str, message: String| Some(Violation { key, message });
        let (trigger, runs, export) = (&self.trigger, &self.runs, &self.export);

        if !is_http_url(&trigger.api_url) {
            return violation("trigger.api_url", url_message(&trigger.api_url));
        }
        if trigger.requests_per_minute == 0 {
            return violation("trigger.requests_per_minute", "must be at least 1".to_owned());
        }
        // A range check also refuses NaN and the infinities (every comparison with NaN is false).
        if !(0.0..1.0).contains(&trigger.rate_limit_reserve) {
            return violation(
                "trigger.rate_limit_reserve",
                format!(
                    "{} is not a share of x-ratelimit-limit left for the application's own calls: \
                     give a number from 0 to below 1 (like 0.33)",
                    trigger.rate_limit_reserve
                ),
            );
        }
        if trigger.max_body_bytes == 0 {
            return violation("trigger.max_body_bytes", "must be at least 1".to_owned());
        }
        if runs.concurrency == 0 {
            return violation("runs.concurrency", "must be at least 1".to_owned());
        }
        if runs.poll_interval > runs.max_poll_interval {
            return violation(
                "runs.poll_interval",
                format!(
                    "{} must not exceed runs.max_poll_interval ({})",
                    humantime::format_duration(runs.poll_interval),
                    humantime::format_duration(runs.max_poll_interval)
                ),
            );
        }
        if export.protocol != Protocol::Stdout && !is_http_url(&export.endpoint) {
            return violation("export.endpoint", url_message(&export.endpoint));
        }
        if let Some(url) = export.logs_endpoint.as_deref().filter(|url| !is_http_url(url)) {
            return violation("export.logs_endpoint", url_message(url));
        }
        if export.max_batch_spans == 0 {
            return violation("export.max_batch_spans", "must be at least 1".to_owned());
        }
        if export.max_pending_spans < export.max_batch_spans {
            return violation(
                "export.max_pending_spans",
                format!(
                    "{} must be at least export.max_batch_spans ({}), or no batch could ever fill",
                    export.max_pending_spans, export.max_batch_spans
                ),
            );
        }
        // Mutual TLS needs the certificate and its key; one alone is a half-done setup.
        match (&export.cert_file, &export.key_file) {
            (Some(_), None) => return violation("export.cert_file", "needs export.key_file as well".to_owned()),
            (None, Some(_)) => return violation("export.key_file", "needs export.cert_file as well".to_owned()),
            _ => {}
        }
        if export.resource.service_name.is_empty() {
            return violation("export.resource.service_name", "must not be empty".to_owned());
        }
        if self.state.path.as_os_str().is_empty() {
            return violation("state.path", "must not be empty".to_owned());
        }
        if let Some(listen) = self.server.listen.as_deref().filter(|l| !is_listen_address(l)) {
            return violation(
                "server.listen",
                format!("{listen:?} is not HOST:PORT (like \"127.0.0.1:9464\"); \"\" disables the server"),
            );
        }
        if let Some(url) = self.telemetry.otlp_endpoint.as_deref().filter(|url| !is_http_url(url)) {
            return violation("telemetry.otlp_endpoint", url_message(url));
        }
        if self.log.level.trim().is_empty() {
            return violation("log.level", "must not be empty (try \"info\")".to_owned());
        }
        // `tracing`'s filter reads a bare word that is not a level as a module name, and then
        // logs nothing else at all: "warning" would silence every error.
        if let Some(word) = self.log.level.split(',').map(str::trim).find(|directive| {
            !directive.is_empty()
                && !directive.contains(['=', '[', ':'])
                && !LEVELS.iter().any(|level| directive.eq_ignore_ascii_case(level))
        }) {
            return violation(
                "log.level",
                format!(
                    "{word:?} is not a level (one of {}, or directives like \"info,trigger_otel_bridge=debug\")",
                    LEVELS.join(", ")
                ),
            );
        }

        // A zero duration would turn a timer into a busy loop or fail every request at once.
        let must_be_positive = [
            ("trigger.timeout", trigger.timeout),
            ("runs.poll_interval", runs.poll_interval),
            ("discovery.interval", self.discovery.interval),
            ("export.timeout", export.timeout),
            // The SDK's periodic reader would read zero as its own default of 60 s.
            ("telemetry.otlp_interval", self.telemetry.otlp_interval),
        ];
        must_be_positive
            .into_iter()
            .find(|(_, duration)| duration.is_zero())
            .and_then(|(key, _)| violation(key, "must be longer than zero".to_owned()))
    }
}

fn is_http_url(url: &str) -> bool {
    ["http://", "https://"]
        .iter()
        .any(|scheme| url.strip_prefix(scheme).is_some_and(|rest| !rest.is_empty()))
}

fn url_message(url: &str) -> String {
    format!("{url:?} is not an http:// or https:// URL")
}

/// `host:port` or `[v6]:port`; hostnames are allowed, so this cannot be a `SocketAddr` parse.
fn is_listen_address(listen: &str) -> bool {
    listen
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    #[test]
    fn validation_rules() {
        type Edit = fn(&mut BridgeConfig);
        let cases: [(Edit, &str); 24] = [
            (|c| c.trigger.rate_limit_reserve = -0.1, "trigger.rate_limit_reserve"),
            (|c| c.trigger.rate_limit_reserve = 1.0, "trigger.rate_limit_reserve"),
            (
                |c| c.trigger.rate_limit_reserve = f64::NAN,
                "trigger.rate_limit_reserve",
            ),
            (
                |c| c.trigger.rate_limit_reserve = f64::INFINITY,
                "trigger.rate_limit_reserve",
            ),
            (|c| c.log.level = "warning".into(), "log.level"),
            (|c| c.log.level = "info,verbose".into(), "log.level"),
            (|c| c.runs.concurrency = 0, "runs.concurrency"),
            (|c| c.export.max_batch_spans = 0, "export.max_batch_spans"),
            (|c| c.export.max_pending_spans = 10, "export.max_pending_spans"),
            (|c| c.trigger.requests_per_minute = 0, "trigger.requests_per_minute"),
            (|c| c.trigger.max_body_bytes = 0, "trigger.max_body_bytes"),
            (|c| c.runs.poll_interval = Duration::from_secs(61), "runs.poll_interval"),
            (|c| c.runs.poll_interval = Duration::ZERO, "runs.poll_interval"),
            (|c| c.trigger.timeout = Duration::ZERO, "trigger.timeout"),
            (|c| c.export.timeout = Duration::ZERO, "export.timeout"),
            (|c| c.discovery.interval = Duration::ZERO, "discovery.interval"),
            (|c| c.export.cert_file = Some("c.pem".into()), "export.cert_file"),
            (|c| c.export.key_file = Some("k.pem".into()), "export.key_file"),
            (|c| c.trigger.api_url = "api.trigger.dev".into(), "trigger.api_url"),
            (|c| c.export.endpoint = "localhost:4317".into(), "export.endpoint"),
            (|c| c.server.listen = Some("9464".into()), "server.listen"),
            (|c| c.state.path = PathBuf::new(), "state.path"),
            (
                |c| c.telemetry.otlp_endpoint = Some("collector:4317".into()),
                "telemetry.otlp_endpoint",
            ),
            (
                |c| c.telemetry.otlp_interval = Duration::ZERO,
                "telemetry.otlp_interval",
            ),
        ];
        for (edit, key) in cases {
            let mut config = BridgeConfig::default();
            edit(&mut config);
            let violation = config.first_violation().expect(key);
            assert_eq!(violation.key, key, "{}", violation.message);
            assert!(config.validate().expect_err(key).to_string().contains(key));
        }

        let mut config = BridgeConfig::default();
        config.export.protocol = Protocol::Stdout;
        config.export.endpoint = String::new();
        config.export.cert_file = Some("c.pem".into());
        config.export.key_file = Some("k.pem".into());
        config.server.listen = Some("[::]:9464".into());
        config.log.level = "WARN,trigger_otel_bridge=debug,h2[conn]=off".into();
        config.trigger.rate_limit_reserve = 0.0;
        assert_eq!(config.first_violation(), None);
        config.trigger.rate_limit_reserve = 0.999;
        assert_eq!(config.first_violation(), None);
    }
}
