//! `menuInfo`: the whole menu (docs/protocol.md), streamed from the mirror.
//!
//! A real menu has thousands of rows, so nothing is collected: each section is one SQL cursor
//! whose rows are written straight into the one capped [`JsonBuf`](crate::json::JsonBuf). A dish's own modifiers and
//! group modifiers come from two more cursors ordered by the same key (the item id as text,
//! binary collation) and are merged into the dish as it is written, so memory is the body cap
//! plus one row per cursor, whatever the number of rows. Rows read are counted against
//! `stream::menu_rows` (bounded by `[limits] max_menu_bytes`, not `max_rows`: the menu
//! is never held); past `[limits] max_body_bytes` the writer stops, reading stops, a warning
//! names the cap, and the answer is refused (`OpError::TooLarge`, logged by dispatch).
//!
//! Shape: `{"rID","groups":[…],"dishes":[…],"modifiers":[…],"groupModifiers":[…],
//! "terminalsGroups":[…],"hostTerminalsGroup":{…}}`. Empty optional fields are omitted;
//! `parentId` is `null` for a top-level group, as in the protocol's example.
//!
//! Dishes also carry `menuSections` (string array, from the optional `menu_item_sections` table)
//! and `modifierSchemeId` (from the optional `menu_items.modifier_scheme_id` column): a mirror
//! without them still serves menuInfo, and the fields are left out. A dish's own modifiers
//! carry `groupId` (the modifier's `modifiers.group_id`) and `quantity` (its default amount).

mod rows;
pub mod stream;
mod write;

pub use write::NEEDS;

use super::{fail_body, substate, Answer, Ctx, OpError};
use crate::request::Envelope;

/// The menu: whole when it fits in `[limits] max_body_bytes`, else streamed (generated twice
/// from one snapshot, see `stream.rs`), up to `[limits] max_menu_bytes`.
pub fn handle(ctx: &Ctx, env: &Envelope, _frame: &[u8]) -> Result<Answer, OpError> {
    use crate::body_stream::{Prepared, StreamError};
    use stream::MenuError;
    let rid = env.rid.as_str();
    match stream::prepare(ctx, rid) {
        Ok((prepared, (groups, dishes, modifiers))) => {
            let outcome = format!("SUCCESS groups={groups} dishes={dishes} modifiers={modifiers}");
            Ok(match prepared {
                Prepared::Small(body) => Answer::Callback { body, outcome },
                Prepared::Large(body) => {
                    log_info!(
                        "menuInfo rID={rid}: {} bytes, over [limits] max_body_bytes = {}: \
                         streamed (signed on a first pass, sent on a second)",
                        body.len(),
                        ctx.cfg.limits.max_body_bytes
                    );
                    Answer::Stream { body, outcome }
                }
            })
        }
        Err(MenuError::Stream(StreamError::TooLarge(e))) => {
            log_warn!(
                "menuInfo rID={rid}: the menu does not fit in [limits] max_menu_bytes = {}; \
                 answer refused: raise max_menu_bytes or trim the menu",
                e.cap
            );
            Err(OpError::TooLarge(e))
        }
        Err(e) => fail_body(ctx, rid, substate::POS_UNAVAILABLE, &e.to_string(), |_| {}),
    }
}
