//! The checks that span more than one value's type: bounds and relations between fields.

use super::schema::BridgeConfig;
use super::values::Protocol;
use super::ConfigError;

/// The levels `log.level` may name alone.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// A broken rule: the key to blame, the other keys the rule read, and what is wrong. `load`
/// adds where the value came from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    pub key: String,
    /// Other keys the rule compared the blamed one with. `load` leaves out a violation that
    /// involves a key it already reported (that key was read at its default, so the comparison
    /// would blame a value nobody wrote).
    pub involves: &'static [&'static str],
    pub message: String,
}

/// The violations found so far; every rule is checked, so one pass reports them all.
#[derive(Default)]
struct Found(Vec<Violation>);

impl Found {
    fn add(&mut self, key: impl Into<String>, message: String) {
        self.involving(key, &[], message);
    }

    fn involving(&mut self, key: impl Into<String>, involves: &'static [&'static str], message: String) {
        self.0.push(Violation {
            key: key.into(),
            involves,
            message,
        });
    }
}

impl BridgeConfig {
    /// Checks the rules that span more than one value's type: bounds and cross-field relations.
    /// `load` runs it; call it on a config built in code. Every broken rule is reported (as
    /// [`ConfigError::Several`] when there is more than one).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let errors = self
            .violations()
            .into_iter()
            .map(|Violation { key, message, .. }| ConfigError::Invalid {
                key,
                origin: None,
                message,
            })
            .collect();
        ConfigError::from_all(errors)
    }

    /// Every broken rule, in the order of the schema.
    pub(crate) fn violations(&self) -> Vec<Violation> {
        let mut found = Found::default();
        let (trigger, runs, export) = (&self.trigger, &self.runs, &self.export);

        if !is_http_url(&trigger.api_url) {
            found.add("trigger.api_url", url_message(&trigger.api_url));
        }
        // Refused wherever the key comes from (file, environment): saved from `check-config`'s
        // output of an older release, or pasted from a log, it would reach Trigger.dev as the key
        // and come back as a 401 that says nothing about the placeholder.
        if trigger.secret_key.is_redacted_placeholder() {
            found.add(
                "trigger.secret_key",
                format!(
                    "{:?} is a redacted placeholder (as check-config prints a key), not a key: set the real \
                     key with TRIGGER_SECRET_KEY or secret_key in [trigger]",
                    trigger.secret_key.redacted_hint()
                ),
            );
        }
        if trigger.requests_per_minute == 0 {
            found.add("trigger.requests_per_minute", "must be at least 1".to_owned());
        }
        // A range check also refuses NaN and the infinities (every comparison with NaN is false).
        if !(0.0..1.0).contains(&trigger.rate_limit_reserve) {
            found.add(
                "trigger.rate_limit_reserve",
                format!(
                    "{} is not a share of x-ratelimit-limit left for the application's own calls: \
                     give a number from 0 to below 1 (like 0.33)",
                    trigger.rate_limit_reserve
                ),
            );
        }
        if trigger.max_body_bytes == 0 {
            found.add("trigger.max_body_bytes", "must be at least 1".to_owned());
        }
        if runs.concurrency == 0 {
            found.add("runs.concurrency", "must be at least 1".to_owned());
        }
        if runs.poll_interval > runs.max_poll_interval {
            found.involving(
                "runs.poll_interval",
                &["runs.max_poll_interval"],
                format!(
                    "{} must not exceed runs.max_poll_interval ({})",
                    humantime::format_duration(runs.poll_interval),
                    humantime::format_duration(runs.max_poll_interval)
                ),
            );
        }
        if export.protocol != Protocol::Stdout && !is_http_url(&export.endpoint) {
            found.involving("export.endpoint", &["export.protocol"], url_message(&export.endpoint));
        }
        if let Some(url) = export.logs_endpoint.as_deref().filter(|url| !is_http_url(url)) {
            found.add("export.logs_endpoint", url_message(url));
        }
        // The same for header values: `****` is what redaction prints for every one of them.
        for (name, value) in &export.headers {
            if value.is_redacted_placeholder() {
                found.add(
                    format!("export.headers.{name}"),
                    "is a redacted placeholder (as check-config prints a header value), not a value: \
                     set the real one in [export.headers] or the environment"
                        .to_owned(),
                );
            }
        }
        if export.max_batch_spans == 0 {
            found.add("export.max_batch_spans", "must be at least 1".to_owned());
        }
        if export.max_pending_spans < export.max_batch_spans {
            found.involving(
                "export.max_pending_spans",
                &["export.max_batch_spans"],
                format!(
                    "{} must be at least export.max_batch_spans ({}), or no batch could ever fill",
                    export.max_pending_spans, export.max_batch_spans
                ),
            );
        }
        // Mutual TLS needs the certificate and its key; one alone is a half-done setup.
        match (&export.cert_file, &export.key_file) {
            (Some(_), None) => found.involving(
                "export.cert_file",
                &["export.key_file"],
                "needs export.key_file as well".to_owned(),
            ),
            (None, Some(_)) => found.involving(
                "export.key_file",
                &["export.cert_file"],
                "needs export.cert_file as well".to_owned(),
            ),
            _ => {}
        }
        if export.resource.service_name.is_empty() {
            found.add("export.resource.service_name", "must not be empty".to_owned());
        }
        if self.state.path.as_os_str().is_empty() {
            found.add("state.path", "must not be empty".to_owned());
        }
        if let Some(listen) = self.server.listen.as_deref().filter(|l| !is_listen_address(l)) {
            found.add(
                "server.listen",
                format!("{listen:?} is not HOST:PORT (like \"127.0.0.1:9464\"); \"\" disables the server"),
            );
        }
        if let Some(url) = self.telemetry.otlp_endpoint.as_deref().filter(|url| !is_http_url(url)) {
            found.add("telemetry.otlp_endpoint", url_message(url));
        }
        for status in &self.discovery.statuses {
            if crate::trigger::api_types::run_status(status).is_none() {
                found.add(
                    "discovery.statuses",
                    format!(
                        "{status:?} is not a run status (case does not matter); valid: {}",
                        crate::trigger::api_types::run_statuses().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        if self.log.level.trim().is_empty() {
            found.add("log.level", "must not be empty (try \"info\")".to_owned());
        }
        // `tracing`'s filter reads a bare word that is not a level as a module name, and then
        // logs nothing else at all: "warning" would silence every error.
        if let Some(word) = self.log.level.split(',').map(str::trim).find(|directive| {
            !directive.is_empty()
                && !directive.contains(['=', '[', ':'])
                && !LEVELS.iter().any(|level| directive.eq_ignore_ascii_case(level))
        }) {
            found.add(
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
        for (key, duration) in must_be_positive {
            if duration.is_zero() {
                found.add(key, "must be longer than zero".to_owned());
            }
        }
        found.0
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
        let cases: [(Edit, &str); 28] = [
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
            (|c| c.discovery.statuses = vec!["done".into()], "discovery.statuses"),
            (|c| c.export.cert_file = Some("c.pem".into()), "export.cert_file"),
            (|c| c.export.key_file = Some("k.pem".into()), "export.key_file"),
            (|c| c.trigger.api_url = "api.trigger.dev".into(), "trigger.api_url"),
            (|c| c.export.endpoint = "localhost:4317".into(), "export.endpoint"),
            (|c| c.server.listen = Some("9464".into()), "server.listen"),
            (|c| c.state.path = PathBuf::new(), "state.path"),
            (|c| c.trigger.secret_key = "tr_dev_…****".into(), "trigger.secret_key"),
            (|c| c.trigger.secret_key = "****".into(), "trigger.secret_key"),
            (
                |c| {
                    c.export.headers.insert("authorization".into(), "****".into());
                },
                "export.headers.authorization",
            ),
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
            let violations = config.violations();
            assert_eq!(violations.len(), 1, "{key}: {violations:?}");
            assert_eq!(violations[0].key, key, "{}", violations[0].message);
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
        config.trigger.secret_key = "tr_dev_abc123".into();
        assert_eq!(config.violations(), []);
        config.trigger.rate_limit_reserve = 0.999;
        assert_eq!(config.violations(), []);
    }

    #[test]
    fn every_broken_rule_is_reported_and_the_placeholder_message_says_where_to_set_the_key() {
        let mut config = BridgeConfig::default();
        config.trigger.secret_key = "tr_dev_…****".into();
        config.runs.concurrency = 0;
        config.export.max_pending_spans = 10;
        let violations = config.violations();
        let keys: Vec<&str> = violations.iter().map(|v| v.key.as_str()).collect();
        assert_eq!(
            keys,
            ["trigger.secret_key", "runs.concurrency", "export.max_pending_spans"]
        );
        assert_eq!(violations[2].involves, ["export.max_batch_spans"]);
        let message = &violations[0].message;
        assert!(
            message.starts_with("\"tr_dev_…****\" is a redacted placeholder") && message.contains("TRIGGER_SECRET_KEY"),
            "{message}"
        );
        let ConfigError::Several { errors } = config.validate().expect_err("three") else {
            panic!("not Several");
        };
        assert_eq!(errors.len(), 3);
    }
}
