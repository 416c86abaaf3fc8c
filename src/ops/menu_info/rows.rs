//! menuInfo's row readers: the row budget, column helpers, the modifier/group-modifier rows and
//! the look-ahead cursor that merges them into their dish (see `mod.rs`).

use rusqlite::{Row, Rows};

use crate::json::JsonBuf;
use crate::mirror::MirrorError;

pub(super) use crate::mirror::rows::Budget;

/// A text column, borrowed; NULL and the empty string are both `None`.
pub(super) fn text<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
    Ok(crate::mirror::rows::text_or_null(r, i)?.filter(|s| !s.is_empty()))
}
pub(super) fn int(r: &Row<'_>, i: usize, default: i64) -> rusqlite::Result<i64> {
    Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(default))
}
pub(super) fn flag(r: &Row<'_>, i: usize, default: bool) -> rusqlite::Result<bool> {
    Ok(r.get::<_, Option<i64>>(i)?.map_or(default, |v| v != 0))
}

/// `required`, `minAmount`, `maxAmount`, `defaultAmount` of a modifier offered with something.
#[derive(Debug, Clone, Copy)]
pub(super) struct Amounts {
    pub(super) required: bool,
    pub(super) min: i64,
    pub(super) max: i64,
    pub(super) default: i64,
}

impl Amounts {
    pub(super) fn read(r: &Row<'_>, at: usize) -> rusqlite::Result<Amounts> {
        Ok(Amounts {
            required: flag(r, at, false)?,
            min: int(r, at + 1, 0)?,
            max: int(r, at + 2, 1)?,
            default: int(r, at + 3, 0)?,
        })
    }
    pub(super) fn write(&self, j: &mut JsonBuf, id: &str) {
        j.begin_obj()
            .f_str("id", id)
            .f_int("defaultAmount", self.default)
            .f_int("minAmount", self.min)
            .f_int("maxAmount", self.max)
            .f_bool("required", self.required)
            .end_obj();
    }
}

/// One row of a dish-modifier link: `(item key, modifier id, amounts, the modifier's group)`.
pub(super) struct ModRow {
    pub(super) key: String,
    pub(super) id: String,
    pub(super) amounts: Amounts,
    pub(super) group_id: Option<String>,
}

pub(super) fn read_mod(r: &Row<'_>) -> rusqlite::Result<ModRow> {
    Ok(ModRow {
        key: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
        id: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
        amounts: Amounts::read(r, 2)?,
        group_id: r.get::<_, Option<String>>(6)?.filter(|g| !g.is_empty()),
    })
}

impl ModRow {
    /// A dish's own modifier: the amounts, plus `groupId` (the modifier's group, when it has
    /// one) and `quantity` (= `defaultAmount`), as in the Go SDK's dish modifier [code].
    pub(super) fn write(&self, j: &mut JsonBuf) {
        j.begin_obj()
            .f_str("id", &self.id)
            .f_opt_str("groupId", self.group_id.as_deref())
            .f_int("quantity", self.amounts.default)
            .f_int("defaultAmount", self.amounts.default)
            .f_int("minAmount", self.amounts.min)
            .f_int("maxAmount", self.amounts.max)
            .f_bool("required", self.amounts.required)
            .end_obj();
    }
}

/// One row of (owner key, group modifier, optional child modifier).
pub(super) struct GroupRow {
    pub(super) key: String,
    pub(super) id: String,
    pub(super) name: String,
    pub(super) amounts: Amounts,
    pub(super) free: bool,
    pub(super) free_amount: i64,
    pub(super) child_min_max: bool,
    pub(super) child: Option<(String, Amounts)>,
}

pub(super) fn read_group(r: &Row<'_>) -> rusqlite::Result<GroupRow> {
    let child_id: Option<String> = r.get(10)?;
    Ok(GroupRow {
        key: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
        id: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
        name: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        amounts: Amounts::read(r, 3)?,
        free: flag(r, 7, false)?,
        free_amount: int(r, 8, 0)?,
        child_min_max: flag(r, 9, false)?,
        child: match child_id {
            Some(id) => Some((id, Amounts::read(r, 11)?)),
            None => None,
        },
    })
}

/// A cursor with one row of look-ahead, for merging child rows into their parent.
pub(super) struct Cursor<'s, T> {
    pub(super) rows: Rows<'s>,
    pub(super) read: fn(&Row<'_>) -> rusqlite::Result<T>,
    pub(super) pending: Option<T>,
}

impl<'s, T> Cursor<'s, T> {
    pub(super) fn new(
        rows: Rows<'s>,
        read: fn(&Row<'_>) -> rusqlite::Result<T>,
        budget: &mut Budget,
    ) -> Result<Self, MirrorError> {
        let mut c = Cursor {
            rows,
            read,
            pending: None,
        };
        c.advance(budget)?;
        Ok(c)
    }
    pub(super) fn advance(&mut self, budget: &mut Budget) -> Result<(), MirrorError> {
        self.pending = match self.rows.next()? {
            Some(r) => {
                budget.take()?;
                Some((self.read)(r)?)
            }
            None => None,
        };
        Ok(())
    }
}

pub(super) trait Keyed {
    fn key(&self) -> &str;
}
impl Keyed for ModRow {
    fn key(&self) -> &str {
        &self.key
    }
}
impl Keyed for GroupRow {
    fn key(&self) -> &str {
        &self.key
    }
}

impl<T: Keyed> Cursor<'_, T> {
    /// Skip rows whose key sorts before `key` (links to items that do not exist); then whether
    /// the next row belongs to `key`.
    pub(super) fn seek(&mut self, key: &str, budget: &mut Budget) -> Result<bool, MirrorError> {
        loop {
            match &self.pending {
                Some(p) if p.key() < key => self.advance(budget)?,
                Some(p) => return Ok(p.key() == key),
                None => return Ok(false),
            }
        }
    }
    pub(super) fn at(&self, key: &str) -> bool {
        self.pending.as_ref().is_some_and(|p| p.key() == key)
    }
}
