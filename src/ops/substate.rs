//! Every FAIL sub-state the agent sends, in one place.
//!
//! The protocol documents only `WRONG_REQUEST_SUM` (payBill) and uses `ORDER_NOT_FOUND` /
//! `TABLE_NOT_FOUND` in getBill; the full list was not readable (protocol reference §8.3). The
//! others are [inferred]: upper-case, self-explaining names a member of staff can act on. When
//! Expirenza publishes its list, this file is the one to change.

/// payBill: the paid sum differs from the bill's total in the POS. [doc]
pub const WRONG_REQUEST_SUM: &str = "WRONG_REQUEST_SUM";
/// No such bill (or, for getBill/splitOrder, no open one). [doc: getBill]
pub const ORDER_NOT_FOUND: &str = "ORDER_NOT_FOUND";
/// No such table. [doc: getBill]
pub const TABLE_NOT_FOUND: &str = "TABLE_NOT_FOUND";
/// payBill: the bill exists but is already paid or closed in the POS. [inferred]
pub const ORDER_CLOSED: &str = "ORDER_CLOSED";
/// The command is journaled but the POS did not apply it within `[journal]
/// pos_ack_timeout_secs`. It stays pending and the POS applies it exactly once later; staff
/// should check the POS. [inferred]
pub const POS_TIMEOUT: &str = "POS_TIMEOUT";
/// The POS refused the command and gave no sub-state of its own. [inferred]
pub const POS_REJECTED: &str = "POS_REJECTED";
/// The mirror cannot be read, or the POS's result is inconsistent with it. [inferred]
pub const POS_UNAVAILABLE: &str = "POS_UNAVAILABLE";
/// The journal cannot be opened or written: nothing was recorded by the agent. [inferred]
pub const JOURNAL_UNAVAILABLE: &str = "JOURNAL_UNAVAILABLE";
/// The request lacks a field or has one of the wrong type. [inferred]
pub const BAD_REQUEST: &str = "BAD_REQUEST";
/// splitOrder: the bill is not marked `split_available`. [inferred]
pub const SPLIT_NOT_AVAILABLE: &str = "SPLIT_NOT_AVAILABLE";
/// splitOrder: a position is not on the bill, is listed twice, or asks for more than it holds. [inferred]
pub const WRONG_POSITIONS: &str = "WRONG_POSITIONS";
/// splitOrder: `controlSum` differs from the sum of the chosen lines. [inferred]
pub const WRONG_CONTROL_SUM: &str = "WRONG_CONTROL_SUM";
/// createOrderOnTable: an item is unknown, inactive, or on the stop list. [inferred]
pub const PRODUCT_UNAVAILABLE: &str = "PRODUCT_UNAVAILABLE";
