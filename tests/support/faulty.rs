//! Endpoints that fail the way a misconfigured setup does, for tests of error messages: a closed
//! port ([`closed_port`]), a web server answering 404 with HTML at every path ([`NotFoundHtml`]:
//! a URL with a wrong path prefix), and a TLS endpoint whose certificate no client trusts
//! ([`UntrustedTls`]).
//!
//! [`UntrustedTls`] completes its side of the handshake with `tests/fixtures/tls/untrusted.crt`
//! (self-signed, for `localhost` and 127.0.0.1, valid 2000–2100), and a client refuses it with
//! rustls' "invalid peer certificate: UnknownIssuer": the failure of a collector or a
//! self-hosted Trigger.dev behind a private CA. The fixture was made with `openssl genpkey
//! -algorithm EC -pkeyopt ec_paramgen_curve:P-256` and `openssl ca -selfsign -startdate
//! 20000101000000Z -enddate 21000101000000Z` (SAN `DNS:localhost,IP:127.0.0.1`, `CA:FALSE`,
//! serverAuth): a file rather than a generator, so the tests need no certificate crate;
//! back-dated, so a skewed clock cannot turn "unknown issuer" into "not valid yet"; and its
//! subject is no `CN=localhost`, which a system's snakeoil certificate may also have (rustls
//! then checks the signature against that one and reports another error).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// The certificate's PEM path, for a test that trusts it (`export.ca_file`).
pub fn untrusted_cert_path() -> String {
    format!("{}/tests/fixtures/tls/untrusted.crt", env!("CARGO_MANIFEST_DIR"))
}

/// Serves TLS handshakes on 127.0.0.1 until the test process ends (a thread per connection;
/// a refused handshake ends each at once).
pub struct UntrustedTls {
    addr: SocketAddr,
}

impl UntrustedTls {
    pub fn start() -> UntrustedTls {
        trigger_otel_bridge::net::tls::install_crypto_provider();
        let dir = format!("{}/tests/fixtures/tls", env!("CARGO_MANIFEST_DIR"));
        let cert = CertificateDer::from_pem_file(format!("{dir}/untrusted.crt")).expect("certificate");
        let key = PrivateKeyDer::from_pem_file(format!("{dir}/untrusted.key")).expect("key");
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
        // Both, so a gRPC client (h2) and an HTTP/1.1 one get as far as the certificate.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let config = config.clone();
                std::thread::spawn(move || {
                    let Ok(mut connection) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    // Until the client's alert (or a completed handshake, which a client that
                    // refuses the certificate never reaches).
                    while connection.is_handshaking() {
                        if connection.complete_io(&mut stream).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        UntrustedTls { addr }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// A port on 127.0.0.1 where nothing listens: bound by the OS, then released.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// What nginx answers for a path it does not serve.
pub const NOT_FOUND_HTML: &str = "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.27.0</center>\r\n</body>\r\n</html>\r\n";

/// A web server on 127.0.0.1 that is neither Trigger.dev's API nor a collector: every request,
/// any method, HTTP/1.1 or HTTP/2, gets [`NOT_FOUND_HTML`] with status 404.
pub struct NotFoundHtml {
    served: trigger_otel_bridge::net::serving::Served,
}

impl NotFoundHtml {
    pub async fn start() -> NotFoundHtml {
        let router = axum::Router::new().fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                [("content-type", "text/html")],
                NOT_FOUND_HTML,
            )
        });
        let served = trigger_otel_bridge::net::serving::Served::on_loopback(router)
            .await
            .expect("serve");
        NotFoundHtml { served }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.served.url()
    }
}
