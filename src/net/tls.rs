//! TLS: the bridge uses rustls with the `ring` provider everywhere (no second crypto stack).

/// Install `ring` as the process-wide rustls provider; harmless when one is already installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
