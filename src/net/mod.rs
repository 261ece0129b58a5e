//! What the bridge's HTTP servers and clients share: the rustls crypto provider (`tls`), an axum
//! router served on a bound listener until stopped (`serving`), and a failed request's cause
//! told once (`error_chain`).

pub mod error_chain;
pub mod serving;
pub mod tls;
