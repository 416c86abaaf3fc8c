//! The Order (bill) JSON shape, shared by getBill, payBill, splitOrder and the ORDERS_CACHE
//! webhook (docs/protocol.md). Field names and which fields are omitted when empty live
//! here and nowhere else.

use crate::json::JsonBuf;
use crate::key;
use crate::mirror::orders::{Line, Order, Position};

/// Writes one Order object.
pub fn write_order(j: &mut JsonBuf, o: &Order) {
    let lines: Result<(), std::convert::Infallible> = write_order_with(j, o, |j, g| {
        for p in &o.positions {
            g.dish(j, &p.line(), o.order_number);
        }
        Ok(())
    });
    let Ok(()) = lines;
}

/// Writes one Order object whose lines come from `lines` (which calls [`Guests::dish`] for
/// each, in bill order) instead of `o.positions`: getBill writes them straight from the mirror
/// rows. An error from `lines` is returned as it is, with the object left unfinished.
pub fn write_order_with<E>(
    j: &mut JsonBuf,
    o: &Order,
    lines: impl FnOnce(&mut JsonBuf, &mut Guests) -> Result<(), E>,
) -> Result<(), E> {
    j.begin_obj()
        .f_str(key!("billId"), &o.bill_id)
        .f_int(key!("orderNumber"), o.order_number)
        .f_str(key!("created"), &o.created)
        .f_opt_str(key!("tableId"), o.table_id.as_deref())
        .f_opt_str(key!("state"), Some(o.state.as_str()))
        .f_opt_str(key!("waiter"), o.waiter_name.as_deref())
        .f_opt_str(key!("waiterId"), o.waiter_id.as_deref())
        .f_bool(key!("isBanquetOrder"), o.is_banquet)
        .f_bool(key!("isDelivery"), o.is_delivery)
        .f_bool(key!("splitAvailable"), o.split_available)
        .f_opt_str(key!("rootBillId"), o.root_bill_id.as_deref())
        .f_opt_str(key!("paymentType"), o.payment_type.as_deref())
        .f_opt_str(key!("pricingTime"), o.pricing_time.as_deref())
        .f_money(key!("bonusSum"), o.bonus_sum)
        .f_money(key!("rawSum"), o.raw_sum);
    j.key(key!("discounts"))
        .begin_obj()
        .key(key!("list"))
        .begin_arr();
    for d in &o.discounts {
        j.begin_obj()
            .f_str(key!("id"), &d.id)
            .f_str(key!("name"), &d.name)
            .f_money(key!("sum"), d.sum)
            .end_obj();
    }
    j.end_arr().end_obj();
    j.f_money(key!("totalSum"), o.total_sum);
    j.key(key!("guests"));
    let mut g = Guests::begin(j);
    lines(j, &mut g)?;
    g.end(j);
    j.end_obj();
    Ok(())
}

/// `[{"name":"Гість 1","dishes":[…]}, …]`: positions grouped by guest, in guest order.
pub fn write_guests(j: &mut JsonBuf, positions: &[Position], order_number: i64) {
    let mut g = Guests::begin(j);
    for p in positions {
        g.dish(j, &p.line(), order_number);
    }
    g.end(j);
}

/// The `guests` array written one line at a time: a new guest object opens whenever the
/// guest number changes (lines come grouped by guest).
pub struct Guests {
    current: Option<i64>,
}

impl Guests {
    pub fn begin(j: &mut JsonBuf) -> Guests {
        j.begin_arr();
        Guests { current: None }
    }

    pub fn dish(&mut self, j: &mut JsonBuf, l: &Line<'_>, order_number: i64) {
        if self.current != Some(l.guest_no) {
            if self.current.is_some() {
                j.end_arr().end_obj();
            }
            j.begin_obj()
                .f_str(key!("name"), l.guest_name)
                .key(key!("dishes"))
                .begin_arr();
            self.current = Some(l.guest_no);
        }
        write_dish(j, l, order_number);
    }

    pub fn end(self, j: &mut JsonBuf) {
        if self.current.is_some() {
            j.end_arr().end_obj();
        }
        j.end_arr();
    }
}

pub fn write_dish(j: &mut JsonBuf, l: &Line<'_>, order_number: i64) {
    j.begin_obj()
        .f_str(key!("positionId"), l.position_id)
        .f_str_or_null(key!("linkedTo"), l.linked_to)
        .f_str(key!("dishId"), l.dish_id.unwrap_or(""))
        .f_str(key!("name"), l.name)
        .f_qty(key!("count"), l.count)
        .f_money(key!("sum"), l.sum)
        .f_opt_str(key!("category"), l.category)
        .f_opt_str(key!("categoryId"), l.category_id)
        .f_opt_str(key!("taxCategory"), l.tax_category)
        .f_opt_str(key!("taxCategoryId"), l.tax_category_id)
        .f_str(key!("type"), l.kind)
        .f_int(key!("orderNumber"), order_number)
        .f_opt_str(key!("checkNumber"), l.check_number)
        .end_obj();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::orders;
    use crate::mirror::rows::Budget;
    use crate::mirror::MirrorError;

    /// getBill writes lines straight from the rows; payBill, splitOrder and ORDERS_CACHE write
    /// an owned `Order`. Both must give the same bytes for every bill.
    #[test]
    fn lines_streamed_from_rows_write_the_same_bytes_as_an_owned_order() {
        let dir = crate::test_util::TempDir::new("wire-order");
        let mut conn = crate::mirror::create_schema(&dir.path().join("m.sqlite")).unwrap();
        crate::mirror::demo::fill(&mut conn).unwrap();
        // On a second guest: one line with every optional column NULL and an escaped name, one
        // with every optional column set.
        conn.execute_batch(
            "INSERT INTO order_positions (bill_id, position_id, line_no, guest_no, guest_name, name, \
             count_milli, sum_kop) SELECT bill_id, 'p-null', 98, 2, 'Гість \"2\"', 'Чай\\n', 1500, 3000 \
             FROM orders LIMIT 1; \
             INSERT INTO order_positions (bill_id, position_id, line_no, guest_no, guest_name, linked_to, \
             dish_id, name, count_milli, sum_kop, category, category_id, tax_category, tax_category_id, \
             type, check_number) SELECT bill_id, 'p-full', 99, 2, 'Гість \"2\"', 'p-null', 'd-9', 'Лимон', \
             250, 500, 'Напої', 'c-3', 'ПДВ', 't-1', 'modifier', 'ch-7' FROM orders LIMIT 1",
        )
        .unwrap();
        let ids: Vec<String> = conn
            .prepare("SELECT bill_id FROM orders")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(ids.len() >= 2, "the demo has bills");
        let raw = crate::mirror::raw::RawConn::new(conn);
        let conn = crate::mirror::Conn::new(&raw);
        let mut lines_seen = 0;
        for id in &ids {
            let owned = orders::order_by_id(&conn, id, 10_000).unwrap().unwrap();
            lines_seen += owned.positions.len();
            if let Some(p) = owned.positions.iter().find(|p| p.position_id == "p-full") {
                // Every optional field reached the owned copy.
                let l = p.line();
                let set = [l.linked_to, l.dish_id, l.category, l.category_id];
                let set2 = [l.tax_category, l.tax_category_id, l.check_number];
                assert!(set.iter().chain(&set2).all(Option::is_some), "{p:?}");
            }
            let mut a = JsonBuf::new(1 << 20);
            write_order(&mut a, &owned);

            let mut budget = Budget::new(10_000);
            let head = orders::head_by_id(&conn, id, &mut budget).unwrap().unwrap();
            assert!(head.positions.is_empty());
            let mut b = JsonBuf::new(1 << 20);
            write_order_with(&mut b, &head, |j, g| {
                orders::for_each_line(&conn, id, &mut budget, |l| g.dish(j, l, head.order_number))
            })
            .unwrap();
            let (a, b) = (a.finish().unwrap(), b.finish().unwrap());
            assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
        }
        assert!(lines_seen > ids.len(), "bills with lines were compared");

        // The row budget holds on the streamed path too.
        let id = &ids[0];
        let mut budget = Budget::new(1);
        let r = orders::for_each_line(&conn, id, &mut budget, |_| {});
        assert!(matches!(r, Err(MirrorError::TooManyRows(1))), "{r:?}");
    }
}
