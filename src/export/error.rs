//! `ExportError`: everything that goes wrong in export. Building the exporter from `[export]` and
//! the `OTEL_EXPORTER_OTLP_*` variables is a configuration problem ([`ExportError::is_config`]);
//! a collector that did not accept the records within `give_up_after` is not.

use super::sender::SendReport;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A standard `OTEL_EXPORTER_OTLP_*` variable holds what it cannot (`value` is redacted for
    /// headers).
    #[error("{var} = {value:?} is not valid: {reason}")]
    BadVariable {
        var: &'static str,
        value: String,
        reason: String,
    },

    /// A CA, certificate or key file named by `[export]` cannot be read.
    #[error("cannot read {what} {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },

    #[error("invalid export endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },

    /// `tonic`, `reqwest` or the header values refused what `[export]` gives them.
    #[error("cannot build the OTLP exporter: {0}")]
    Build(String),

    /// A request could not be encoded or compressed (the sender treats it as data the
    /// collector would refuse: the batch is split and an offending record dropped).
    #[error("cannot encode the OTLP request: {0}")]
    Encode(String),

    #[error("export.cert_file and export.key_file must be set together")]
    HalfIdentity,

    #[error("invalid TLS material: {0}")]
    Tls(String),

    /// [`super::build_sender`]: resolving the settings failed (one of the variants above).
    #[error("export settings: {0}")]
    Settings(#[source] Box<ExportError>),

    /// [`super::build_sender`]: building the transport failed (one of the variants above).
    #[error("exporter: {0}")]
    Exporter(#[source] Box<ExportError>),

    /// A sender with `give_up_after` (the one-shot commands) stopped retrying. The last reason
    /// names the endpoint, the cause and the setting to check (`transport/failure.rs`).
    #[error(
        "gave up after {} ({} spans and log records delivered): the collector did not accept the export; last \
         attempt: {}",
        crate::wording::human_duration(.0.waited),
        .0.delivered,
        .0.last_reason
    )]
    GaveUp(Box<GaveUp>),
}

/// What [`ExportError::GaveUp`] knows: how long the sender tried, the collector's last answer,
/// and what it delivered before.
#[derive(Debug)]
pub struct GaveUp {
    pub waited: Duration,
    pub last_reason: String,
    pub delivered: u64,
    /// Whatever was delivered before giving up still counts.
    pub partial: SendReport,
}

impl ExportError {
    /// A problem of the configuration (`[export]`, the `OTEL_EXPORTER_OTLP_*` variables, the
    /// files they name): every variant but [`ExportError::GaveUp`], which is the collector's,
    /// and [`ExportError::Encode`], the data's.
    pub fn is_config(&self) -> bool {
        match self {
            Self::BadVariable { .. }
            | Self::ReadFile { .. }
            | Self::Endpoint { .. }
            | Self::Build(_)
            | Self::HalfIdentity
            | Self::Tls(_)
            | Self::Settings(_)
            | Self::Exporter(_) => true,
            Self::Encode(_) | Self::GaveUp(_) => false,
        }
    }

    /// What was delivered before the failure: the partial report of [`ExportError::GaveUp`],
    /// else nothing (the other variants happen before anything is sent).
    pub fn into_partial(self) -> SendReport {
        match self {
            Self::GaveUp(gave_up) => gave_up.partial,
            _ => SendReport::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_steps_keep_their_prefix_and_stay_configuration_problems() {
        let settings = ExportError::Settings(Box::new(ExportError::BadVariable {
            var: "OTEL_EXPORTER_OTLP_TIMEOUT",
            value: "soon".into(),
            reason: "expected milliseconds".into(),
        }));
        assert_eq!(
            settings.to_string(),
            "export settings: OTEL_EXPORTER_OTLP_TIMEOUT = \"soon\" is not valid: expected milliseconds"
        );
        assert!(settings.is_config());
        let exporter = ExportError::Exporter(Box::new(ExportError::HalfIdentity));
        assert_eq!(
            exporter.to_string(),
            "exporter: export.cert_file and export.key_file must be set together"
        );
        assert!(exporter.is_config());
    }

    #[test]
    fn giving_up_is_not_a_configuration_problem_and_keeps_what_was_delivered() {
        let partial = SendReport {
            delivered_spans: 3,
            ..SendReport::default()
        };
        let gave_up = ExportError::GaveUp(Box::new(GaveUp {
            waited: Duration::from_secs(2),
            last_reason: "HTTP 503".into(),
            delivered: 3,
            partial: partial.clone(),
        }));
        assert_eq!(
            gave_up.to_string(),
            "gave up after 2s (3 spans and log records delivered): the collector did not accept the export; last \
             attempt: HTTP 503"
        );
        assert!(!gave_up.is_config());
        assert_eq!(gave_up.into_partial(), partial);
        assert_eq!(ExportError::HalfIdentity.into_partial(), SendReport::default());
    }

    #[test]
    fn waits_are_printed_as_people_write_them() {
        let shown = |d: Duration| crate::wording::human_duration(d).to_string();
        assert_eq!(shown(Duration::from_nanos(108_308_277_608)), "1m 48s");
        assert_eq!(shown(Duration::from_millis(120_004)), "2m");
        assert_eq!(shown(Duration::from_millis(129_500)), "2m 10s");
        assert_eq!(shown(Duration::from_nanos(2_500_700_001)), "2s 500ms");
        assert_eq!(shown(Duration::from_micros(300_999)), "300ms");
    }
}
