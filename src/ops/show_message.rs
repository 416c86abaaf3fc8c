//! `showMessage`: a message for the staff (docs/protocol.md). No callback.
//!
//! The message is journaled as a `showMessage` command (status `pending`, `bill_id` from the
//! request); the POS shows it on the staff screen and acknowledges it like any command
//! (docs/journal.md). The full frame is stored, so even a message whose fields cannot be read
//! (too long for the caps below, a field of an unexpected type) reaches the POS as sent. The
//! same rID is journaled once.

use serde::Deserialize;

use super::{Answer, Ctx, OpError};
use crate::journal::store::{Dedup, NewCommand};
use crate::request::{parse_fields, Envelope};

#[derive(Deserialize)]
pub struct Fields {
    pub message: Option<heapless::String<2048>>,
    pub warning: Option<bool>,
    #[serde(rename = "billId")]
    pub bill_id: Option<heapless::String<128>>,
}

pub fn handle(ctx: &Ctx, env: &Envelope, frame: &[u8]) -> Result<Answer, OpError> {
    let rid = env.rid.as_str();
    let fields = match parse_fields::<Fields>(frame) {
        Ok(f) => Some(f),
        Err(e) => {
            log_warn!(
                "showMessage rID={rid}: fields unreadable ({e}); journaling the frame as sent"
            );
            None
        }
    };
    let bill_id = fields.as_ref().and_then(|f| f.bill_id.as_deref());
    let new = NewCommand {
        rid,
        operation: "showMessage",
        bill_id,
        request: std::str::from_utf8(frame).unwrap_or_default(),
        dedup: Dedup::RidOnly,
        ..NewCommand::default()
    };
    match ctx.journal.insert(&new) {
        Ok(j) => {
            let c = j.command();
            let warning = fields.as_ref().and_then(|f| f.warning).unwrap_or(false);
            Ok(Answer::None {
                outcome: format!(
                    "{} #{}{}",
                    if j.is_new() { "journaled" } else { "repeat of" },
                    c.id,
                    if warning { " warning" } else { "" }
                ),
            })
        }
        Err(e) => Err(OpError::Other(format!(
            "showMessage could NOT be journaled for the staff: {e}"
        ))),
    }
}
