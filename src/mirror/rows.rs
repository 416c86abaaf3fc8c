//! Reading columns without copying them, and the row budget of one answer.
//!
//! A [`rusqlite::Row`]'s text can be borrowed for as long as the row is current. menuInfo, which
//! writes JSON straight from its rows, reads text this way instead of `Row::get::<String>`, which
//! allocates a `String` per column. (getBill's lines are read through `raw.rs`.)

use rusqlite::types::FromSqlError;
use rusqlite::Row;

use super::MirrorError;

/// Rows read so far for one answer, against `[limits] max_rows`.
#[derive(Debug)]
pub struct Budget {
    left: usize,
    max: usize,
}

impl Budget {
    pub fn new(max_rows: usize) -> Budget {
        Budget {
            left: max_rows,
            max: max_rows,
        }
    }
    /// Count one more row; past the cap, [`MirrorError::TooManyRows`].
    pub fn take(&mut self) -> Result<(), MirrorError> {
        if self.left == 0 {
            return Err(MirrorError::TooManyRows(self.max));
        }
        self.left -= 1;
        Ok(())
    }
}

/// A text column, borrowed: `None` for NULL, an error for any other type or for bytes that
/// are not UTF-8 (the same errors `Row::get::<Option<String>>` gives).
pub fn text_or_null<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
    let v = r.get_ref(i)?;
    v.as_str_or_null().map_err(|e| match e {
        FromSqlError::InvalidType => rusqlite::Error::InvalidColumnType(
            i,
            r.as_ref().column_name(i).unwrap_or("?").to_owned(),
            v.data_type(),
        ),
        e => rusqlite::Error::FromSqlConversionFailure(i, v.data_type(), e.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn a_borrowed_column_reads_like_get_and_fails_like_get() {
        let c = Connection::open_in_memory().unwrap();
        let mut st = c
            .prepare("SELECT 'Борщ', NULL, 7, CAST(x'ff' AS TEXT), 2.5, ''")
            .unwrap();
        let mut rows = st.query([]).unwrap();
        let r = rows.next().unwrap().unwrap();
        assert_eq!(text_or_null(r, 0).unwrap(), Some("Борщ"));
        assert_eq!(text_or_null(r, 1).unwrap(), None);
        assert_eq!(text_or_null(r, 5).unwrap(), Some(""));
        assert!(text_or_null(r, 2).is_err(), "an integer is not text");
        assert!(text_or_null(r, 3).is_err(), "bytes that are not UTF-8");
        assert!(text_or_null(r, 4).is_err(), "a real is not text");
        let mut b = Budget::new(2);
        assert!(b.take().is_ok() && b.take().is_ok());
        assert!(matches!(b.take(), Err(MirrorError::TooManyRows(2))));
    }
}
