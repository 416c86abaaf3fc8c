//! The ORDERS_CACHE webhook body: the one place its JSON shape lives (docs/protocol.md).
//!
//! Documented [doc]: `POST /callback/webhook` with `webhookType: "ORDERS_CACHE"`, `eventTime`
//! (UTC ISO-8601) and an array named `actualOrders` of the orders open in the POS (New and
//! Bill), with full details of those changed since the previous update.
//!
//! Chosen here, all [inferred] (the docs' example was not readable; see docs/cache.md):
//! - every open order appears once in `actualOrders`. Unchanged orders are a short entry
//!   `{billId, orderNumber, tableId, state, totalSum}`; changed orders are the full getBill Order
//!   object (`wire::order::write_order`), which is a superset of the short entry (it carries
//!   `guests`, `discounts`, ...), so a reader tells the two apart by the presence of `guests`;
//! - orders that left the open set since the last acknowledged push are listed as
//!   `closedOrders: [{billId, state}]`, with the mirror's state (`PAYED`, `CLOSED`) or `CLOSED`
//!   when the row is gone. The docs say closed orders go in **a separate webhook** whose name and
//!   payload are unknown: by default (`[compat] closed_orders = "separate"`) they are POSTed to
//!   the same path right after the ORDERS_CACHE push, as
//!   `{"webhookType":"CLOSED_ORDERS","eventTime",…,"closedOrders":[…]}` (name [inferred]), and
//!   only when there are some. `closed_orders = "inline"` puts the array inside the ORDERS_CACHE
//!   body instead (always present there, possibly empty).
//!
//! ```json
//! {"webhookType":"ORDERS_CACHE","eventTime":"2024-05-14T16:21:10.000000000Z",
//!  "actualOrders":[{"billId":"b-1","orderNumber":1842,"tableId":"table-12","state":"BILL","totalSum":389.5},
//!                  {"billId":"b-2","orderNumber":1843,…,"guests":[…]}]}
//! {"webhookType":"CLOSED_ORDERS","eventTime":"2024-05-14T16:21:10.000000000Z",
//!  "closedOrders":[{"billId":"b-0","state":"PAYED"}]}
//! ```

use crate::json::JsonBuf;
use crate::mirror::orders::Order;
use crate::wire::order;

use super::tracker::OpenOrder;

/// `webhookType` of this webhook.
pub const WEBHOOK_TYPE: &str = "ORDERS_CACHE";
/// `webhookType` of the separate closed-orders webhook [inferred].
pub const CLOSED_WEBHOOK_TYPE: &str = "CLOSED_ORDERS";
/// Callback path (`/callback/webhook`).
pub const PATH: &str = "webhook";

/// One bill that is no longer open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub bill_id: String,
    pub state: String,
}

/// The short entry of one open order.
pub fn write_short(j: &mut JsonBuf, o: &OpenOrder) {
    j.begin_obj()
        .f_str("billId", &o.bill_id)
        .f_int("orderNumber", o.order_number)
        .f_opt_str("tableId", o.table_id.as_deref())
        .f_str("state", &o.state)
        .f_money("totalSum", o.total_sum)
        .end_obj();
}

/// The full entry of one changed order (the getBill Order shape).
pub fn write_full(j: &mut JsonBuf, o: &Order) {
    order::write_order(j, o);
}

fn write_closed(j: &mut JsonBuf, closed: &[Closed]) {
    j.key("closedOrders").begin_arr();
    for c in closed {
        j.begin_obj()
            .f_str("billId", &c.bill_id)
            .f_str("state", &c.state)
            .end_obj();
    }
    j.end_arr();
}

/// The separate closed-orders webhook's body.
pub fn write_closed_body(j: &mut JsonBuf, event_time: &str, closed: &[Closed]) {
    j.begin_obj()
        .f_str("webhookType", CLOSED_WEBHOOK_TYPE)
        .f_str("eventTime", event_time);
    write_closed(j, closed);
    j.end_obj();
}

/// The whole body. `full(i)` gives the full details to send for `open[i]`, if any; `closed` is
/// written inline when given (`[compat] closed_orders = "inline"`).
pub fn write_body<'a>(
    j: &mut JsonBuf,
    event_time: &str,
    open: &[OpenOrder],
    full: impl Fn(usize) -> Option<&'a Order>,
    closed: Option<&[Closed]>,
) {
    j.begin_obj()
        .f_str("webhookType", WEBHOOK_TYPE)
        .f_str("eventTime", event_time);
    j.key("actualOrders").begin_arr();
    for (i, o) in open.iter().enumerate() {
        match full(i) {
            Some(order) => write_full(j, order),
            None => write_short(j, o),
        }
    }
    j.end_arr();
    if let Some(closed) = closed {
        write_closed(j, closed);
    }
    j.end_obj();
}
