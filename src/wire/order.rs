//! The Order (bill) JSON shape, shared by getBill, payBill, splitOrder and the ORDERS_CACHE
//! webhook (docs/protocol.md). Field names and which fields are omitted when empty live
//! here and nowhere else.

use crate::json::JsonBuf;
use crate::mirror::orders::{Order, Position};

/// Writes one Order object.
pub fn write_order(j: &mut JsonBuf, o: &Order) {
    j.begin_obj()
        .f_str("billId", &o.bill_id)
        .f_int("orderNumber", o.order_number)
        .f_str("created", &o.created)
        .f_opt_str("tableId", o.table_id.as_deref())
        .f_opt_str("state", Some(o.state.as_str()))
        .f_opt_str("waiter", o.waiter_name.as_deref())
        .f_opt_str("waiterId", o.waiter_id.as_deref())
        .f_bool("isBanquetOrder", o.is_banquet)
        .f_bool("isDelivery", o.is_delivery)
        .f_bool("splitAvailable", o.split_available)
        .f_opt_str("rootBillId", o.root_bill_id.as_deref())
        .f_opt_str("paymentType", o.payment_type.as_deref())
        .f_opt_str("pricingTime", o.pricing_time.as_deref())
        .f_money("bonusSum", o.bonus_sum)
        .f_money("rawSum", o.raw_sum);
    j.key("discounts").begin_obj().key("list").begin_arr();
    for d in &o.discounts {
        j.begin_obj()
            .f_str("id", &d.id)
            .f_str("name", &d.name)
            .f_money("sum", d.sum)
            .end_obj();
    }
    j.end_arr().end_obj();
    j.f_money("totalSum", o.total_sum);
    j.key("guests");
    write_guests(j, &o.positions, o.order_number);
    j.end_obj();
}

/// `[{"name":"Гість 1","dishes":[…]}, …]`: positions grouped by guest, in guest order.
pub fn write_guests(j: &mut JsonBuf, positions: &[Position], order_number: i64) {
    j.begin_arr();
    let mut current: Option<i64> = None;
    for p in positions {
        if current != Some(p.guest_no) {
            if current.is_some() {
                j.end_arr().end_obj();
            }
            j.begin_obj()
                .f_str("name", &p.guest_name)
                .key("dishes")
                .begin_arr();
            current = Some(p.guest_no);
        }
        write_dish(j, p, order_number);
    }
    if current.is_some() {
        j.end_arr().end_obj();
    }
    j.end_arr();
}

pub fn write_dish(j: &mut JsonBuf, p: &Position, order_number: i64) {
    j.begin_obj()
        .f_str("positionId", &p.position_id)
        .f_str_or_null("linkedTo", p.linked_to.as_deref())
        .f_str("dishId", p.dish_id.as_deref().unwrap_or(""))
        .f_str("name", &p.name)
        .f_qty("count", p.count)
        .f_money("sum", p.sum)
        .f_opt_str("category", p.category.as_deref())
        .f_opt_str("categoryId", p.category_id.as_deref())
        .f_opt_str("taxCategory", p.tax_category.as_deref())
        .f_opt_str("taxCategoryId", p.tax_category_id.as_deref())
        .f_str("type", &p.kind)
        .f_int("orderNumber", order_number)
        .f_opt_str("checkNumber", p.check_number.as_deref())
        .end_obj();
}
