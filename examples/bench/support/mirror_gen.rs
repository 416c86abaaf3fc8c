//! A generated POS mirror of realistic size for the benchmark.
//!
//! Deterministic (a fixed-seed xorshift), so every run measures the same data: `tables` tables
//! in three halls, `open_bills` open bills of `positions.0..=positions.1` lines (about one line
//! in four is a modifier linked to the dish before it, some bills carry a discount, some tables
//! hold two bills), `closed_bills` paid bills of history, and a `menu_items` menu the positions
//! are drawn from.
//!
//! On top of that, `payable` bills for payBill (see [`generate`]): each is paid once (the
//! simulated POS marks it PAYED), so each payBill request needs its own. They sit on tables no
//! `open` bill uses, so getBill's tables and bills are exactly what they would be without them,
//! and they are drawn from their own random sequence, so the `open` bills are byte-identical.

use std::path::Path;

use rusqlite::{params, Connection};

/// How big a mirror to generate.
#[derive(Debug, Clone, Copy)]
pub struct MirrorSize {
    pub tables: usize,
    pub open_bills: usize,
    /// Lines per open bill, inclusive range.
    pub positions: (usize, usize),
    pub closed_bills: usize,
    pub menu_items: usize,
}

impl MirrorSize {
    /// The benchmark's size: a busy evening in a large restaurant.
    pub const REALISTIC: MirrorSize = MirrorSize {
        tables: 300,
        open_bills: 40,
        positions: (20, 60),
        closed_bills: 2_000,
        menu_items: 2_000,
    };
    /// For the harness's own test.
    pub const TINY: MirrorSize = MirrorSize {
        tables: 12,
        open_bills: 4,
        positions: (3, 6),
        closed_bills: 5,
        menu_items: 50,
    };
}

/// An open bill the load generator can ask for (getBill) or pay (payBill).
#[derive(Debug, Clone)]
pub struct OpenBill {
    pub bill_id: String,
    pub table_number: i64,
    pub total_kop: i64,
}

/// What was generated.
#[derive(Debug, Clone)]
pub struct Generated {
    pub open: Vec<OpenBill>,
    /// Open bills reserved for payBill, one per payment (on tables no `open` bill uses).
    pub payable: Vec<OpenBill>,
    /// Positions on the payable bills (not counted in `open_positions`).
    pub payable_positions: usize,
    pub open_positions: usize,
    pub modifiers: usize,
    pub file_bytes: u64,
    /// Whether the menu tables were written.
    pub menu_written: bool,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

const DISHES: &[&str] = &[
    "Борщ український з пампушками",
    "Вареники з картоплею",
    "Деруни зі сметаною",
    "Котлета по-київськи",
    "Голубці",
    "Банош з бринзою",
    "Шашлик зі свинини",
    "Салат Олів'є",
    "Млинці з сиром",
    "Узвар 0,5 л",
    "Лимонад імбирний",
    "Пиво світле 0,5 л",
];
const MODIFIERS: &[&str] = &["Сметана", "Аджика", "Бекон", "Без цибулі", "Подвійний сир"];
const WAITERS: &[(&str, &str)] = &[
    ("u-001", "Оксана Мельник"),
    ("u-002", "Андрій Коваль"),
    ("u-003", "Ірина Бондар"),
    ("u-004", "Тарас Шевчук"),
];

/// Create the schema in a new file at `path` and fill it, with `payable` extra open bills for
/// payBill (each of `size.positions` lines). `path` must not exist.
pub fn generate(path: &Path, size: MirrorSize, payable: usize) -> Result<Generated, String> {
    let mut conn = expirenza_agent::mirror::create_schema(path).map_err(|e| e.to_string())?;
    let open = fill(&mut conn, size).map_err(|e| e.to_string())?;
    let payable = fill_payable(&mut conn, size, &open, payable).map_err(|e| e.to_string())?;
    let menu_written = fill_menu(&mut conn, size).map_err(|e| e.to_string())?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .map_err(|e| e.to_string())?;
    let (open_positions, modifiers): (i64, i64) = conn
        .query_row(
            "SELECT count(*), coalesce(sum(p.type = 'modifier'), 0) FROM order_positions p
             JOIN orders o ON o.bill_id = p.bill_id WHERE o.state IN ('NEW', 'BILL')
             AND o.bill_id NOT LIKE 'pay-%'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| e.to_string())?;
    let payable_positions: i64 = conn
        .query_row(
            "SELECT count(*) FROM order_positions WHERE bill_id LIKE 'pay-%'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    drop(conn);
    let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(Generated {
        open,
        payable,
        payable_positions: payable_positions as usize,
        open_positions: open_positions as usize,
        modifiers: modifiers as usize,
        file_bytes,
        menu_written,
    })
}

fn fill(conn: &mut Connection, size: MirrorSize) -> rusqlite::Result<Vec<OpenBill>> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let tx = conn.transaction()?;
    tx.execute_batch(
        "INSERT INTO halls (id, name) VALUES ('hall-1', 'Головна зала'), ('hall-2', 'Літня тераса'), ('hall-3', 'VIP');",
    )?;
    {
        let mut st =
            tx.prepare("INSERT INTO tables (id, number, name, hall_id) VALUES (?1, ?2, ?3, ?4)")?;
        for n in 1..=size.tables as i64 {
            let hall = ["hall-1", "hall-2", "hall-3"][(n % 3) as usize];
            st.execute(params![format!("table-{n}"), n, format!("Стіл {n}"), hall])?;
        }
    }
    let mut open = Vec::new();
    let mut order_no = 1000i64;
    let total_bills = size.open_bills + size.closed_bills;
    for b in 0..total_bills {
        let is_open = b < size.open_bills;
        order_no += 1;
        let bill_id = format!("bill-{b:06}-{:08x}", rng.next() as u32);
        // Every eighth open bill shares its table with the previous one (separate checks).
        let table = if is_open && b % 8 == 7 {
            open.last().map_or(1, |o: &OpenBill| o.table_number)
        } else {
            (rng.range(1, size.tables)) as i64
        };
        let (lo, hi) = if is_open { size.positions } else { (2, 12) };
        let lines = rng.range(lo, hi);
        let (wid, wname) = WAITERS[b % WAITERS.len()];
        let state = if !is_open {
            "PAYED"
        } else if b % 3 == 0 {
            "BILL"
        } else {
            "NEW"
        };
        // The order row first (positions reference it); its sums are set once they are known.
        tx.execute(
            "INSERT INTO orders (bill_id, order_number, table_id, state, created, waiter_id, waiter_name, split_available)
             VALUES (?1, ?2, ?3, ?4, '2026.11.24 19:05:00', ?5, ?6, ?7)",
            params![bill_id, order_no, format!("table-{table}"), state, wid, wname, lines > 3],
        )?;
        let raw = insert_lines(&tx, &mut rng, &bill_id, lines, size.menu_items)?;
        let discount = if is_open && b % 5 == 0 { raw / 20 } else { 0 };
        if discount > 0 {
            tx.execute(
                "INSERT INTO order_discounts (bill_id, discount_id, name, sum_kop) VALUES (?1, 'disc-5', 'Знижка 5%', ?2)",
                params![bill_id, discount],
            )?;
        }
        let total = raw - discount;
        tx.execute(
            "UPDATE orders SET raw_sum_kop = ?2, total_sum_kop = ?3 WHERE bill_id = ?1",
            params![bill_id, raw, total],
        )?;
        if is_open {
            open.push(OpenBill {
                bill_id,
                table_number: table,
                total_kop: total,
            });
        }
    }
    tx.commit()?;
    Ok(open)
}

/// Insert `lines` positions of bill `bill_id`; returns their sum in kopecks.
fn insert_lines(
    tx: &Connection,
    rng: &mut Rng,
    bill_id: &str,
    lines: usize,
    menu_items: usize,
) -> rusqlite::Result<i64> {
    let mut raw = 0i64;
    let mut line = 0i64;
    let mut last_dish: Option<String> = None;

    let mut st = tx.prepare_cached(
                "INSERT INTO order_positions (bill_id, position_id, line_no, guest_no, guest_name, linked_to, dish_id, name,
                     count_milli, sum_kop, category, category_id, tax_category, tax_category_id, type)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'ПДВ 20%', 'tax-a', ?13)",
            )?;
    while (line as usize) < lines {
        line += 1;
        let guest = 1 + (line - 1) / 8;
        let pid = format!("p-{line}");
        let modifier = last_dish.is_some() && rng.next().is_multiple_of(4);
        let (name, dish_id, count, sum, kind, linked) = if modifier {
            let m = rng.range(0, MODIFIERS.len() - 1);
            (
                MODIFIERS[m].to_string(),
                format!("mod-{m}"),
                1000i64,
                500 + 500 * m as i64,
                "modifier",
                last_dish.clone(),
            )
        } else {
            let item = rng.range(0, menu_items.max(1) - 1);
            let count = if rng.next().is_multiple_of(5) {
                2000
            } else {
                1000
            };
            let price = 4_500 + (item as i64 * 37) % 40_000;
            (
                format!("{} №{item}", DISHES[item % DISHES.len()]),
                format!("m-{item}"),
                count,
                price * count / 1000,
                "dish",
                None,
            )
        };
        raw += sum;
        let cat = if name.contains(" л") {
            "Бар"
        } else {
            "Кухня"
        };
        st.execute(params![
            bill_id,
            pid,
            line,
            guest,
            format!("Гість {guest}"),
            linked,
            dish_id,
            name,
            count,
            sum,
            cat,
            if cat == "Бар" {
                "cat-bar"
            } else {
                "cat-kitchen"
            },
            kind
        ])?;
        if kind == "dish" {
            last_dish = Some(pid);
        }
    }

    Ok(raw)
}

/// `n` open bills for payBill on tables no `open` bill uses (cycling over them), drawn from
/// their own random sequence; every fifth carries a discount, as the other open bills do.
fn fill_payable(
    conn: &mut Connection,
    size: MirrorSize,
    open: &[OpenBill],
    n: usize,
) -> rusqlite::Result<Vec<OpenBill>> {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let used: std::collections::HashSet<i64> = open.iter().map(|o| o.table_number).collect();
    let free: Vec<i64> = (1..=size.tables as i64)
        .filter(|t| !used.contains(t))
        .collect();
    let tx = conn.transaction()?;
    let mut out = Vec::with_capacity(n);
    let first_no: i64 = tx.query_row(
        "SELECT coalesce(max(order_number), 0) + 1 FROM orders",
        [],
        |r| r.get(0),
    )?;
    for i in 0..n {
        let bill_id = format!("pay-{i:06}-{:08x}", rng.next() as u32);
        let table = if free.is_empty() {
            1 + (i % size.tables.max(1)) as i64
        } else {
            free[i % free.len()]
        };
        let lines = rng.range(size.positions.0, size.positions.1);
        let (wid, wname) = WAITERS[i % WAITERS.len()];
        let state = if i % 3 == 0 { "BILL" } else { "NEW" };
        tx.execute(
            "INSERT INTO orders (bill_id, order_number, table_id, state, created, waiter_id, waiter_name, split_available)
             VALUES (?1, ?2, ?3, ?4, '2026.11.24 19:05:00', ?5, ?6, ?7)",
            params![bill_id, first_no + i as i64, format!("table-{table}"), state, wid, wname, lines > 3],
        )?;
        let raw = insert_lines(&tx, &mut rng, &bill_id, lines, size.menu_items)?;
        let discount = if i % 5 == 0 { raw / 20 } else { 0 };
        if discount > 0 {
            tx.execute(
                "INSERT INTO order_discounts (bill_id, discount_id, name, sum_kop) VALUES (?1, 'disc-5', 'Знижка 5%', ?2)",
                params![bill_id, discount],
            )?;
        }
        let total = raw - discount;
        tx.execute(
            "UPDATE orders SET raw_sum_kop = ?2, total_sum_kop = ?3 WHERE bill_id = ?1",
            params![bill_id, raw, total],
        )?;
        out.push(OpenBill {
            bill_id,
            table_number: table,
            total_kop: total,
        });
    }
    tx.commit()?;
    Ok(out)
}

/// The menu (v2 tables from `schema.sql`): staff, categories, groups, `menu_items` dishes
/// (ids `m-0 ..`, the ids the positions above use), the modifiers `mod-0 ..` with every fourth
/// dish offering them, and a short stop list. Not queried by the measured operations, but part
/// of a realistic mirror file (its size and page cache).
fn fill_menu(conn: &mut Connection, size: MirrorSize) -> rusqlite::Result<bool> {
    let tx = conn.transaction()?;
    for (id, name) in WAITERS {
        tx.execute(
            "INSERT INTO staff (id, name, cell_phone, roles) VALUES (?1, ?2, '+380501234567', 'Офіціант')",
            params![id, name],
        )?;
    }
    tx.execute_batch(
        "INSERT INTO categories (id, name, type) VALUES ('cat-kitchen', 'Кухня', 'dish'), ('cat-bar', 'Бар', 'drink');",
    )?;
    for g in 0..10 {
        tx.execute(
            "INSERT INTO menu_groups (id, name, parent_id, menu_index) VALUES (?1, ?2, NULL, ?3)",
            params![format!("grp-{g}"), format!("Група {g}"), g],
        )?;
    }
    for (m, name) in MODIFIERS.iter().enumerate() {
        tx.execute(
            "INSERT INTO modifiers (id, name, price_kop) VALUES (?1, ?2, ?3)",
            params![format!("mod-{m}"), name, 500 + 500 * m as i64],
        )?;
    }
    {
        let mut item = tx.prepare(
            "INSERT INTO menu_items (id, name, description, price_kop, category_id, group_id, unit, tax_category, tax_category_id)
             VALUES (?1, ?2, 'Опис страви', ?3, ?4, ?5, 'порція', 'ПДВ 20%', 'tax-a')",
        )?;
        let mut link = tx.prepare(
            "INSERT INTO menu_item_modifiers (item_id, modifier_id, position) VALUES (?1, ?2, ?3)",
        )?;
        for i in 0..size.menu_items {
            let name = format!("{} №{i}", DISHES[i % DISHES.len()]);
            let cat = if name.contains(" л") {
                "cat-bar"
            } else {
                "cat-kitchen"
            };
            let price = 4_500 + (i as i64 * 37) % 40_000;
            item.execute(params![
                format!("m-{i}"),
                name,
                price,
                cat,
                format!("grp-{}", i % 10)
            ])?;
            if i % 4 == 0 {
                for m in 0..MODIFIERS.len() {
                    link.execute(params![format!("m-{i}"), format!("mod-{m}"), m as i64])?;
                }
            }
        }
    }
    tx.execute_batch(
        "INSERT INTO stop_list (item_id, remaining_milli) VALUES ('m-3', 0), ('m-17', 2000);",
    )?;
    tx.commit()?;
    Ok(true)
}
