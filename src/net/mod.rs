//! What the bridge's HTTP servers and clients share: the rustls crypto provider (`tls`), and an
//! axum router served on a bound listener until stopped (`serving`).

pub mod serving;
pub mod tls;
