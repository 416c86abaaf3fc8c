//! Every FAIL sub-state the agent sends, in one place.
//!
//! The protocol documents only `WRONG_REQUEST_SUM` (payBill) and uses `ORDER_NOT_FOUND` /
//! `TABLE_NOT_FOUND` in getBill; the full list was not readable (docs/protocol.md). The
//! others are [inferred]: upper-case, self-explaining names a member of staff can act on. When
//! Expirenza publishes its list, this file is the one to change.
//!
//! Adding a sub-state is one entry in the table below; [`ALL`] lists it by itself.

macro_rules! substates {
    ($( $(#[$doc:meta])* $name:ident; )*) => {
        $( $(#[$doc])* pub const $name: &str = stringify!($name); )*
        /// Every sub-state above: a string the POS stored is mapped back through this list.
        pub const ALL: &[&str] = &[ $( $name, )* ];
    };
}

substates! {
    /// payBill: the paid sum differs from the bill's total in the POS. [doc]
    WRONG_REQUEST_SUM;
    /// No such bill (or, for getBill/splitOrder, no open one). [doc: getBill]
    ORDER_NOT_FOUND;
    /// No such table. [doc: getBill]
    TABLE_NOT_FOUND;
    /// payBill: the bill exists but is already paid or closed in the POS. [inferred]
    ORDER_CLOSED;
    /// The command is journaled but the POS did not apply it within `[journal]
    /// pos_ack_timeout_secs`. It stays pending and the POS applies it exactly once later; staff
    /// should check the POS. [inferred]
    POS_TIMEOUT;
    /// The POS refused the command and gave no sub-state of its own. [inferred]
    POS_REJECTED;
    /// The mirror cannot be read, or the POS's result is inconsistent with it. [inferred]
    POS_UNAVAILABLE;
    /// The journal could not be written within `[journal] busy_timeout_ms` (a POS transaction
    /// held its lock) or cannot be opened. The request was kept in the agent's spool and is
    /// moved into the journal as a `review` row for staff to settle. [inferred]
    JOURNAL_UNAVAILABLE;
    /// Never sent: the `substate` of a `review` row kept for a second rID paying a bill that
    /// already has a live payment (the cloud gets that payment's outcome). [inferred]
    DUPLICATE_PAYMENT;
    /// The request lacks a field or has one of the wrong type. [inferred]
    BAD_REQUEST;
    /// splitOrder: the bill is not marked `split_available`. [inferred]
    SPLIT_NOT_AVAILABLE;
    /// splitOrder: a position is not on the bill, is listed twice, or asks for more than it holds. [inferred]
    WRONG_POSITIONS;
    /// splitOrder: `controlSum` differs from the sum of the chosen lines. [inferred]
    WRONG_CONTROL_SUM;
    /// createOrderOnTable: an item is unknown, inactive, or on the stop list. [inferred]
    PRODUCT_UNAVAILABLE;
    /// The agent has more requests in hand than `[limits] max_pending_bytes` allows; the
    /// request was not started. The cloud may send it again. A money operation is spooled
    /// first and kept as a `review` row until the same rID comes again. [inferred]
    AGENT_BUSY;
    /// The answer would exceed `[limits] max_body_bytes`. [inferred]
    ANSWER_TOO_LARGE;
    /// The agent is stopping; the request was not started. A money operation is spooled first,
    /// as for `AGENT_BUSY`. [inferred]
    AGENT_STOPPING;
    /// The operation named in the request is not one the agent knows. [inferred]
    UNKNOWN_OPERATION;
    /// The operation failed inside the agent for a reason none of the above names. [inferred]
    AGENT_ERROR;
}

/// The known constant equal to `s`, if any.
pub fn known(s: &str) -> Option<&'static str> {
    ALL.iter().copied().find(|k| *k == s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_journal_writes_known_sub_states() {
        for s in [
            crate::journal::SUBSTATE_DUPLICATE,
            crate::journal::SUBSTATE_SPOOLED,
        ] {
            assert_eq!(super::known(s), Some(s));
        }
        assert_eq!(
            crate::journal::SUBSTATES_NOT_STARTED,
            [super::AGENT_BUSY, super::AGENT_STOPPING]
        );
    }
}
