//! A failed request's cause, told once: its error and `source()` chain on one line
//! ([`error_chain`]), and what kind of trouble it is ([`Cause`]), which decides the setting an
//! error message tells the operator to check. The Trigger.dev client and the OTLP transports
//! both describe their failures with these.
//!
//! Libraries wrap their causes in layers that often repeat the text below them (tonic's
//! `tcp connect error` wraps hyper-util's `tcp connect error`); a link that repeats what is
//! already said is left out.

use std::error::Error;
use std::io;

/// `error: its source: …`, each link once: a link is left out when the text so far already ends
/// with it, and replaces the previous link when it starts with it (the same words, more detail).
/// Never contains more than the errors' own texts: a caller that must not print a URL (reqwest
/// puts one in its message) strips it first (`reqwest::Error::without_url`).
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut links: Vec<String> = Vec::new();
    for link in chain(error) {
        let text = link.to_string();
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match links.last_mut() {
            Some(last) if last.ends_with(text) => {}
            Some(last) if text.starts_with(last.as_str()) => *last = text.to_owned(),
            _ => links.push(text.to_owned()),
        }
    }
    links.join(": ")
}

/// `error` and each of its sources, outermost first.
fn chain<'a>(error: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |&error| error.source())
}

/// What kind of trouble a failed connection or request is, as far as the cure goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Nothing listens at the address (connection refused).
    Refused,
    /// The host name does not resolve.
    Dns,
    /// The server's certificate was refused: an issuer this host does not trust, a name it is
    /// not for, expired.
    Certificate,
    /// The server does not speak TLS where TLS was asked for (`https://` to a plain port).
    NotTls,
    /// No answer in time.
    TimedOut,
    /// Anything else: a reset, a protocol error, a broken pipe.
    Other,
}

impl Cause {
    /// Reads the chain: an `io::Error`'s kind, a rustls error inside it, or the resolver's
    /// words (hyper-util's DNS error is a private type: its text is all there is).
    pub fn of(error: &(dyn Error + 'static)) -> Cause {
        for link in chain(error) {
            if let Some(tls) = tls_error(link) {
                return match tls {
                    rustls::Error::InvalidCertificate(_) => Cause::Certificate,
                    rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => Cause::NotTls,
                    _ => Cause::Other,
                };
            }
            if let Some(io) = link.downcast_ref::<io::Error>() {
                match io.kind() {
                    io::ErrorKind::ConnectionRefused => return Cause::Refused,
                    io::ErrorKind::TimedOut => return Cause::TimedOut,
                    _ => {}
                }
            }
            let text = link.to_string();
            if text == "dns error" || text.starts_with("failed to lookup address") {
                return Cause::Dns;
            }
        }
        Cause::Other
    }
}

/// A rustls error, as itself or inside `io::Error`s (tokio-rustls wraps it in one, and
/// hyper-rustls that in another).
fn tls_error<'a>(link: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = link.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let mut inner: &(dyn Error + Send + Sync + 'static) = link.downcast_ref::<io::Error>()?.get_ref()?;
    loop {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        inner = inner.downcast_ref::<io::Error>()?.get_ref()?;
    }
}

/// `url` as it may be shown: without a user name, password, query or fragment, which can carry
/// credentials (`https://user:token@host`, `?api_key=`); as written when it has none of them.
/// Text that is not a URL is shown as `(not a URL)`: it could be anything.
pub fn redacted_url(url: &str) -> String {
    let url = url.trim();
    match reqwest::Url::parse(url) {
        Ok(parsed)
            if parsed.username().is_empty()
                && parsed.password().is_none()
                && parsed.query().is_none()
                && parsed.fragment().is_none() =>
        {
            url.to_owned()
        }
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    /// An error with a fixed text and an optional source, to build chains.
    #[derive(Debug)]
    struct Link(&'static str, Option<Box<dyn Error + Send + Sync>>);

    impl fmt::Display for Link {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Link {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    fn link(text: &'static str, source: impl Error + Send + Sync + 'static) -> Link {
        Link(text, Some(Box::new(source)))
    }

    #[test]
    fn each_cause_is_told_once() {
        // tonic's connect failure: the same words at two levels.
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
        let error = link(
            "transport error",
            link("tcp connect error", link("tcp connect error", refused)),
        );
        assert_eq!(
            error_chain(&error),
            "transport error: tcp connect error: Connection refused (os error 111)"
        );
        assert_eq!(Cause::of(&error), Cause::Refused);
        // A link that says what the previous one said and more replaces it.
        let error = link("dns error", Link("dns error: no such host", None));
        assert_eq!(error_chain(&error), "dns error: no such host");
        assert_eq!(Cause::of(&error), Cause::Dns);
        // A link ending the text so far adds nothing.
        let error = link("read failed: timed out", Link("timed out", None));
        assert_eq!(error_chain(&error), "read failed: timed out");
        assert_eq!(Cause::of(&Link("x", None)), Cause::Other);
    }

    #[test]
    fn tls_failures_are_told_apart() {
        // Wrapped twice, as reqwest reports it.
        let untrusted = io::Error::other(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        let error = link("client error (Connect)", untrusted);
        assert_eq!(
            error_chain(&error),
            "client error (Connect): invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(Cause::of(&error), Cause::Certificate);
        let plain = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert_eq!(Cause::of(&plain), Cause::NotTls);
        assert_eq!(
            Cause::of(&io::Error::new(io::ErrorKind::TimedOut, "deadline")),
            Cause::TimedOut
        );
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redacted_url("https://user:s3cret@collector:4318/v1/traces?api_key=s3cret#x"),
            "https://collector:4318/v1/traces"
        );
        assert_eq!(redacted_url(" http://localhost:4317 "), "http://localhost:4317");
        assert_eq!(redacted_url("s3cret"), "(not a URL)");
    }
}
