//! Pull the `rID` out of a callback body without `serde_json` (a dev-dependency only).

use serde::Deserialize;

/// Longest `rID` we extract; longer ones yield `None` (real ones are ~40 bytes).
const MAX_RID: usize = 256;

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "rID", default)]
    rid: Option<heapless::String<MAX_RID>>,
}

/// The top-level `rID` string of a JSON object, if the body is such an object and has one.
///
/// Escape sequences inside the value are returned as written (serde-json-core does not
/// unescape); real `rID`s contain none.
pub(crate) fn extract_rid(body: &[u8]) -> Option<String> {
    let (env, _) = serde_json_core::from_slice::<Envelope>(body).ok()?;
    env.rid.map(|s| s.as_str().to_owned())
}
