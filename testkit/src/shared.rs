//! What the fake cloud's two servers share: a header looked up by name, and the error body
//! the cloud answers with.

/// The value of header `name` (any case), the first if repeated.
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The cloud's error body shape (docs/protocol.md §2.3), with a generic text.
pub(crate) fn error_body(status: u16) -> String {
    format!(
        r#"{{"errCode":{{}},"errText":"fake cloud: HTTP {status} {}","errTitle":"Error","errType":"FULLSCREEN","fieldErrors":[]}}"#,
        reason(status)
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
