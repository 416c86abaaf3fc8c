//! Redirects of a callback (docs/protocol.md §2.3).
//!
//! 307 and 308 keep the method and the body (RFC 9110 §15.4.8, §15.4.9), so they are followed,
//! at most [`MAX_HOPS`] times per attempt, with the same body and the same signature, to an
//! `https` URL, or a plain `http` one on a loopback host (the rule of `config::validate`). A
//! `Location` may be an absolute URL, `//host/path` or `/path`; other relative forms are not
//! followed. 301, 302 and 303 let a client turn the POST into a GET, which would lose the
//! answer: they are final, and so is every other 3xx.

use crate::config::{Endpoint, Scheme};

/// Most redirects followed within one attempt.
pub const MAX_HOPS: usize = 3;

/// Where a redirect leads: the endpoint and the request target (path and query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub to: Endpoint,
    pub target: String,
}

impl Hop {
    pub fn url(&self) -> String {
        self.to.url_for(&self.target)
    }
}

/// The hop a 307/308 with `location` asks for, from `from`, after `hops` redirects already
/// followed. `Err`: why it is not followed (the callback then fails).
pub fn follow(
    status: u16,
    location: Option<&str>,
    from: &Endpoint,
    hops: usize,
) -> Result<Hop, String> {
    let Some(location) = location else {
        return Err(format!(
            "HTTP {status} redirect without a Location: not followed"
        ));
    };
    if hops >= MAX_HOPS {
        return Err(format!(
            "HTTP {status} redirect to {location}: not followed, more than {MAX_HOPS} redirects"
        ));
    }
    let location = location.split('#').next().unwrap_or_default();
    let to = if location.starts_with("//") {
        Endpoint::parse(&format!("{}:{location}", from.scheme))
    } else if location.starts_with('/') {
        Endpoint::parse(&format!("{}://{}{location}", from.scheme, from.authority))
    } else if location.contains("://") {
        Endpoint::parse(location)
    } else {
        return Err(format!(
            "HTTP {status} redirect to {location}: not followed (a relative Location other than /path)"
        ));
    }
    .map_err(|e| format!("HTTP {status} redirect to an invalid Location: {e}"))?;
    match to.scheme {
        Scheme::Https => {}
        Scheme::Http if to.is_loopback() => {}
        Scheme::Http => {
            return Err(format!(
                "HTTP {status} redirect to {location}: not followed (plain http:// is for loopback hosts only; callbacks go over TLS)"
            ))
        }
        Scheme::Ws | Scheme::Wss => {
            return Err(format!(
                "HTTP {status} redirect to {location}: not followed (not an http(s) URL)"
            ))
        }
    }
    let target = to.path_and_query();
    Ok(Hop { to, target })
}

/// The message of a final 3xx (not 307/308).
pub fn refused(status: u16, location: Option<&str>) -> String {
    let to = location.unwrap_or("(no Location)");
    format!(
        "HTTP {status} redirect to {to}: not followed (after a {status} a POST may become a GET and lose the answer; \
         only 307 and 308 are followed); set callback_url to the new location"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(url: &str) -> Endpoint {
        Endpoint::parse(url).unwrap()
    }

    #[test]
    fn absolute_and_path_locations_are_followed() {
        let from = ep("https://api.example.com/callback");
        let h = follow(
            307,
            Some("https://new.example.com:8443/cb/getBill?x=1"),
            &from,
            0,
        )
        .unwrap();
        assert_eq!((h.to.host.as_str(), h.to.port), ("new.example.com", 8443));
        assert_eq!(h.target, "/cb/getBill?x=1");
        assert_eq!(h.url(), "https://new.example.com:8443/cb/getBill?x=1");
        let h = follow(308, Some("/v2/callback/getBill#frag"), &from, 2).unwrap();
        assert!(h.to.same_origin(&from));
        assert_eq!(h.target, "/v2/callback/getBill");
        let h = follow(308, Some("//other.example.com/x"), &from, 0).unwrap();
        assert_eq!(
            (h.to.scheme, h.to.host.as_str()),
            (Scheme::Https, "other.example.com")
        );
        let lo = ep("http://127.0.0.1:9/cb");
        let h = follow(307, Some("/cb2/getBill"), &lo, 0).unwrap();
        assert_eq!(h.url(), "http://127.0.0.1:9/cb2/getBill");
        assert!(follow(307, Some("http://localhost:10/x"), &lo, 0).is_ok());
    }

    #[test]
    fn what_is_not_followed_says_why() {
        let from = ep("https://api.example.com/callback");
        for (loc, why) in [
            (Some("http://api.example.com/x"), "loopback"),
            (Some("wss://api.example.com/x"), "not an http(s) URL"),
            (Some("getBill2"), "relative"),
            (Some("https://u:p@h/x"), "invalid Location"),
            (None, "without a Location"),
        ] {
            let e = follow(307, loc, &from, 0).unwrap_err();
            assert!(e.contains(why), "{loc:?}: {e}");
        }
        let e = follow(308, Some("/x"), &from, MAX_HOPS).unwrap_err();
        assert!(e.contains("more than 3 redirects"), "{e}");
        let e = refused(301, Some("https://b/x"));
        assert!(e.contains("HTTP 301") && e.contains("https://b/x"), "{e}");
    }
}
