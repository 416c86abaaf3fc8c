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
    fill_menu(&tx)?;
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

/// Mirror contract v2: staff, categories, the menu, its modifiers and the stop list. The dish
/// ids and prices agree with the bills above (m-205 is 95.00, two portions are 190.00).
fn fill_menu(tx: &Connection) -> Result<(), MirrorError> {
    tx.execute_batch(
        "INSERT INTO staff (id, name, cell_phone, roles) VALUES
            ('u-017', 'Оксана Мельник', '+380671234567', 'Офіціант'),
            ('u-004', 'Андрій Коваль', '+380504443322', 'Офіціант'),
            ('u-021', 'Ігор Бондар', '+380931112233', 'Кур''єр'),
            ('u-001', 'Наталія Шевченко', '+380672220011', 'Менеджер, Офіціант');
         INSERT INTO categories (id, name, type) VALUES
            ('cat-kitchen', 'Кухня', 'dish'),
            ('cat-bar', 'Бар', 'drink');
         INSERT INTO menu_groups (id, name, parent_id, menu_index) VALUES
            ('g-soups', 'Перші страви', NULL, 1),
            ('g-hot', 'Гарячі страви', NULL, 2),
            ('g-grill', 'З мангалу', 'g-hot', 3),
            ('g-varenyky', 'Вареники', NULL, 4),
            ('g-desserts', 'Десерти', NULL, 5),
            ('g-drinks', 'Напої', NULL, 6);
         INSERT INTO terminal_groups (id, name, is_host) VALUES
            ('tg-1', 'Основна каса', 1),
            ('tg-2', 'Бар', 0);",
    )?;
    #[rustfmt::skip]
    let dishes: &[(&str, &str, &str, i64, &str, &str, &str)] = &[
        ("m-101", "Борщ український з пампушками", "Зі сметаною та салом", 14500, "cat-kitchen", "g-soups", "порція"),
        ("m-102", "Юшка з білих грибів", "", 12000, "cat-kitchen", "g-soups", "порція"),
        ("m-205", "Вареники з картоплею", "Домашні, 8 шт.", 9500, "cat-kitchen", "g-varenyky", "порція"),
        ("m-206", "Вареники з вишнею", "Домашні, 8 шт.", 11000, "cat-kitchen", "g-varenyky", "порція"),
        ("m-410", "Деруни зі сметаною", "", 12000, "cat-kitchen", "g-hot", "порція"),
        ("m-512", "Котлета по-київськи", "З картопляним пюре", 40000, "cat-kitchen", "g-hot", "порція"),
        ("m-777", "Сет «Гуцульський»", "Банош, бринза, шкварки, гриби", 108060, "cat-kitchen", "g-hot", "порція"),
        ("m-905", "Шашлик зі свинини (ваговий)", "Ціна за 1 кг", 65000, "cat-kitchen", "g-grill", "кг"),
        ("m-620", "Млинці з сиром", "", 9000, "cat-kitchen", "g-desserts", "порція"),
        ("m-621", "Сирники зі сметаною", "", 11500, "cat-kitchen", "g-desserts", "порція"),
        ("m-330", "Узвар 0,5 л", "", 6000, "cat-bar", "g-drinks", "шт"),
        ("m-331", "Квас хлібний 0,5 л", "", 5500, "cat-bar", "g-drinks", "шт"),
        ("m-332", "Кава американо", "", 5000, "cat-bar", "g-drinks", "чашка"),
    ];
    for (id, name, desc, price, cat, group, unit) in dishes {
        let vendor = id.trim_start_matches("m-");
        tx.execute(
            "INSERT INTO menu_items (id, name, description, price_kop, category_id, group_id, is_active, type, unit,
                                     vendor_code, tax_category, tax_category_id)
             VALUES (?1, ?2, NULLIF(?3, ''), ?4, ?5, ?6, 1, 'dish', ?7, ?8, 'ПДВ 20%', 'tax-a')",
            params![id, name, desc, price, cat, group, unit, vendor],
        )?;
    }
    tx.execute_batch(
        "UPDATE menu_items SET scale_id = 'sc-cup', scale_name = 'Об''єм', scale_size_id = 'sz-250',
                scale_size_name = '250 мл', scale_size_kitchen_name = 'Середня', scale_size_menu_index = 1
          WHERE id = 'm-332';
         UPDATE menu_items SET is_active = 0 WHERE id = 'm-102';
         INSERT INTO modifiers (id, name, price_kop, category_id, group_id, type, unit, tax_category, tax_category_id) VALUES
            ('mod-12', 'Сметана', 1500, 'cat-kitchen', 'gm-sauce', 'modifier', 'порція', 'ПДВ 20%', 'tax-a'),
            ('mod-13', 'Часниковий соус', 2000, 'cat-kitchen', 'gm-sauce', 'modifier', 'порція', 'ПДВ 20%', 'tax-a'),
            ('mod-14', 'Шкварки з цибулею', 2500, 'cat-kitchen', 'gm-sauce', 'modifier', 'порція', 'ПДВ 20%', 'tax-a'),
            ('mod-31', 'Аджика', 500, 'cat-kitchen', 'gm-grill', 'modifier', 'порція', 'ПДВ 20%', 'tax-a'),
            ('mod-32', 'Гірчиця', 500, 'cat-kitchen', 'gm-grill', 'modifier', 'порція', 'ПДВ 20%', 'tax-a');
         INSERT INTO group_modifiers (id, name, required, min_amount, max_amount, default_amount, free, free_amount, child_min_max) VALUES
            ('gm-sauce', 'Соуси та додатки', 0, 0, 2, 0, 0, 0, 1),
            ('gm-grill', 'Соус до шашлику', 1, 1, 1, 1, 1, 1, 0);
         INSERT INTO group_modifier_children (group_id, modifier_id, position, required, min_amount, max_amount, default_amount) VALUES
            ('gm-sauce', 'mod-12', 1, 0, 0, 2, 0),
            ('gm-sauce', 'mod-13', 2, 0, 0, 2, 0),
            ('gm-sauce', 'mod-14', 3, 0, 0, 1, 0),
            ('gm-grill', 'mod-31', 1, 0, 0, 1, 1),
            ('gm-grill', 'mod-32', 2, 0, 0, 1, 0);
         INSERT INTO menu_item_group_modifiers (item_id, group_id, position) VALUES
            ('m-205', 'gm-sauce', 1),
            ('m-206', 'gm-sauce', 1),
            ('m-410', 'gm-sauce', 1),
            ('m-905', 'gm-grill', 1);
         INSERT INTO menu_item_modifiers (item_id, modifier_id, position, required, min_amount, max_amount, default_amount) VALUES
            ('m-101', 'mod-12', 1, 0, 0, 1, 1);
         INSERT INTO stop_list (item_id, remaining_milli) VALUES
            ('m-512', 0),
            ('m-330', 3000),
            ('mod-14', 0);",
    )?;
    Ok(())
}
