//! Cost of one ORDERS_CACHE tick (change detection + body build + signature) on a mirror with
//! 300 open orders of realistic size (20–60 lines each, about a third of them modifiers).
//!
//! ```text
//! cargo run --release --example cache_cost [-- <orders> <ticks>]
//! ```
//!
//! Prints CPU time per tick (this thread, `getrusage(RUSAGE_THREAD)`: user + system), wall time
//! per tick, and bytes per push, for: no change, 10 orders changed per tick, and every order
//! changed (the first push after start), with the default 1 MiB body cap and without a cap.
//! The HTTP POST is not included (it is the network's cost, not the agent's).

#[path = "common/cpu.rs"]
mod cpu;

use cpu::thread_cpu;
use std::time::{Duration, Instant};

use expirenza_agent::cache::tracker::{self, Acked};
use expirenza_agent::cache::{prepare, Bounds};
use expirenza_agent::mirror::{self, Mirror};
use expirenza_agent::secret::Secret;
use expirenza_agent::sign::SignedBody;
use rusqlite::{params, Connection};

/// A small deterministic generator (no rand dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

const DISHES: &[&str] = &[
    "Борщ український з пампушками",
    "Вареники з картоплею та грибами",
    "Деруни зі сметаною",
    "Котлета по-київськи з пюре",
    "Салат Олів'є",
    "Узвар 0,5 л",
    "Шашлик зі свинини (ваговий)",
    "Млинці з сиром та родзинками",
    "Капучино",
    "Лимонад імбирний 0,4 л",
];
const MODIFIERS: &[&str] = &[
    "Сметана",
    "Аджика",
    "Без цибулі",
    "Подвійна порція",
    "Лимон",
];

fn build(path: &std::path::Path, orders: usize) -> Connection {
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    let mut conn = mirror::create_schema(path).expect("schema");
    let tx = conn.transaction().expect("tx");
    let mut rng = Lcg(42);
    for t in 1..=60 {
        tx.execute(
            "INSERT INTO tables (id, number, name) VALUES (?1, ?2, 'Стіл')",
            params![format!("table-{t}"), t],
        )
        .unwrap();
    }
    for o in 0..orders {
        let bill = format!("bill-{o:05}-6f1d2c7e-4b1a-4e0b-9b55");
        tx.execute(
            "INSERT INTO orders (bill_id, order_number, table_id, state, created, waiter_id, waiter_name)
             VALUES (?1, ?2, ?3, ?4, ?5, 'u-017', 'Оксана Мельник')",
            params![
                bill,
                10_000 + o as i64,
                format!("table-{}", 1 + o % 60),
                if o % 3 == 0 { "BILL" } else { "NEW" },
                format!("2024.05.14 {:02}:{:02}:00", 10 + o / 60 % 12, o % 60),
            ],
        )
        .unwrap();
        let lines = rng.range(20, 60) as usize;
        let mut raw = 0i64;
        let mut line = 0;
        let mut parent = String::new();
        while line < lines {
            line += 1;
            let modifier = line > 1 && rng.range(0, 2) == 0;
            let (name, kind, linked) = if modifier {
                (
                    MODIFIERS[rng.range(0, MODIFIERS.len() as u64 - 1) as usize],
                    "modifier",
                    Some(parent.clone()),
                )
            } else {
                parent = format!("p-{line}");
                (
                    DISHES[rng.range(0, DISHES.len() as u64 - 1) as usize],
                    "dish",
                    None,
                )
            };
            let count = rng.range(1, 3) as i64 * 1000;
            let sum = rng.range(500, 45_000) as i64;
            raw += sum;
            let guest = 1 + (line as i64 - 1) / 10;
            tx.execute(
                "INSERT INTO order_positions (bill_id, position_id, line_no, guest_no, guest_name, linked_to, dish_id, name,
                     count_milli, sum_kop, category, category_id, tax_category, tax_category_id, type)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'Кухня', 'cat-kitchen', 'ПДВ 20%', 'tax-a', ?11)",
                params![bill, format!("p-{line}"), line as i64, guest, format!("Гість {guest}"), linked,
                        format!("m-{}", rng.range(100, 999)), name, count, sum, kind],
            )
            .unwrap();
        }
        tx.execute(
            "UPDATE orders SET raw_sum_kop = ?2, total_sum_kop = ?2 WHERE bill_id = ?1",
            params![bill, raw],
        )
        .unwrap();
    }
    // A day's worth of closed bills that the scan must skip.
    for o in 0..orders * 3 {
        tx.execute(
            "INSERT INTO orders (bill_id, order_number, state, created) VALUES (?1, ?2, 'CLOSED', '2024.05.14 09:00:00')",
            params![format!("closed-{o}"), o as i64],
        )
        .unwrap();
        for l in 1..=20 {
            tx.execute(
                "INSERT INTO order_positions (bill_id, position_id, line_no, name, count_milli, sum_kop) VALUES (?1, ?2, ?2, 'Кава', 1000, 4500)",
                params![format!("closed-{o}"), l],
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
    conn
}

struct Figures {
    cpu: Duration,
    wall: Duration,
    bytes: usize,
    full: usize,
    deferred: usize,
    ticks: u32,
}

impl Figures {
    fn print(&self, label: &str) {
        let n = self.ticks.max(1);
        println!(
            "{label:<38} cpu/tick {:>8.2} ms   wall/tick {:>8.2} ms   bytes/push {:>9}   full {:>4}   deferred {:>4}",
            self.cpu.as_secs_f64() * 1000.0 / n as f64,
            self.wall.as_secs_f64() * 1000.0 / n as f64,
            self.bytes / n as usize,
            self.full / n as usize,
            self.deferred / n as usize,
        );
    }
}

/// Run `ticks` ticks; `before` mutates the mirror (untimed); the new state is committed when
/// `commit` (a 2xx), else the acknowledged state stays as it was.
fn run(
    m: &Mirror,
    acked: &mut Acked,
    bounds: Bounds,
    ticks: u32,
    commit: bool,
    mut before: impl FnMut(u32),
) -> Figures {
    let secret = Secret::new("bench-secret");
    let mut f = Figures {
        cpu: Duration::ZERO,
        wall: Duration::ZERO,
        bytes: 0,
        full: 0,
        deferred: 0,
        ticks,
    };
    for t in 0..ticks {
        before(t);
        let (c0, w0) = (thread_cpu(), Instant::now());
        let p = m
            .with(|c| Ok(prepare(c, acked, bounds, "2024-05-14T16:21:10.000000000Z")))
            .expect("mirror")
            .expect("prepare");
        let signed = SignedBody::new(&secret, p.body);
        f.wall += w0.elapsed();
        f.cpu += thread_cpu() - c0;
        f.bytes += signed.len();
        f.full += p.stats.full;
        f.deferred += p.stats.deferred;
        if commit {
            acked.replace(p.commit);
        }
    }
    f
}

fn main() {
    let mut args = std::env::args().skip(1);
    let orders: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let ticks: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let path = std::env::temp_dir().join(format!("cache-cost-{}.sqlite", std::process::id()));
    let t0 = Instant::now();
    let rw = build(&path, orders);
    let lines: i64 = rw
        .query_row(
            "SELECT count(*) FROM order_positions p JOIN orders o USING (bill_id) WHERE o.state IN ('NEW','BILL')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    println!(
        "mirror: {orders} open orders, {lines} open lines ({:.1} per order), {} closed orders with {} lines; built in {:.1}s",
        lines as f64 / orders as f64,
        orders * 3,
        orders * 60,
        t0.elapsed().as_secs_f64()
    );
    let m = Mirror::new(&path, 2_000, 2);
    let capped = Bounds {
        max_tracked: 2_000,
        max_rows: 50_000,
        max_body: 1 << 20,
    };
    let uncapped = Bounds {
        max_body: 64 << 20,
        ..capped
    };
    println!("ticks per scenario: {ticks}");

    // Scan alone (the part that runs every tick whatever changed).
    let (c0, w0) = (thread_cpu(), Instant::now());
    for _ in 0..ticks {
        let s = m.with(|c| tracker::scan(c, 2_000, 50_000)).expect("scan");
        assert_eq!(s.open.len(), orders);
    }
    Figures {
        cpu: thread_cpu() - c0,
        wall: w0.elapsed(),
        bytes: 0,
        full: 0,
        deferred: 0,
        ticks,
    }
    .print("fingerprint scan only");

    // Every order changed: the first push after start (never committed, so every tick is one).
    run(&m, &mut Acked::default(), capped, ticks, false, |_| {})
        .print("all changed, 1 MiB cap (first push)");
    run(&m, &mut Acked::default(), uncapped, ticks, false, |_| {}).print("all changed, no cap");

    // Steady state: acknowledge everything once, then measure.
    let mut acked = Acked::default();
    let p = m
        .with(|c| Ok(prepare(c, &acked, uncapped, "t")))
        .unwrap()
        .unwrap();
    acked.replace(p.commit);
    run(&m, &mut acked, capped, ticks, true, |_| {}).print("no change");

    let ids: Vec<String> = {
        let mut st = rw
            .prepare("SELECT bill_id FROM orders WHERE state IN ('NEW','BILL') ORDER BY bill_id")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    run(&m, &mut acked, capped, ticks, true, |t| {
        for k in 0..10 {
            let i = (t as usize * 10 + k) % ids.len();
            rw.execute(
                "UPDATE order_positions SET count_milli = count_milli + 1000 WHERE bill_id = ?1 AND position_id = 'p-1'",
                params![ids[i]],
            )
            .unwrap();
        }
    })
    .print("10 changed per tick");

    drop(rw);
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
}
