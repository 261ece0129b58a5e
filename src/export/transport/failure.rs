//! What a failed attempt tells the operator: where the request went (the URL, without
//! credentials), what went wrong once (the I/O or TLS error through its chain, the HTTP status
//! and the start of the body, the gRPC code), and the setting to check when one can cure it.
//! These reasons are what the sender logs on every failed attempt and what `export` reports when
//! it gives up.
//!
//! Header values are secrets: a quoted body has every configured value replaced by `****`, and
//! bodies answering 401, 403 or 407 (which are about credentials, and may repeat them) are not
//! quoted at all. A gRPC collector's own status message is never quoted (only tonic's, made on
//! this side, is read: for the HTTP status of an answer that was not gRPC).

use crate::config::Protocol;
use crate::export::settings::ExportSettings;
use crate::net::error_chain::{error_chain, redacted_url, Cause};
use crate::telemetry::events::Signal;
use std::time::Duration;

const ENDPOINT: &str = "export.endpoint (OTEL_EXPORTER_OTLP_ENDPOINT)";
const LOGS_ENDPOINT: &str = "export.logs_endpoint (OTEL_EXPORTER_OTLP_LOGS_ENDPOINT)";
const PROTOCOL: &str = "export.protocol (OTEL_EXPORTER_OTLP_PROTOCOL)";
const HEADERS: &str = "export.headers (OTEL_EXPORTER_OTLP_HEADERS)";
const CA_FILE: &str = "export.ca_file (OTEL_EXPORTER_OTLP_CERTIFICATE)";
const TIMEOUT: &str = "export.timeout (OTEL_EXPORTER_OTLP_TIMEOUT)";

/// Longest excerpt of an error answer's body.
const EXCERPT_CHARS: usize = 120;

/// Where one signal's requests go, as its failures name it.
pub(super) struct Destination {
    /// `OTLP/HTTP POST http://collector:4318/v1/traces` or `gRPC http://collector:4317`.
    shown: String,
    /// The setting that chose the URL.
    setting: &'static str,
    /// A `logs_endpoint` is used as given; `endpoint` gets `/v1/traces` or `/v1/logs` appended
    /// when it has no path (OTLP/HTTP).
    path_appended: Option<&'static str>,
    ca_file: bool,
    timeout: Duration,
    /// The values of `export.headers` and their words, to scrub from quoted bodies.
    secrets: Vec<String>,
}

impl Destination {
    /// The destination of `signal`'s requests over the configured protocol.
    pub(super) fn new(settings: &ExportSettings, signal: Signal) -> Destination {
        let own_logs_endpoint = signal == Signal::Logs && settings.logs_endpoint.is_some();
        let setting = if own_logs_endpoint { LOGS_ENDPOINT } else { ENDPOINT };
        let (shown, path_appended) = match settings.protocol {
            Protocol::Grpc => {
                let endpoint = match signal {
                    Signal::Traces => &settings.endpoint,
                    Signal::Logs => settings.grpc_logs_endpoint(),
                };
                (format!("gRPC {}", redacted_url(endpoint)), None)
            }
            _ => {
                let (url, suffix) = match signal {
                    Signal::Traces => (settings.http_traces_url(), "/v1/traces"),
                    Signal::Logs => (settings.http_logs_url(), "/v1/logs"),
                };
                // As `http_traces_url` and `http_logs_url` build it.
                let appended = match signal {
                    Signal::Traces => url != settings.endpoint.trim_end_matches('/'),
                    Signal::Logs => !own_logs_endpoint,
                };
                let appended = appended.then_some(suffix);
                (format!("OTLP/HTTP POST {}", redacted_url(&url)), appended)
            }
        };
        let mut secrets = Vec::new();
        for value in settings.headers.values() {
            let value = value.expose().trim();
            secrets.push(value.to_owned());
            // `Bearer <token>`: the token alone may be echoed too; short words (`Bearer`) are not
            // secrets and would mangle the excerpt.
            secrets.extend(value.split_whitespace().filter(|w| w.len() >= 6).map(str::to_owned));
        }
        secrets.retain(|s| !s.is_empty());
        // Longest first, so a whole value is replaced before its words.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Destination {
            shown,
            setting,
            path_appended,
            ca_file: settings.ca_file.is_some(),
            timeout: settings.timeout,
            secrets,
        }
    }

    fn reason(&self, what: &str, cure: Option<String>) -> String {
        match cure {
            Some(cure) => format!("{}: {what}; {cure}", self.shown),
            None => format!("{}: {what}", self.shown),
        }
    }

    /// No answer: `error` (with its sources) kept the request from being answered. `what`
    /// prefixes it (the gRPC code tonic gave it, `Unavailable`), or nothing.
    pub(super) fn no_answer(&self, what: Option<&str>, error: &(dyn std::error::Error + 'static)) -> String {
        let chain = error_chain(error);
        let text = match what {
            Some(what) => format!("{what}: {chain}"),
            None => chain,
        };
        self.reason(&text, Some(self.connection_cure(Cause::of(error))))
    }

    /// The whole call took longer than `export.timeout`.
    pub(super) fn timed_out(&self) -> String {
        self.reason(
            &format!("no answer within {}", humantime::format_duration(self.timeout)),
            Some(self.connection_cure(Cause::TimedOut)),
        )
    }

    fn connection_cure(&self, cause: Cause) -> String {
        let setting = self.setting;
        match cause {
            Cause::Refused => {
                format!("check {setting}: nothing listens at its host and port (is the collector running?)")
            }
            Cause::Dns => format!("check {setting}: its host name does not resolve"),
            Cause::Certificate if self.ca_file => format!(
                "check {CA_FILE}: the CA it holds did not sign the collector's certificate, or {setting} names a \
                 host the certificate is not for"
            ),
            Cause::Certificate => format!(
                "set {CA_FILE} to the CA that signed the collector's certificate (this host's roots do not trust \
                 it), and check that {setting} names a host the certificate is for"
            ),
            Cause::NotTls => {
                format!("check {setting}: the collector does not speak TLS there (http://, not https://?)")
            }
            Cause::TimedOut => format!("check {setting} and the network, or raise {TIMEOUT}"),
            Cause::Other => format!("check {setting} (its scheme, http:// or https://, and port) and {PROTOCOL}"),
        }
    }

    /// An OTLP/HTTP answer with a status other than 2xx, and its body.
    pub(super) fn http_status(&self, status: u16, body: &[u8]) -> String {
        let quoted = match status {
            401 | 403 | 407 => None,
            _ => self.excerpt(body),
        };
        let what = match quoted {
            Some(excerpt) => format!("HTTP {status}: {excerpt:?}"),
            None => format!("HTTP {status}"),
        };
        let setting = self.setting;
        let cure = match status {
            401 | 403 => Some(format!("check {HEADERS}: the collector refused the credentials")),
            404 | 405 => Some(match self.path_appended {
                Some(suffix) => format!(
                    "check {setting}: an OTLP/HTTP endpoint is the collector's base URL (such as \
                     http://collector:4318), to which {suffix} is appended; and {PROTOCOL}"
                ),
                None => format!("check {setting}: the whole URL is used as given; and {PROTOCOL}"),
            }),
            415 => Some(format!(
                "check {PROTOCOL}: the collector does not take this content type"
            )),
            _ => None,
        };
        self.reason(&what, cure)
    }

    /// A gRPC status other than OK. tonic makes a status itself when the answer is no gRPC at
    /// all (a web server, an OTLP/HTTP port): its message then names the HTTP status, read here.
    pub(super) fn grpc_status(&self, status: &tonic::Status) -> String {
        let code = status.code();
        if let Some(source) = std::error::Error::source(status) {
            return self.no_answer(Some(&format!("{code:?}")), source);
        }
        if let Some(http) = http_status_of_non_grpc_answer(status.message()) {
            return self.reason(
                &format!("the server answered HTTP {http}, not gRPC"),
                Some(format!(
                    "check {} and {PROTOCOL}: a collector takes gRPC on port 4317 and OTLP/HTTP on 4318",
                    self.setting
                )),
            );
        }
        let cure = match code {
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                Some(format!("check {HEADERS}: the collector refused the credentials"))
            }
            tonic::Code::Unimplemented => Some(format!(
                "check {} and {PROTOCOL}: the server does not take this signal over gRPC (for log records, \
                 does the collector have a logs pipeline?)",
                self.setting
            )),
            tonic::Code::DeadlineExceeded => Some(format!("raise {TIMEOUT}, or check the collector's load")),
            _ => None,
        };
        self.reason(&format!("{code:?}"), cure)
    }

    /// The start of a text body, whitespace collapsed, header values scrubbed; `None` for an
    /// empty or binary one (a protobuf `Status`).
    fn excerpt(&self, body: &[u8]) -> Option<String> {
        let head = &body[..body.len().min(4 * EXCERPT_CHARS)];
        let text = match std::str::from_utf8(head) {
            Ok(text) => text,
            // Cut inside a character: the complete ones before it.
            Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
            Err(_) => return None,
        };
        if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
            return None;
        }
        let mut collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for secret in &self.secrets {
            collapsed = collapsed.replace(secret.as_str(), "****");
        }
        if collapsed.is_empty() {
            return None;
        }
        let mut excerpt: String = collapsed.chars().take(EXCERPT_CHARS).collect();
        if excerpt.len() < collapsed.len() || body.len() > head.len() {
            excerpt.push('…');
        }
        Some(excerpt)
    }
}

/// The HTTP status in a message tonic wrote for an answer that was not gRPC: "grpc-status header
/// missing, mapped from HTTP status code 404", or a decoding error "… while receiving response
/// with status: 404 Not Found". Only the number is taken: the rest could be anyone's text.
fn http_status_of_non_grpc_answer(message: &str) -> Option<u16> {
    let after = [
        "mapped from HTTP status code ",
        "while receiving response with status: ",
    ]
    .iter()
    .find_map(|marker| message.split_once(marker).map(|(_, after)| after))?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|status| (100..600).contains(status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ExportConfig;
    use std::collections::{BTreeMap, HashMap};

    fn destination(protocol: Protocol, endpoint: &str, signal: Signal) -> Destination {
        let config = ExportConfig {
            endpoint: endpoint.into(),
            protocol,
            headers: BTreeMap::from([("authorization".into(), "Bearer s3cr3t-token".into())]),
            ..ExportConfig::default()
        };
        Destination::new(&ExportSettings::resolve(&config, &HashMap::new()).unwrap(), signal)
    }

    #[test]
    fn an_http_answer_names_the_url_the_status_the_body_and_the_setting() {
        let http = destination(Protocol::HttpProtobuf, "http://user:pw@host:4318", Signal::Traces);
        let reason = http.http_status(404, b"<html>\r\n<title>404 Not Found</title>\r\n</html>");
        assert_eq!(
            reason,
            "OTLP/HTTP POST http://host:4318/v1/traces: HTTP 404: \"<html> <title>404 Not Found</title> </html>\"; \
             check export.endpoint (OTEL_EXPORTER_OTLP_ENDPOINT): an OTLP/HTTP endpoint is the collector's base \
             URL (such as http://collector:4318), to which /v1/traces is appended; and export.protocol \
             (OTEL_EXPORTER_OTLP_PROTOCOL)"
        );
        // A body repeating a header value is scrubbed; one about credentials is not quoted.
        let reason = http.http_status(500, b"bad token s3cr3t-token in Bearer s3cr3t-token");
        assert!(reason.contains("\"bad token **** in ****\""), "{reason}");
        let reason = http.http_status(401, b"token s3cr3t-token unknown");
        assert!(
            !reason.contains("unknown") && reason.contains("export.headers"),
            "{reason}"
        );
        // Binary (a protobuf Status) is not quoted.
        assert!(http.http_status(503, b"\x08\x0e\x12\x03abc").ends_with("HTTP 503"));
    }

    #[test]
    fn a_non_grpc_answer_is_told_by_its_http_status() {
        let grpc = destination(Protocol::Grpc, "http://host:4318", Signal::Logs);
        let status = tonic::Status::unimplemented("grpc-status header missing, mapped from HTTP status code 404");
        assert_eq!(
            grpc.grpc_status(&status),
            "gRPC http://host:4318: the server answered HTTP 404, not gRPC; check export.endpoint \
             (OTEL_EXPORTER_OTLP_ENDPOINT) and export.protocol (OTEL_EXPORTER_OTLP_PROTOCOL): a collector takes \
             gRPC on port 4317 and OTLP/HTTP on 4318"
        );
        let status = tonic::Status::internal(
            "protocol error: received message with invalid compression flag: 60 (valid flags are 0 and 1) while \
             receiving response with status: 404 Not Found",
        );
        assert!(grpc.grpc_status(&status).contains("answered HTTP 404, not gRPC"));
        // A collector's own message is not quoted.
        let status = tonic::Status::unauthenticated("token s3cr3t-token unknown");
        let reason = grpc.grpc_status(&status);
        assert!(
            reason.ends_with(": Unauthenticated; check export.headers (OTEL_EXPORTER_OTLP_HEADERS): the collector refused the credentials"),
            "{reason}"
        );
    }
}
