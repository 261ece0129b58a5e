//! What the transport sends through, built from `[export]`: the gRPC channel and metadata, the
//! HTTP client, TLS material, a checked endpoint.

use crate::export::settings::ExportSettings;
use crate::export::ExportError;

pub(super) fn checked_url(url: String) -> Result<String, ExportError> {
    match url.parse::<http::Uri>() {
        Ok(_) => Ok(url),
        Err(e) => Err(ExportError::Endpoint {
            endpoint: url,
            reason: e.to_string(),
        }),
    }
}

/// Sent as `User-Agent` over both protocols.
const USER_AGENT: &str = concat!("trigger-otel-bridge/", env!("CARGO_PKG_VERSION"));

pub(super) fn read(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, ExportError> {
    std::fs::read(path).map_err(|source| ExportError::ReadFile {
        what,
        path: path.display().to_string(),
        source,
    })
}

/// A lazily connecting channel to `url`, with the TLS settings of `[export]`.
pub(super) fn grpc_channel(settings: &ExportSettings, url: &str) -> Result<tonic::transport::Channel, ExportError> {
    let bad = |reason: String| ExportError::Endpoint {
        endpoint: url.to_owned(),
        reason,
    };
    let mut endpoint = tonic::transport::Channel::from_shared(url.to_owned())
        .map_err(|e| bad(e.to_string()))?
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .user_agent(USER_AGENT)
        .map_err(|e| bad(e.to_string()))?;
    let tls_wanted = url.starts_with("https://") || settings.ca_file.is_some();
    if tls_wanted {
        crate::net::tls::install_crypto_provider();
        let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = &settings.ca_file {
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(read("CA file", ca)?));
        }
        match (&settings.cert_file, &settings.key_file) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(tonic::transport::Identity::from_pem(
                    read("client certificate", cert)?,
                    read("client key", key)?,
                ));
            }
            (None, None) => {}
            _ => return Err(ExportError::HalfIdentity),
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| ExportError::Tls(e.to_string()))?;
    }
    Ok(endpoint.connect_lazy())
}

pub(super) fn grpc_metadata(settings: &ExportSettings) -> Result<tonic::metadata::MetadataMap, ExportError> {
    Ok(tonic::metadata::MetadataMap::from_headers(header_map(settings)?))
}

/// `export.headers` as HTTP headers; a name or value HTTP cannot carry is a build error (the
/// value is never quoted: it may be a credential).
pub(super) fn header_map(settings: &ExportSettings) -> Result<http::HeaderMap, ExportError> {
    let mut headers = http::HeaderMap::new();
    for (key, value) in &settings.headers {
        let name = http::HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| ExportError::Build(format!("export.headers: {key:?} is not a valid header name")))?;
        let value = http::HeaderValue::from_str(value.expose())
            .map_err(|_| ExportError::Build(format!("export.headers.{key}: the value is not a valid header value")))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

pub(super) fn http_client(settings: &ExportSettings) -> Result<reqwest::Client, ExportError> {
    crate::net::tls::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .user_agent(USER_AGENT);
    if let Some(ca) = &settings.ca_file {
        let cert =
            reqwest::Certificate::from_pem(&read("CA file", ca)?).map_err(|e| ExportError::Tls(e.to_string()))?;
        builder = builder.add_root_certificate(cert);
    }
    match (&settings.cert_file, &settings.key_file) {
        (Some(cert), Some(key)) => {
            let mut pem = read("client certificate", cert)?;
            pem.extend(read("client key", key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| ExportError::Tls(e.to_string()))?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => return Err(ExportError::HalfIdentity),
    }
    builder.build().map_err(|e| ExportError::Build(e.to_string()))
}
