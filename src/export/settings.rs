//! What the exporter is built from: `[export]`, with the standard `OTEL_EXPORTER_OTLP_*`
//! variables filling what the file and the bridge's own variables leave unset.

use super::ExportError;
use crate::config::secret::SecretString;
use crate::config::{Compression, ExportConfig, Protocol};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

/// The OTLP defaults the OTel specification gives, which `[export]` also uses: a value equal
/// to one of these is taken as "not set by the user" so the standard variables may fill it.
const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";

#[derive(Debug, Clone)]
pub struct ExportSettings {
    pub endpoint: String,
    /// Where OTLP log records go (`conversion.logs = "otlp_logs"`): `export.logs_endpoint`, else
    /// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`; `None` derives it from `endpoint`.
    pub logs_endpoint: Option<String>,
    pub protocol: Protocol,
    pub headers: BTreeMap<String, SecretString>,
    pub compression: Compression,
    pub timeout: Duration,
    pub max_batch_spans: usize,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl ExportSettings {
    /// `[export]` plus the standard variables in `env` (the traces-specific
    /// `OTEL_EXPORTER_OTLP_TRACES_*` before the general `OTEL_EXPORTER_OTLP_*`) for every value
    /// the configuration left at its default.
    pub fn resolve(config: &ExportConfig, env: &HashMap<String, String>) -> Result<Self, ExportError> {
        let defaults = ExportConfig::default();
        let var = |name: &'static str| -> Option<(&'static str, String)> {
            let traces = name.replacen("OTEL_EXPORTER_OTLP_", "OTEL_EXPORTER_OTLP_TRACES_", 1);
            env.get(&traces)
                .map(|v| (name, v.clone()))
                .or_else(|| env.get(name).map(|v| (name, v.clone())))
                .filter(|(_, v)| !v.trim().is_empty())
        };
        let bad = |var: &'static str, value: &str, reason: &str| ExportError::BadVariable {
            var,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };

        let mut protocol = config.protocol;
        if protocol == defaults.protocol {
            if let Some((name, value)) = var("OTEL_EXPORTER_OTLP_PROTOCOL") {
                protocol = match value.trim() {
                    "grpc" => Protocol::Grpc,
                    "http/protobuf" => Protocol::HttpProtobuf,
                    "http/json" => Protocol::HttpJson,
                    _ => return Err(bad(name, &value, "expected grpc, http/protobuf or http/json")),
                };
            }
        }
        let mut endpoint = config.endpoint.clone();
        if endpoint == DEFAULT_GRPC_ENDPOINT {
            if let Some((_, value)) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
                endpoint = value.trim().to_owned();
            } else if matches!(protocol, Protocol::HttpProtobuf | Protocol::HttpJson) {
                // The OTLP/HTTP default port, when only the protocol was changed.
                endpoint = "http://localhost:4318".to_owned();
            }
        }
        // Header names are case-insensitive: lowercased here, so that a file's `Authorization`
        // and the variable's `authorization` are one header and the file's wins.
        let mut headers: BTreeMap<String, SecretString> = config
            .headers
            .iter()
            .map(|(key, value)| (key.to_lowercase(), value.clone()))
            .collect();
        if let Some((name, value)) = var("OTEL_EXPORTER_OTLP_HEADERS") {
            for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
                let (key, val) = pair
                    .split_once('=')
                    .ok_or_else(|| bad(name, "(redacted)", "expected key=value pairs separated by commas"))?;
                // The file's headers win; the variable only adds the ones it lacks.
                headers
                    .entry(key.trim().to_lowercase())
                    .or_insert_with(|| SecretString::new(percent_decode(val.trim())));
            }
        }
        let mut compression = config.compression;
        if compression == defaults.compression {
            if let Some((name, value)) = var("OTEL_EXPORTER_OTLP_COMPRESSION") {
                compression = match value.trim() {
                    "gzip" => Compression::Gzip,
                    "zstd" => Compression::Zstd,
                    "none" => Compression::None,
                    _ => return Err(bad(name, &value, "expected gzip, zstd or none")),
                };
            }
        }
        let mut timeout = config.timeout;
        if timeout == defaults.timeout {
            if let Some((name, value)) = var("OTEL_EXPORTER_OTLP_TIMEOUT") {
                let millis: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| bad(name, &value, "expected milliseconds"))?;
                timeout = Duration::from_millis(millis);
            }
        }
        let file_var = |configured: &Option<PathBuf>, name| {
            configured
                .clone()
                .or_else(|| var(name).map(|(_, v)| PathBuf::from(v.trim())))
        };
        let logs_endpoint = config.logs_endpoint.clone().or_else(|| {
            env.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        });
        Ok(ExportSettings {
            endpoint,
            logs_endpoint,
            protocol,
            headers,
            compression,
            timeout,
            max_batch_spans: config.max_batch_spans,
            ca_file: file_var(&config.ca_file, "OTEL_EXPORTER_OTLP_CERTIFICATE"),
            cert_file: file_var(&config.cert_file, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
            key_file: file_var(&config.key_file, "OTEL_EXPORTER_OTLP_CLIENT_KEY"),
        })
    }

    /// The URL an OTLP/HTTP exporter posts to: the endpoint as given when it already names a
    /// path, else the endpoint plus `/v1/traces` (as `OTEL_EXPORTER_OTLP_ENDPOINT` is read).
    pub fn http_traces_url(&self) -> String {
        crate::net::signal_url::signal_url(&self.endpoint, "/v1/traces", true)
    }

    /// The URL OTLP/HTTP log records are posted to: `logs_endpoint` as given (a signal-specific
    /// endpoint is a full URL, as the OTel specification reads `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`);
    /// else the traces URL with its `/v1/traces` ending swapped for `/v1/logs`, or `endpoint` plus
    /// `/v1/logs` when it names another path (a base path such as `https://host/otlp`).
    pub fn http_logs_url(&self) -> String {
        if let Some(url) = &self.logs_endpoint {
            return url.clone();
        }
        let endpoint = self.endpoint.trim().trim_end_matches('/');
        match endpoint.strip_suffix("/v1/traces") {
            Some(base) => format!("{base}/v1/logs"),
            None => crate::net::signal_url::signal_url(endpoint, "/v1/logs", false),
        }
    }

    /// The gRPC endpoint of the logs service: `logs_endpoint`, else the traces endpoint.
    pub fn grpc_logs_endpoint(&self) -> &str {
        self.logs_endpoint.as_deref().unwrap_or(&self.endpoint)
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS` values are percent-encoded (W3C baggage format). A `%` not
/// followed by two hex digits stays as it is; invalid UTF-8 after decoding becomes U+FFFD.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_never_slices_a_character() {
        assert_eq!(percent_decode("Bearer%20abc"), "Bearer abc");
        assert_eq!(percent_decode("%aé"), "%aé");
        assert_eq!(percent_decode("%%é"), "%%é");
        assert_eq!(percent_decode("é%41"), "éA");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn standard_variables_fill_what_the_config_left_at_default() {
        let settings = ExportSettings::resolve(
            &ExportConfig::default(),
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "x-scope-orgid=tenant%201,authorization=Bearer abc",
                ),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.endpoint, "http://collector:4318");
        assert_eq!(
            settings.protocol,
            Protocol::HttpJson,
            "the traces-specific variable wins"
        );
        assert_eq!(settings.headers["x-scope-orgid"].expose(), "tenant 1");
        assert_eq!(settings.headers["authorization"].expose(), "Bearer abc");
        assert_eq!(settings.compression, Compression::Zstd);
        assert_eq!(settings.timeout, Duration::from_millis(2500));
        assert_eq!(settings.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(settings.http_traces_url(), "http://collector:4318/v1/traces");
    }

    #[test]
    fn the_config_wins_over_the_standard_variables() {
        let config = ExportConfig {
            endpoint: "http://tempo:4317".into(),
            headers: [("authorization".to_owned(), SecretString::new("from-file"))].into(),
            ..ExportConfig::default()
        };
        let settings = ExportSettings::resolve(
            &config,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4317"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=from-env"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.endpoint, "http://tempo:4317");
        assert_eq!(settings.headers["authorization"].expose(), "from-file");
    }

    #[test]
    fn a_header_written_in_capitals_in_the_file_still_wins() {
        let config = ExportConfig {
            headers: [("Authorization".to_owned(), SecretString::new("from-file"))].into(),
            ..ExportConfig::default()
        };
        let settings = ExportSettings::resolve(
            &config,
            &env(&[("OTEL_EXPORTER_OTLP_HEADERS", "authorization=from-env")]),
        )
        .unwrap();
        assert_eq!(settings.headers.len(), 1, "one header, not two spellings of it");
        assert_eq!(settings.headers["authorization"].expose(), "from-file");
    }

    #[test]
    fn http_protocol_alone_moves_the_default_port() {
        let config = ExportConfig {
            protocol: Protocol::HttpProtobuf,
            ..ExportConfig::default()
        };
        let settings = ExportSettings::resolve(&config, &HashMap::new()).unwrap();
        assert_eq!(settings.http_traces_url(), "http://localhost:4318/v1/traces");
    }

    #[test]
    fn log_records_go_to_the_logs_endpoint_or_next_to_the_traces() {
        let resolve = |endpoint: &str, logs_endpoint: Option<&str>, env_vars: &[(&str, &str)]| {
            let config = ExportConfig {
                endpoint: endpoint.into(),
                protocol: Protocol::HttpProtobuf,
                logs_endpoint: logs_endpoint.map(str::to_owned),
                ..ExportConfig::default()
            };
            ExportSettings::resolve(&config, &env(env_vars)).unwrap()
        };
        let base = resolve("http://collector:4318", None, &[]);
        assert_eq!(base.http_logs_url(), "http://collector:4318/v1/logs");
        assert_eq!(base.grpc_logs_endpoint(), "http://collector:4318");
        let full = resolve("https://otlp.example.com/otlp/v1/traces", None, &[]);
        assert_eq!(full.http_logs_url(), "https://otlp.example.com/otlp/v1/logs");
        let base_path = resolve("https://otlp.example.com/otlp/", None, &[]);
        assert_eq!(base_path.http_logs_url(), "https://otlp.example.com/otlp/v1/logs");
        let own = resolve("http://collector:4318", Some("http://loki:3100/otlp/v1/logs"), &[]);
        assert_eq!(own.http_logs_url(), "http://loki:3100/otlp/v1/logs");
        assert_eq!(own.grpc_logs_endpoint(), "http://loki:3100/otlp/v1/logs");
        let from_env = resolve(
            "http://collector:4318",
            None,
            &[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:4318/v1/logs")],
        );
        assert_eq!(from_env.http_logs_url(), "http://logs:4318/v1/logs");
        let file_wins = resolve(
            "http://collector:4318",
            Some("http://a/v1/logs"),
            &[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://b/v1/logs")],
        );
        assert_eq!(file_wins.http_logs_url(), "http://a/v1/logs");
    }

    #[test]
    fn explicit_paths_are_kept() {
        let config = ExportConfig {
            endpoint: "https://otlp.example.com/otlp/v1/traces".into(),
            ..ExportConfig::default()
        };
        let settings = ExportSettings::resolve(&config, &HashMap::new()).unwrap();
        assert_eq!(settings.http_traces_url(), "https://otlp.example.com/otlp/v1/traces");
    }

    #[test]
    fn bad_variables_name_themselves_without_secret_values() {
        let err = ExportSettings::resolve(
            &ExportConfig::default(),
            &env(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_TIMEOUT"), "{err}");
        let err = ExportSettings::resolve(
            &ExportConfig::default(),
            &env(&[("OTEL_EXPORTER_OTLP_HEADERS", "Bearer-secret-without-equals")]),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
