//! menuInfo's body: every section written from its SQL cursor straight into the capped
//! [`JsonBuf`] (see `mod.rs` for the shape). Used by both passes of `stream.rs`.

use rusqlite::{Connection, Row};

use super::rows::{flag, int, read_group, read_mod, text, Budget, Cursor, GroupRow};
use crate::json::JsonBuf;
use crate::mirror::MirrorError;
use crate::money::Kopecks;

const ITEM_COLS: &[&str] = &[
    "id",
    "name",
    "description",
    "price_kop",
    "category_id",
    "group_id",
    "is_active",
    "type",
    "unit",
    "vendor_code",
    "tax_category",
    "tax_category_id",
];

pub const NEEDS: &[(&str, &[&str])] = &[
    ("menu_groups", &["id", "name", "parent_id", "menu_index"]),
    ("categories", &["id", "name"]),
    (
        "menu_items",
        &[
            "id",
            "name",
            "description",
            "price_kop",
            "category_id",
            "group_id",
            "is_active",
            "type",
            "unit",
            "vendor_code",
            "tax_category",
            "tax_category_id",
            "scale_id",
            "scale_name",
            "scale_size_id",
            "scale_size_name",
            "scale_size_kitchen_name",
            "scale_size_menu_index",
        ],
    ),
    ("modifiers", ITEM_COLS),
    (
        "group_modifiers",
        &[
            "id",
            "name",
            "required",
            "min_amount",
            "max_amount",
            "default_amount",
            "free",
            "free_amount",
            "child_min_max",
        ],
    ),
    (
        "group_modifier_children",
        &[
            "group_id",
            "modifier_id",
            "position",
            "required",
            "min_amount",
            "max_amount",
            "default_amount",
        ],
    ),
    (
        "menu_item_group_modifiers",
        &["item_id", "group_id", "position"],
    ),
    (
        "menu_item_modifiers",
        &[
            "item_id",
            "modifier_id",
            "position",
            "required",
            "min_amount",
            "max_amount",
            "default_amount",
        ],
    ),
    ("terminal_groups", &["id", "name", "is_host"]),
];

// Every column read as the mirror stores it is named `"table.column"` after the table it comes
// from: a query joins several tables and SQLite reports a column by its bare name, so the name
// is what lets a wrong storage class be reported on the right table with its fix
// (`MirrorError::from`). Columns cast to TEXT here cannot fail and keep their plain names.

/// Columns 0..=12 of both the dish and the modifier query (see [`write_item_fields`]): of
/// `table` (as `i`) and `categories` (as `c`).
fn item_select(table: &str) -> String {
    let t = table;
    format!(
        "CAST(i.id AS TEXT) AS k, i.name AS \"{t}.name\", i.description AS \"{t}.description\", \
         i.price_kop AS \"{t}.price_kop\", c.name AS \"categories.name\", \
         CAST(i.category_id AS TEXT), CAST(i.group_id AS TEXT), i.is_active AS \"{t}.is_active\", \
         i.type AS \"{t}.type\", i.unit AS \"{t}.unit\", CAST(i.vendor_code AS TEXT), \
         i.tax_category AS \"{t}.tax_category\", CAST(i.tax_category_id AS TEXT)"
    )
}

/// Columns 1..=14 of the group modifier queries (see [`read_group`]): of `group_modifiers`
/// (as `g`) and `group_modifier_children` (as `ch`).
const GROUP_COLS: &str = "CAST(g.id AS TEXT), g.name AS \"group_modifiers.name\", \
    g.required AS \"group_modifiers.required\", g.min_amount AS \"group_modifiers.min_amount\", \
    g.max_amount AS \"group_modifiers.max_amount\", \
    g.default_amount AS \"group_modifiers.default_amount\", g.free AS \"group_modifiers.free\", \
    g.free_amount AS \"group_modifiers.free_amount\", \
    g.child_min_max AS \"group_modifiers.child_min_max\", CAST(ch.modifier_id AS TEXT), \
    ch.required AS \"group_modifier_children.required\", \
    ch.min_amount AS \"group_modifier_children.min_amount\", \
    ch.max_amount AS \"group_modifier_children.max_amount\", \
    ch.default_amount AS \"group_modifier_children.default_amount\"";

/// Writes the group modifiers of `key` (the cursor must be at `key`) as array elements.
fn write_groups(
    j: &mut JsonBuf,
    cur: &mut Cursor<'_, GroupRow>,
    key: &str,
    with_name: bool,
    budget: &mut Budget,
) -> Result<(), MirrorError> {
    while let Some(g) = cur.pending.as_ref().filter(|p| p.key == key) {
        let gid = g.id.clone();
        j.begin_obj().f_str("id", &gid);
        if with_name {
            j.f_str("name", &g.name);
        }
        j.f_bool("required", g.amounts.required)
            .f_int("minAmount", g.amounts.min)
            .f_int("maxAmount", g.amounts.max)
            .f_int("defaultAmount", g.amounts.default)
            .f_bool("free", g.free)
            .f_int("freeAmount", g.free_amount)
            .f_bool("childModifiersHaveMinMaxRestrictions", g.child_min_max)
            .key("childModifiers")
            .begin_arr();
        while let Some(row) = cur.pending.as_ref().filter(|p| p.key == key && p.id == gid) {
            if let Some((id, a)) = &row.child {
                a.write(j, id);
            }
            cur.advance(budget)?;
        }
        j.end_arr().end_obj();
    }
    Ok(())
}

/// The fields dishes and modifiers share, from columns 0..=12 of [`item_select`].
fn write_item_fields(j: &mut JsonBuf, r: &Row<'_>, default_type: &str) -> rusqlite::Result<()> {
    j.f_str("id", text(r, 0)?.unwrap_or(""))
        .f_str("name", text(r, 1)?.unwrap_or(""))
        .f_opt_str("description", text(r, 2)?)
        .f_money("price", Kopecks(int(r, 3, 0)?))
        .f_opt_str("category", text(r, 4)?)
        .f_opt_str("categoryId", text(r, 5)?)
        .f_opt_str("groupId", text(r, 6)?)
        .f_bool("isActive", flag(r, 7, true)?)
        .f_str("type", text(r, 8)?.unwrap_or(default_type))
        .f_opt_str("unit", text(r, 9)?)
        .f_opt_str("vendorCode", text(r, 10)?)
        .f_opt_str("taxCategory", text(r, 11)?)
        .f_opt_str("taxCategoryId", text(r, 12)?);
    Ok(())
}

fn write_groups_section(
    c: &Connection,
    j: &mut JsonBuf,
    b: &mut Budget,
) -> Result<usize, MirrorError> {
    let mut st = c.prepare_cached(
        "SELECT CAST(id AS TEXT), name AS \"menu_groups.name\", CAST(parent_id AS TEXT), \
         menu_index AS \"menu_groups.menu_index\" FROM menu_groups ORDER BY menu_index, name, 1",
    )?;
    let mut rows = st.query([])?;
    let mut n = 0;
    j.key("groups").begin_arr();
    while let Some(r) = rows.next()? {
        b.take()?;
        n += 1;
        j.begin_obj()
            .f_str("id", text(r, 0)?.unwrap_or(""))
            .f_int("menuIndex", int(r, 3, 0)?)
            .f_str("name", text(r, 1)?.unwrap_or(""))
            .f_str_or_null("parentId", text(r, 2)?)
            .end_obj();
        if j.overflowed() {
            break;
        }
    }
    j.end_arr();
    Ok(n)
}

/// Whether the mirror has `table` (and `column` in it, when given): for optional data.
fn has(c: &Connection, table: &str, column: Option<&str>) -> Result<bool, MirrorError> {
    let mut st = c.prepare_cached("SELECT name FROM pragma_table_info(?1)")?;
    let mut rows = st.query([table])?;
    while let Some(r) = rows.next()? {
        let name: String = r.get(0)?;
        if column.is_none_or(|col| name == col) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Separates `menuSections` entries in the SQL aggregate (ASCII unit separator).
const SECTION_SEP: char = '\u{1f}';

fn write_dishes_section(
    c: &Connection,
    j: &mut JsonBuf,
    b: &mut Budget,
) -> Result<usize, MirrorError> {
    let scheme = if has(c, "menu_items", Some("modifier_scheme_id"))? {
        "CAST(i.modifier_scheme_id AS TEXT)"
    } else {
        "NULL"
    };
    let sections = if has(c, "menu_item_sections", None)? {
        "(SELECT group_concat(s.section, char(31) ORDER BY s.position, s.section) \
          FROM menu_item_sections s WHERE s.item_id = i.id)"
    } else {
        "NULL"
    };
    let mut dishes = c.prepare_cached(&format!(
        "SELECT {}, CAST(i.scale_id AS TEXT), i.scale_name AS \"menu_items.scale_name\", \
         CAST(i.scale_size_id AS TEXT), i.scale_size_name AS \"menu_items.scale_size_name\", \
         i.scale_size_kitchen_name AS \"menu_items.scale_size_kitchen_name\", \
         i.scale_size_menu_index AS \"menu_items.scale_size_menu_index\", {scheme}, {sections} \
         FROM menu_items i LEFT JOIN categories c ON c.id = i.category_id ORDER BY k COLLATE BINARY",
        item_select("menu_items")
    ))?;
    let mut mods = c.prepare_cached(
        "SELECT CAST(l.item_id AS TEXT) AS k, CAST(l.modifier_id AS TEXT), \
         l.required AS \"menu_item_modifiers.required\", \
         l.min_amount AS \"menu_item_modifiers.min_amount\", \
         l.max_amount AS \"menu_item_modifiers.max_amount\", \
         l.default_amount AS \"menu_item_modifiers.default_amount\", CAST(m.group_id AS TEXT) \
         FROM menu_item_modifiers l LEFT JOIN modifiers m ON m.id = l.modifier_id \
         ORDER BY k COLLATE BINARY, l.position, 2",
    )?;
    let mut groups = c.prepare_cached(&format!(
        "SELECT CAST(l.item_id AS TEXT) AS k, {GROUP_COLS} FROM menu_item_group_modifiers l \
         JOIN group_modifiers g ON g.id = l.group_id \
         LEFT JOIN group_modifier_children ch ON ch.group_id = g.id \
         ORDER BY k COLLATE BINARY, l.position, 2, ch.position, 11"
    ))?;
    let mut mods = Cursor::new(mods.query([])?, read_mod, b)?;
    let mut groups = Cursor::new(groups.query([])?, read_group, b)?;
    let mut rows = dishes.query([])?;
    let mut n = 0;
    j.key("dishes").begin_arr();
    while let Some(r) = rows.next()? {
        b.take()?;
        n += 1;
        let key = text(r, 0)?.unwrap_or("");
        j.begin_obj();
        write_item_fields(j, r, "dish")?;
        if let Some(scale_id) = text(r, 13)? {
            j.key("scale")
                .begin_obj()
                .f_str("id", scale_id)
                .f_opt_str("name", text(r, 14)?);
            if let Some(size_id) = text(r, 15)? {
                j.key("defaultSize")
                    .begin_obj()
                    .f_str("id", size_id)
                    .f_opt_str("kitchenName", text(r, 17)?)
                    .f_int("menuIndex", int(r, 18, 0)?)
                    .f_opt_str("name", text(r, 16)?)
                    .end_obj();
            }
            j.end_obj();
        }
        if let Some(sections) = text(r, 20)? {
            j.key("menuSections").begin_arr();
            for s in sections.split(SECTION_SEP) {
                j.str(s);
            }
            j.end_arr();
        }
        j.f_opt_str("modifierSchemeId", text(r, 19)?);
        if mods.seek(key, b)? {
            j.key("modifiers").begin_arr();
            while mods.at(key) {
                if let Some(m) = &mods.pending {
                    m.write(j);
                }
                mods.advance(b)?;
            }
            j.end_arr();
        }
        if groups.seek(key, b)? {
            j.key("groupModifiers").begin_arr();
            write_groups(j, &mut groups, key, false, b)?;
            j.end_arr();
        }
        j.end_obj();
        if j.overflowed() {
            break;
        }
    }
    j.end_arr();
    Ok(n)
}

fn write_modifiers_section(
    c: &Connection,
    j: &mut JsonBuf,
    b: &mut Budget,
) -> Result<usize, MirrorError> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {} FROM modifiers i LEFT JOIN categories c ON c.id = i.category_id \
         ORDER BY k COLLATE BINARY",
        item_select("modifiers")
    ))?;
    let mut rows = st.query([])?;
    let mut n = 0;
    j.key("modifiers").begin_arr();
    while let Some(r) = rows.next()? {
        b.take()?;
        n += 1;
        j.begin_obj();
        write_item_fields(j, r, "modifier")?;
        j.end_obj();
        if j.overflowed() {
            break;
        }
    }
    j.end_arr();
    Ok(n)
}

fn write_group_modifiers_section(
    c: &Connection,
    j: &mut JsonBuf,
    b: &mut Budget,
) -> Result<(), MirrorError> {
    let mut st = c.prepare_cached(&format!(
        "SELECT '' AS k, {GROUP_COLS} FROM group_modifiers g \
         LEFT JOIN group_modifier_children ch ON ch.group_id = g.id ORDER BY 2 COLLATE BINARY, ch.position, 11"
    ))?;
    let mut cur = Cursor::new(st.query([])?, read_group, b)?;
    j.key("groupModifiers").begin_arr();
    write_groups(j, &mut cur, "", true, b)?;
    j.end_arr();
    Ok(())
}

fn write_terminals_section(
    c: &Connection,
    j: &mut JsonBuf,
    b: &mut Budget,
) -> Result<(), MirrorError> {
    let mut st = c.prepare_cached(
        "SELECT CAST(id AS TEXT), name AS \"terminal_groups.name\", \
         is_host AS \"terminal_groups.is_host\" FROM terminal_groups ORDER BY is_host DESC, 1",
    )?;
    let mut rows = st.query([])?;
    let mut host: Option<(String, String)> = None;
    j.key("terminalsGroups").begin_arr();
    while let Some(r) = rows.next()? {
        b.take()?;
        let id = text(r, 0)?.unwrap_or("");
        let name = text(r, 1)?.unwrap_or("");
        if host.is_none() && flag(r, 2, false)? {
            host = Some((id.to_string(), name.to_string()));
        }
        j.begin_obj().f_str("id", id).f_str("name", name).end_obj();
    }
    j.end_arr();
    if let Some((id, name)) = host {
        j.key("hostTerminalsGroup")
            .begin_obj()
            .f_str("id", &id)
            .f_str("name", &name)
            .end_obj();
    }
    Ok(())
}

/// Groups, dishes and modifiers written (for the log line).
pub type Counts = (usize, usize, usize);

/// The whole menuInfo body into `j`, reading at most `max_rows` rows; stops early once `j`
/// overflowed (or its sink closed).
pub fn write_menu(
    c: &Connection,
    j: &mut JsonBuf,
    rid: &str,
    max_rows: usize,
) -> Result<Counts, MirrorError> {
    let mut b = Budget::new(max_rows);
    j.begin_obj().f_str("rID", rid);
    let groups = write_groups_section(c, j, &mut b)?;
    let mut dishes = 0;
    let mut modifiers = 0;
    if !j.overflowed() {
        dishes = write_dishes_section(c, j, &mut b)?;
    }
    if !j.overflowed() {
        modifiers = write_modifiers_section(c, j, &mut b)?;
    }
    if !j.overflowed() {
        write_group_modifiers_section(c, j, &mut b)?;
    }
    if !j.overflowed() {
        write_terminals_section(c, j, &mut b)?;
    }
    j.end_obj();
    Ok((groups, dishes, modifiers))
}
