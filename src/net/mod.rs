//! What the bridge's HTTP servers and clients share: the rustls crypto provider (`tls`), an axum
//! router served on a bound listener until stopped (`serving`), a failed request's cause told
//! once (`error_chain`), and an OTLP/HTTP signal's URL from an endpoint (`signal_url`).

pub mod error_chain;
pub mod serving;
pub mod signal_url;
pub mod tls;
