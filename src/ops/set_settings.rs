//! `setSettings`: settings pushed by the cloud (docs/protocol.md). No callback.
//!
//! The whole frame is stored in the journal's `settings` table (one row: the latest wins), where
//! the POS reads it (docs/journal.md). The fields are not interpreted here: their meaning is
//! known only from code, and the POS is what prints pre-check QR codes.

use serde::Deserialize;

use super::{Answer, Ctx, OpError};
use crate::request::{parse_fields, Envelope};

#[derive(Deserialize)]
struct Peek {
    #[serde(rename = "printPrecheckQr")]
    print_precheck_qr: Option<bool>,
}

pub fn handle(ctx: &Ctx, env: &Envelope, frame: &[u8]) -> Result<Answer, OpError> {
    let rid = env.rid.as_str();
    let json = std::str::from_utf8(frame).unwrap_or_default();
    let qr = parse_fields::<Peek>(frame)
        .ok()
        .and_then(|p| p.print_precheck_qr);
    match ctx.journal.put_settings(rid, json) {
        Ok(()) => Ok(Answer::None {
            outcome: format!(
                "stored {} bytes (printPrecheckQr={})",
                json.len(),
                qr.map(|b| b.to_string()).unwrap_or_else(|| "-".into())
            ),
        }),
        Err(e) => Err(OpError::Other(format!(
            "setSettings could not be stored: {e}"
        ))),
    }
}
