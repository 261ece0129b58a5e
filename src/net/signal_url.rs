//! The URL an OTLP/HTTP signal is posted to, from an endpoint as `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is read: the signal's path (`/v1/traces`, `/v1/logs`, `/v1/metrics`) joins the endpoint's own
//! path, before any query (a query such as `?tenant=a` stays a query).

use reqwest::Url;

/// `endpoint` with `signal_path` as its path when it has none; as given when it names a path
/// (a full signal URL) and `keep_path` is true, else with `signal_path` appended to its path
/// (a base path such as `https://host/otlp`). Text that is not a URL is joined as text.
pub fn signal_url(endpoint: &str, signal_path: &str, keep_path: bool) -> String {
    let Ok(mut url) = Url::parse(endpoint.trim()) else {
        return format!("{}{signal_path}", endpoint.trim().trim_end_matches('/'));
    };
    let path = url.path().trim_end_matches('/').to_owned();
    if path.is_empty() {
        url.set_path(signal_path);
    } else if !keep_path {
        url.set_path(&format!("{path}{signal_path}"));
    } else {
        return endpoint.trim().trim_end_matches('/').to_owned();
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signal_path_goes_before_the_query() {
        assert_eq!(
            signal_url("http://c:4318", "/v1/traces", true),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            signal_url("http://c:4318/", "/v1/traces", true),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            signal_url("http://c:4318?tenant=a", "/v1/traces", true),
            "http://c:4318/v1/traces?tenant=a"
        );
        assert_eq!(
            signal_url("https://h/otlp/v1/traces", "/v1/traces", true),
            "https://h/otlp/v1/traces"
        );
        assert_eq!(
            signal_url("https://h/otlp/", "/v1/logs", false),
            "https://h/otlp/v1/logs"
        );
        assert_eq!(
            signal_url("https://h/otlp?x=1", "/v1/logs", false),
            "https://h/otlp/v1/logs?x=1"
        );
    }
}
