//! The mirror's columns as the agent's readers take them (docs/mirror.md): for each table, each
//! column's kind (the storage classes its reader accepts) and whether NULL is accepted.
//!
//! Two users: `expirenza-agent check` scans every row against it (`audit.rs`), and a reader's
//! type error at run time is explained with it ([`explain`]): the table, the column, what was
//! found and the fix, instead of SQLite's bare `Invalid column type Integer at index: 0`.

use rusqlite::types::Type;

/// What a column's reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// TEXT (an id, a name). INTEGER or REAL fails at run time.
    Text,
    /// Anything: the agent casts it to TEXT itself (the ids of the v2 tables).
    AnyText,
    /// TEXT `yyyy.MM.dd HH:mm:ss`.
    Date,
    /// INTEGER.
    Int,
    /// INTEGER 0/1.
    Flag,
    /// INTEGER kopecks.
    Kop,
    /// INTEGER thousandths.
    Milli,
    /// Only sorted on, never read: any storage class.
    SortOnly,
}

impl Kind {
    /// The storage classes (`typeof()`) the reader takes, NULL aside.
    pub fn accepts(self) -> &'static [&'static str] {
        match self {
            Kind::Text | Kind::Date => &["text"],
            Kind::Int | Kind::Flag | Kind::Kop | Kind::Milli => &["integer"],
            Kind::AnyText | Kind::SortOnly => &["text", "integer", "real", "blob"],
        }
    }

    /// What the reader wants, in words.
    pub fn wants(self) -> &'static str {
        match self {
            Kind::Text | Kind::AnyText => "TEXT",
            Kind::Date => "TEXT 'yyyy.MM.dd HH:mm:ss'",
            Kind::Int => "INTEGER",
            Kind::Flag => "INTEGER 0/1",
            Kind::Kop => "INTEGER kopecks",
            Kind::Milli => "INTEGER thousandths",
            Kind::SortOnly => "any value",
        }
    }
}

/// One column of the contract.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    /// NULL is read as a default (or omitted); `false`: a NULL fails at run time.
    pub null: bool,
}

/// One table (or view) of the contract.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    /// An SQL expression naming a row in reports (`bill_id`, `number`).
    pub key: &'static str,
    pub columns: &'static [Column],
}

const fn c(name: &'static str, kind: Kind, null: bool) -> Column {
    Column { name, kind, null }
}

use Kind::*;

/// Every table the agent reads, with every column it reads.
pub const TABLES: &[Table] = &[
    Table {
        name: "halls",
        key: "id",
        columns: &[c("id", Text, false), c("name", Text, false)],
    },
    Table {
        name: "tables",
        key: "id",
        columns: &[
            c("id", Text, false),
            c("number", Int, false),
            c("name", Text, true),
            c("hall_id", Text, true),
        ],
    },
    Table {
        name: "orders",
        key: "bill_id",
        columns: &[
            c("bill_id", Text, false),
            c("order_number", Int, false),
            c("table_id", Text, true),
            c("state", Text, false),
            c("created", Date, true),
            c("waiter_id", Text, true),
            c("waiter_name", Text, true),
            c("raw_sum_kop", Kop, true),
            c("total_sum_kop", Kop, true),
            c("bonus_sum_kop", Kop, true),
            c("is_banquet", Flag, true),
            c("is_delivery", Flag, true),
            c("split_available", Flag, true),
            c("root_bill_id", Text, true),
            c("payment_type", Text, true),
            c("pricing_time", Text, true),
        ],
    },
    Table {
        name: "order_positions",
        key: "bill_id || ' / ' || position_id",
        columns: &[
            c("bill_id", Text, false),
            c("position_id", Text, false),
            c("line_no", SortOnly, true),
            c("guest_no", Int, true),
            c("guest_name", Text, true),
            c("linked_to", Text, true),
            c("dish_id", Text, true),
            c("name", Text, false),
            c("count_milli", Milli, false),
            c("sum_kop", Kop, false),
            c("category", Text, true),
            c("category_id", Text, true),
            c("tax_category", Text, true),
            c("tax_category_id", Text, true),
            c("type", Text, true),
            c("check_number", Text, true),
        ],
    },
    Table {
        name: "order_discounts",
        key: "bill_id || ' / ' || discount_id",
        columns: &[
            c("bill_id", Text, false),
            c("discount_id", Text, false),
            c("name", Text, false),
            c("sum_kop", Kop, false),
        ],
    },
    Table {
        name: "staff",
        key: "id",
        columns: &[
            c("id", AnyText, false),
            c("name", Text, true),
            c("cell_phone", AnyText, true),
            c("roles", Text, true),
        ],
    },
    Table {
        name: "categories",
        key: "id",
        columns: &[
            c("id", AnyText, false),
            c("name", Text, true),
            c("type", Text, true),
        ],
    },
    Table {
        name: "menu_groups",
        key: "id",
        columns: &[
            c("id", AnyText, true),
            c("name", Text, true),
            c("parent_id", AnyText, true),
            c("menu_index", Int, true),
        ],
    },
    Table {
        name: "menu_items",
        key: "id",
        columns: &[
            c("id", AnyText, true),
            c("name", Text, true),
            c("description", Text, true),
            c("price_kop", Kop, true),
            c("category_id", AnyText, true),
            c("group_id", AnyText, true),
            c("is_active", Flag, true),
            c("type", Text, true),
            c("unit", Text, true),
            c("vendor_code", AnyText, true),
            c("tax_category", Text, true),
            c("tax_category_id", AnyText, true),
            c("scale_id", AnyText, true),
            c("scale_name", Text, true),
            c("scale_size_id", AnyText, true),
            c("scale_size_name", Text, true),
            c("scale_size_kitchen_name", Text, true),
            c("scale_size_menu_index", Int, true),
        ],
    },
    Table {
        name: "modifiers",
        key: "id",
        columns: &[
            c("id", AnyText, true),
            c("name", Text, true),
            c("description", Text, true),
            c("price_kop", Kop, true),
            c("category_id", AnyText, true),
            c("group_id", AnyText, true),
            c("is_active", Flag, true),
            c("type", Text, true),
            c("unit", Text, true),
            c("vendor_code", AnyText, true),
            c("tax_category", Text, true),
            c("tax_category_id", AnyText, true),
        ],
    },
    Table {
        name: "group_modifiers",
        key: "id",
        columns: &[
            c("id", AnyText, true),
            c("name", Text, true),
            c("required", Flag, true),
            c("min_amount", Int, true),
            c("max_amount", Int, true),
            c("default_amount", Int, true),
            c("free", Flag, true),
            c("free_amount", Int, true),
            c("child_min_max", Flag, true),
        ],
    },
    Table {
        name: "group_modifier_children",
        key: "group_id || ' / ' || modifier_id",
        columns: &[
            c("group_id", AnyText, true),
            c("modifier_id", AnyText, true),
            c("position", SortOnly, true),
            c("required", Flag, true),
            c("min_amount", Int, true),
            c("max_amount", Int, true),
            c("default_amount", Int, true),
        ],
    },
    Table {
        name: "menu_item_group_modifiers",
        key: "item_id || ' / ' || group_id",
        columns: &[
            c("item_id", AnyText, true),
            c("group_id", AnyText, true),
            c("position", SortOnly, true),
        ],
    },
    Table {
        name: "menu_item_modifiers",
        key: "item_id || ' / ' || modifier_id",
        columns: &[
            c("item_id", AnyText, true),
            c("modifier_id", AnyText, true),
            c("position", SortOnly, true),
            c("required", Flag, true),
            c("min_amount", Int, true),
            c("max_amount", Int, true),
            c("default_amount", Int, true),
        ],
    },
    Table {
        name: "stop_list",
        key: "item_id",
        columns: &[
            c("item_id", AnyText, true),
            c("remaining_milli", Milli, true),
        ],
    },
    Table {
        name: "terminal_groups",
        key: "id",
        columns: &[
            c("id", AnyText, true),
            c("name", Text, true),
            c("is_host", Flag, true),
        ],
    },
];

/// The contract's column `column` of `table` (names compared without case, as SQLite does).
pub fn column(table: &str, column: &str) -> Option<&'static Column> {
    TABLES
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(table))?
        .columns
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(column))
}

/// The SQL storage class as `typeof()` spells it.
pub fn type_name(t: Type) -> &'static str {
    match t {
        Type::Null => "null",
        Type::Integer => "integer",
        Type::Real => "real",
        Type::Text => "text",
        Type::Blob => "blob",
    }
}

/// The fix for a `kind` column of name `col` that holds values of storage class `found`
/// (`typeof()` spelling: `integer`, `real`, `text`, `blob`, `null`): the expression to write
/// in the view (or the sync job) instead.
pub fn fix(kind: Kind, col: &str, found: &str) -> String {
    match (kind, found) {
        (_, "null") => match kind {
            Text | Date | AnyText => format!("COALESCE({col}, '') (or leave such rows out)"),
            _ => format!("COALESCE({col}, 0) (or leave such rows out)"),
        },
        (Date, "integer" | "real") => format!(
            "strftime('%Y.%m.%d %H:%M:%S', {col}, 'unixepoch', 'localtime') for Unix seconds"
        ),
        (Text | AnyText | Date, _) => format!("CAST({col} AS TEXT)"),
        (Kop, "real") => format!("CAST(ROUND({col} * 100) AS INTEGER) for hryvnia"),
        (Kop, _) => format!("CAST(ROUND(CAST({col} AS REAL) * 100) AS INTEGER) for hryvnia text"),
        (Milli, "real") => format!("CAST(ROUND({col} * 1000) AS INTEGER) for units"),
        (Milli, _) => format!("CAST(ROUND(CAST({col} AS REAL) * 1000) AS INTEGER) for units"),
        (Int | Flag | SortOnly, "real") => format!("CAST(ROUND({col}) AS INTEGER)"),
        (Int | Flag | SortOnly, _) => format!("CAST({col} AS INTEGER)"),
    }
}

/// Why a value of storage class `found` in `table.column` cannot be read, and the fix, for a
/// reader's type error at run time. `None` for a column the contract does not name.
pub fn explain(table: &str, column_name: &str, found: Type) -> Option<String> {
    let col = column(table, column_name)?;
    let found = type_name(found);
    let what = if found == "null" {
        "NULL, which the agent cannot read there".to_string()
    } else {
        format!(
            "{} where the agent reads {}",
            found.to_uppercase(),
            col.kind.wants()
        )
    };
    Some(format!(
        "{table}.{} holds {what}: write {} in the view or the sync job (docs/mirror.md)",
        col.name,
        fix(col.kind, col.name, found)
    ))
}

/// The mirror table a query reads `column` from: the one contract table named after a `FROM`
/// or `JOIN` in `sql`, when it has that column. `None` when the query names no contract table
/// or several: a query that joins tables names the table of each column it reads in the
/// column's alias (`c.name AS "categories.name"`), since the bare name could be either's.
pub fn table_of(sql: &str, column: &str) -> Option<&'static str> {
    let lower = sql.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut named = words
        .windows(2)
        .filter(|w| w[0] == "from" || w[0] == "join")
        .filter_map(|w| TABLES.iter().find(|x| x.name == w[1]));
    let table = named.next()?;
    if named.any(|t| t.name != table.name) {
        return None;
    }
    table
        .columns
        .iter()
        .any(|c| c.name.eq_ignore_ascii_case(column))
        .then_some(table.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_the_operations_read_has_a_kind() {
        let needs: &[crate::mirror::check::Needs] = &[
            crate::mirror::orders::NEEDS,
            &[("halls", &["id", "name"])],
            &[("staff", &["id", "name", "cell_phone", "roles"])],
            &[("stop_list", &["item_id", "remaining_milli"])],
        ];
        for list in needs {
            for (t, cols) in list.iter() {
                for col in cols.iter() {
                    assert!(column(t, col).is_some(), "{t}.{col}");
                }
            }
        }
    }

    #[test]
    fn a_type_error_is_explained_with_its_table_column_and_fix() {
        let sql = "SELECT id, number, name, hall_id FROM tables ORDER BY number";
        assert_eq!(table_of(sql, "id"), Some("tables"));
        assert_eq!(
            explain("tables", "id", Type::Integer).unwrap(),
            "tables.id holds INTEGER where the agent reads TEXT: write CAST(id AS TEXT) in \
             the view or the sync job (docs/mirror.md)"
        );
        let e = explain("orders", "total_sum_kop", Type::Real).unwrap();
        assert!(
            e.contains("REAL where the agent reads INTEGER kopecks")
                && e.contains("CAST(ROUND(total_sum_kop * 100) AS INTEGER)"),
            "{e}"
        );
        // A join: `bill_id` could be either table's, so the query must say (by an alias).
        let joined = "SELECT p.bill_id, p.count_milli FROM orders o CROSS JOIN order_positions p";
        assert_eq!(table_of(joined, "bill_id"), None);
        assert_eq!(table_of(joined, "count_milli"), None);
        assert_eq!(table_of("SELECT 1", "id"), None);
        assert!(explain("nowhere", "id", Type::Integer).is_none());
    }
}
