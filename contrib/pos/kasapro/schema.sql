-- "КасаПро": an example POS database with a schema of its own, the one docs/mirror.md's worked
-- example maps to the mirror. Integer ids, hryvnia as REAL, ISO local dates, its own status
-- codes. The last four tables are what the POS keeps for the expirenza journal.

CREATE TABLE IF NOT EXISTS pos_halls        (hall_id INTEGER PRIMARY KEY, hall_name TEXT);
CREATE TABLE IF NOT EXISTS pos_tables       (table_id INTEGER PRIMARY KEY, table_no INTEGER UNIQUE,
                                             caption TEXT, hall_id INTEGER);
CREATE TABLE IF NOT EXISTS pos_employees    (emp_id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT,
                                             phone TEXT, fired INTEGER);
CREATE TABLE IF NOT EXISTS pos_roles        (role_id INTEGER PRIMARY KEY, role_name TEXT);
CREATE TABLE IF NOT EXISTS pos_employee_roles (emp_id INTEGER, role_id INTEGER);
CREATE TABLE IF NOT EXISTS pos_checks       (check_id INTEGER PRIMARY KEY,
                                             check_no INTEGER NOT NULL,
                                             table_id INTEGER,
                                             status INTEGER NOT NULL DEFAULT 0, -- 0 open, 1 pre-check printed, 2 paid, 3 cancelled
                                             opened_at TEXT NOT NULL,           -- '2024-05-14 18:21:07', local time
                                             waiter_id INTEGER,
                                             total REAL NOT NULL DEFAULT 0,     -- before discounts
                                             to_pay REAL NOT NULL DEFAULT 0,    -- what the guest owes
                                             bonus REAL,
                                             banquet INTEGER, delivery INTEGER,
                                             splittable INTEGER NOT NULL DEFAULT 1,
                                             parent_check_id INTEGER,           -- after a split
                                             external_id TEXT UNIQUE,           -- an order placed from the app
                                             origin TEXT);
CREATE INDEX IF NOT EXISTS pos_checks_by_table ON pos_checks(table_id, status);
CREATE TABLE IF NOT EXISTS pos_check_lines  (line_id INTEGER PRIMARY KEY, check_id INTEGER NOT NULL,
                                             line_pos INTEGER NOT NULL, guest INTEGER,
                                             parent_line_id INTEGER,            -- a modifier's dish
                                             product_id INTEGER, product_name TEXT,
                                             qty REAL NOT NULL,
                                             amount REAL NOT NULL,              -- the line's total
                                             is_modifier INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS pos_check_lines_by_check ON pos_check_lines(check_id, guest, line_pos);
CREATE TABLE IF NOT EXISTS pos_check_discounts (check_id INTEGER NOT NULL, discount_id INTEGER NOT NULL,
                                             title TEXT,
                                             percent REAL,                      -- NULL: a fixed amount
                                             amount REAL NOT NULL,              -- hryvnia taken off
                                             PRIMARY KEY (check_id, discount_id));
CREATE TABLE IF NOT EXISTS pos_product_groups (group_id INTEGER PRIMARY KEY, name TEXT, parent_id INTEGER, sort INTEGER);
CREATE TABLE IF NOT EXISTS pos_products     (product_id INTEGER PRIMARY KEY, name TEXT, descr TEXT, price REAL,
                                             group_id INTEGER, kitchen INTEGER,  -- 1 kitchen, 0 bar
                                             is_modifier INTEGER, hidden INTEGER, unit TEXT, sku TEXT);
CREATE TABLE IF NOT EXISTS pos_modifier_sets (set_id INTEGER PRIMARY KEY, name TEXT, min_qty INTEGER, max_qty INTEGER);
CREATE TABLE IF NOT EXISTS pos_modifier_set_items (set_id INTEGER, product_id INTEGER, sort INTEGER, max_qty INTEGER);
CREATE TABLE IF NOT EXISTS pos_product_sets (product_id INTEGER, set_id INTEGER, sort INTEGER);
CREATE TABLE IF NOT EXISTS pos_stop         (product_id INTEGER PRIMARY KEY, balance REAL);

-- The POS's own payments ledger (no uniqueness: a double application would show).
CREATE TABLE IF NOT EXISTS pos_payments     (payment_id INTEGER PRIMARY KEY, check_id INTEGER NOT NULL,
                                             amount REAL NOT NULL, tips REAL, method TEXT NOT NULL,
                                             fiscal TEXT, rid TEXT, paid_at TEXT NOT NULL);
-- Staff messages (showMessage).
CREATE TABLE IF NOT EXISTS pos_messages     (message_id INTEGER PRIMARY KEY, check_id INTEGER, text TEXT,
                                             warning INTEGER, rid TEXT, shown_at TEXT);
-- Prices that differed from what the guest paid for an order from the app, for staff.
CREATE TABLE IF NOT EXISTS pos_notes        (note_id INTEGER PRIMARY KEY, check_id INTEGER, text TEXT);
-- The journal commands applied: rID -> the outcome, written in the same transaction as the change.
CREATE TABLE IF NOT EXISTS pos_journal_applied (rid TEXT PRIMARY KEY, outcome TEXT NOT NULL,
                                             applied_at TEXT NOT NULL);
