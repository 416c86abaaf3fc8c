//! `init-mirror --demo`: a small, believable Kyiv restaurant so the agent can be tried
//! without a POS. Prices are in kopecks; names are Ukrainian as a real mirror's would be.

use rusqlite::{params, Connection};

use super::MirrorError;

/// Fill a freshly created mirror with the demo restaurant.
pub fn fill(conn: &mut Connection) -> Result<(), MirrorError> {
    let tx = conn.transaction()?;
    tx.execute_batch(
        "INSERT INTO halls (id, name) VALUES ('hall-1', 'Головна зала'), ('hall-2', 'Літня тераса');",
    )?;
    let table_names = [
        "Біля вікна",
        "Біля каміна",
        "Центр",
        "Центр",
        "Диван",
        "Диван",
        "Бар",
        "Бар",
        "Тераса, біля фонтану",
        "Тераса",
        "Тераса",
        "Тераса, кут",
    ];
    for (i, name) in table_names.iter().enumerate() {
        let n = i as i64 + 1;
        let hall = if n <= 8 { "hall-1" } else { "hall-2" };
        tx.execute(
            "INSERT INTO tables (id, number, name, hall_id) VALUES (?1, ?2, ?3, ?4)",
            params![format!("table-{n}"), n, name, hall],
        )?;
    }

    // Bill 1: table 12, one guest, a modifier and a 5% discount (the protocol reference's example).
    order(
        &tx,
        "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11",
        1842,
        "table-12",
        "BILL",
        "u-017",
        "Оксана Мельник",
        41000,
        38950,
        true,
    )?;
    pos(
        &tx,
        "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11",
        "p-1",
        1,
        1,
        None,
        "m-101",
        "Борщ український з пампушками",
        1000,
        14500,
        "dish",
    )?;
    pos(
        &tx,
        "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11",
        "p-2",
        2,
        1,
        None,
        "m-205",
        "Вареники з картоплею",
        2000,
        19000,
        "dish",
    )?;
    pos(
        &tx,
        "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11",
        "p-3",
        3,
        1,
        Some("p-2"),
        "mod-12",
        "Сметана",
        1000,
        1500,
        "modifier",
    )?;
    pos(
        &tx,
        "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11",
        "p-4",
        4,
        1,
        None,
        "m-330",
        "Узвар 0,5 л",
        1000,
        6000,
        "dish",
    )?;
    tx.execute(
        "INSERT INTO order_discounts (bill_id, discount_id, name, sum_kop) VALUES (?1, 'disc-5', 'Знижка 5% постійним гостям', 2050)",
        params!["6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11"],
    )?;

    // Bill 2: table 7, two guests, splittable.
    let b2 = "4afc3774-cc50-4e07-ad81-dd65f166244a";
    order(
        &tx,
        b2,
        977,
        "table-7",
        "NEW",
        "u-004",
        "Андрій Коваль",
        172060,
        172060,
        true,
    )?;
    pos(
        &tx,
        b2,
        "c53e1948-7ffe-4dea-8e25-9e6773fa8768",
        1,
        1,
        None,
        "m-410",
        "Деруни зі сметаною",
        2000,
        24000,
        "dish",
    )?;
    pos(
        &tx,
        b2,
        "0e857f96-d53b-4649-bae0-0674c6d59496",
        2,
        1,
        None,
        "m-512",
        "Котлета по-київськи",
        1000,
        40000,
        "dish",
    )?;
    pos(
        &tx,
        b2,
        "8e2ad560-938b-4972-ba60-8098aac99f8b",
        3,
        2,
        None,
        "m-777",
        "Сет «Гуцульський»",
        1000,
        108060,
        "dish",
    )?;

    // Bill 3 and 4: two open bills on table 3 (a guest asked for separate checks); one is by weight.
    order(
        &tx,
        "b-3001",
        2001,
        "table-3",
        "NEW",
        "u-017",
        "Оксана Мельник",
        23250,
        23250,
        false,
    )?;
    pos(
        &tx,
        "b-3001",
        "p-1",
        1,
        1,
        None,
        "m-905",
        "Шашлик зі свинини (ваговий)",
        350,
        22750,
        "dish",
    )?;
    pos(
        &tx,
        "b-3001",
        "p-2",
        2,
        1,
        Some("p-1"),
        "mod-31",
        "Аджика",
        1000,
        500,
        "modifier",
    )?;
    order(
        &tx,
        "b-3002",
        2002,
        "table-3",
        "NEW",
        "u-017",
        "Оксана Мельник",
        9000,
        9000,
        false,
    )?;
    pos(
        &tx,
        "b-3002",
        "p-1",
        1,
        1,
        None,
        "m-620",
        "Млинці з сиром",
        1000,
        9000,
        "dish",
    )?;

    // A paid bill: not open, never returned by table.
    order(
        &tx,
        "b-closed-1",
        1700,
        "table-5",
        "PAYED",
        "u-004",
        "Андрій Коваль",
        6000,
        6000,
        false,
    )?;
    pos(
        &tx,
        "b-closed-1",
        "p-1",
        1,
        1,
        None,
        "m-330",
        "Узвар 0,5 л",
        1000,
        6000,
        "dish",
    )?;
    tx.commit()?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn order(
    tx: &Connection,
    bill: &str,
    number: i64,
    table: &str,
    state: &str,
    waiter_id: &str,
    waiter: &str,
    raw: i64,
    total: i64,
    split: bool,
) -> Result<(), MirrorError> {
    tx.execute(
        "INSERT INTO orders (bill_id, order_number, table_id, state, created, waiter_id, waiter_name, raw_sum_kop, total_sum_kop, split_available)
         VALUES (?1, ?2, ?3, ?4, '2024.05.14 18:21:07', ?5, ?6, ?7, ?8, ?9)",
        params![bill, number, table, state, waiter_id, waiter, raw, total, split],
    )?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn pos(
    tx: &Connection,
    bill: &str,
    position: &str,
    line: i64,
    guest: i64,
    linked_to: Option<&str>,
    dish: &str,
    name: &str,
    count_milli: i64,
    sum_kop: i64,
    kind: &str,
) -> Result<(), MirrorError> {
    let (cat, cat_id) = if dish == "m-330" {
        ("Бар", "cat-bar")
    } else {
        ("Кухня", "cat-kitchen")
    };
    tx.execute(
        "INSERT INTO order_positions (bill_id, position_id, line_no, guest_no, guest_name, linked_to, dish_id, name, count_milli, sum_kop,
                                      category, category_id, tax_category, tax_category_id, type)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'ПДВ 20%', 'tax-a', ?13)",
        params![bill, position, line, guest, format!("Гість {guest}"), linked_to, dish, name, count_milli, sum_kop, cat, cat_id, kind],
    )?;
    Ok(())
}
