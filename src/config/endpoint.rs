//! The one URL parser of the agent: `ws_url`, `callback_url` and a redirect's `Location` are all
//! read here, with `http::Uri` (the `http` crate, already in the tree through tungstenite).
//!
//! What is accepted: `scheme://host[:port][/path][?query]` with the schemes `ws`, `wss`,
//! `http`, `https` (any case); a host name, an IPv4 address or a bracketed IPv6 address. What
//! is refused, each with its own error: anything `http::Uri` refuses (spaces, non-ASCII, a bad
//! port), another scheme, no host, port 0, user info (`user:pass@host`: the secret has its own
//! place, and an error message must never print it) and a fragment (`#…` means nothing to a
//! server). A query string is kept: the WebSocket upgrade sends `ws_url`'s as written, and a
//! callback goes to `<path>/<operation>?<query>`.

use std::fmt;

use http::Uri;

/// The schemes the agent speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
    Ws,
    Wss,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }
    /// `https` and `wss`.
    pub fn tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Wss)
    }
    fn default_port(self) -> u16 {
        if self.tls() {
            443
        } else {
            80
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a URL was refused. The messages never contain the URL itself (it may carry credentials).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("not a valid URL ({0})")]
    Invalid(String),
    #[error("the scheme must be ws, wss, http or https")]
    Scheme,
    #[error("the URL has no host")]
    NoHost,
    #[error("port 0 is not a port")]
    PortZero,
    #[error("the port is not a number from 1 to 65535")]
    Port,
    #[error("credentials in a URL are refused (the secret has its own setting)")]
    Credentials,
    #[error("a URL fragment (#…) is refused: it is never sent to a server")]
    Fragment,
}

/// A parsed endpoint: where to connect and what to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// Host name or IP address as written, without IPv6 brackets.
    pub host: String,
    /// The explicit port, or the scheme's default.
    pub port: u16,
    /// The `Host:` header value: host and port as written (IPv6 in brackets).
    pub authority: String,
    /// The path as written (`/` when the URL has none).
    pub path: String,
    /// The query string without its `?`.
    pub query: Option<String>,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, UrlError> {
        if url.contains('#') {
            return Err(UrlError::Fragment);
        }
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| UrlError::Invalid(e.to_string()))?;
        let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some("ws") => Scheme::Ws,
            Some("wss") => Scheme::Wss,
            _ => return Err(UrlError::Scheme),
        };
        let authority = uri.authority().ok_or(UrlError::NoHost)?;
        if authority.as_str().contains('@') {
            return Err(UrlError::Credentials);
        }
        let host = authority.host();
        // `http::Uri` keeps a port it cannot read (`h:x`) as no port at all: refuse it here.
        let after_host = authority.as_str().get(host.len()..).unwrap_or_default();
        let port = match after_host.strip_prefix(':') {
            None if after_host.is_empty() => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| UrlError::Port)?),
            None => return Err(UrlError::Invalid("unexpected text after the host".into())),
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        let port = match port {
            Some(0) => return Err(UrlError::PortZero),
            Some(p) => p,
            None => scheme.default_port(),
        };
        Ok(Endpoint {
            scheme,
            host: host.to_string(),
            port,
            authority: authority.as_str().to_string(),
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
        })
    }

    pub fn tls(&self) -> bool {
        self.scheme.tls()
    }

    /// The host is `localhost` or a loopback address (plaintext is allowed there).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }

    /// The request target of the callback for `operation`: `<path>/<operation>[?<query>]`.
    pub fn target(&self, operation: &str) -> String {
        let base = self.path.trim_end_matches('/');
        let op = operation.trim_start_matches('/');
        match &self.query {
            Some(q) => format!("{base}/{op}?{q}"),
            None => format!("{base}/{op}"),
        }
    }

    /// The request target of this URL itself: its path and query as written.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// Same scheme, host (case-insensitive) and port: a connection to one serves the other.
    pub fn same_origin(&self, other: &Endpoint) -> bool {
        self.scheme == other.scheme
            && self.port == other.port
            && self.host.eq_ignore_ascii_case(&other.host)
    }

    /// `scheme://authority` + `target`, for log lines.
    pub fn url_for(&self, target: &str) -> String {
        format!("{}://{}{target}", self.scheme, self.authority)
    }
}

pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> Endpoint {
        Endpoint::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn hosts_ports_and_paths() {
        let e = ok("https://api.example.com/callback/");
        assert_eq!(
            (e.scheme, e.host.as_str(), e.port, e.path.as_str()),
            (Scheme::Https, "api.example.com", 443, "/callback/")
        );
        assert_eq!(e.authority, "api.example.com");
        assert_eq!(e.target("getBill"), "/callback/getBill");
        let e = ok("http://127.0.0.1:8080/cb");
        assert_eq!((e.port, e.authority.as_str()), (8080, "127.0.0.1:8080"));
        let e = ok("http://[::1]:9/x");
        assert_eq!(
            (e.host.as_str(), e.port, e.authority.as_str()),
            ("::1", 9, "[::1]:9")
        );
        assert!(e.is_loopback());
        let e = ok("HTTP://h");
        assert_eq!((e.scheme, e.target("/a").as_str()), (Scheme::Http, "/a"));
        let e = ok("WSS://Example.COM/restaurantEntryPoint");
        assert_eq!((e.scheme, e.port), (Scheme::Wss, 443));
        assert!(e.same_origin(&ok("wss://example.com:443/other")));
        assert!(!e.same_origin(&ok("ws://example.com:443/")));
        assert!(!e.same_origin(&ok("wss://example.com:444/")));
    }

    #[test]
    fn a_query_is_kept_and_follows_the_operation() {
        let e = ok("https://h/callback?key=v&x=1");
        assert_eq!(e.query.as_deref(), Some("key=v&x=1"));
        assert_eq!(e.target("getBill"), "/callback/getBill?key=v&x=1");
        assert_eq!(e.path_and_query(), "/callback?key=v&x=1");
        assert_eq!(ok("https://h?x").target("getBill"), "/getBill?x");
    }

    #[test]
    fn refusals_name_their_reason_and_never_the_url() {
        for (url, want) in [
            ("ftp://h/x", UrlError::Scheme),
            ("nope", UrlError::Scheme),
            ("http://u:secret-pw@h/", UrlError::Credentials),
            ("https://h/x#frag", UrlError::Fragment),
            ("http://h:0/", UrlError::PortZero),
            ("http://h:x/", UrlError::Port),
            ("http://h:/", UrlError::Port),
            ("http://h:70000/", UrlError::Port),
            ("http://[::1]:x/", UrlError::Port),
        ] {
            assert_eq!(Endpoint::parse(url), Err(want), "{url}");
        }
        for bad in [
            "h/x",
            "http://",
            "http://[::1/",
            "http://h a/",
            "http://hé/",
            "",
        ] {
            let e = Endpoint::parse(bad).unwrap_err();
            assert!(!e.to_string().contains("secret-pw"), "{bad}: {e}");
        }
        let e = Endpoint::parse("ws://id:secret-pw@example.com/x").unwrap_err();
        assert!(!e.to_string().contains("secret-pw"));
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "LOCALHOST", "127.0.0.1", "127.9.9.9", "::1"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["10.0.0.1", "example.com", "localhost.example.com", "::2"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
