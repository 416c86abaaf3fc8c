-- expirenza-agent mirror contract. Documented column by column in docs/mirror.md.
-- The agent only ever reads the tables and columns named here; an integrator may create them as
-- real tables (filled by the POS) or as views over the POS's own schema.
-- Money columns end in _kop (integer kopecks); quantity columns end in _milli (thousandths).

-- v1 ------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS halls (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS tables (
    id      TEXT PRIMARY KEY,
    number  INTEGER NOT NULL UNIQUE,
    name    TEXT NOT NULL DEFAULT '',
    hall_id TEXT REFERENCES halls(id)
);

-- Bills. Open bills are those with state NEW or BILL.
CREATE TABLE IF NOT EXISTS orders (
    bill_id         TEXT PRIMARY KEY,
    order_number    INTEGER NOT NULL,
    table_id        TEXT REFERENCES tables(id),
    state           TEXT NOT NULL DEFAULT 'NEW' CHECK (state IN ('NEW', 'BILL', 'PAYED', 'CLOSED')),
    created         TEXT NOT NULL,                  -- 'yyyy.MM.dd HH:mm:ss', restaurant local time
    waiter_id       TEXT,
    waiter_name     TEXT,
    raw_sum_kop     INTEGER NOT NULL DEFAULT 0,     -- before discounts and bonuses
    total_sum_kop   INTEGER NOT NULL DEFAULT 0,     -- what the guest owes
    bonus_sum_kop   INTEGER NOT NULL DEFAULT 0,
    is_banquet      INTEGER NOT NULL DEFAULT 0,
    is_delivery     INTEGER NOT NULL DEFAULT 0,
    split_available INTEGER NOT NULL DEFAULT 0,
    root_bill_id    TEXT,                           -- parent bill after a split
    payment_type    TEXT,
    pricing_time    TEXT
);
CREATE INDEX IF NOT EXISTS orders_by_table ON orders(table_id, state);

-- Receipt lines. One row = one position. Modifiers point at their parent with linked_to.
CREATE TABLE IF NOT EXISTS order_positions (
    bill_id         TEXT NOT NULL REFERENCES orders(bill_id),
    position_id     TEXT NOT NULL,
    line_no         INTEGER NOT NULL,               -- order of lines on the bill
    guest_no        INTEGER NOT NULL DEFAULT 1,
    guest_name      TEXT NOT NULL DEFAULT 'Гість 1',
    linked_to       TEXT,                           -- position_id of the parent line, NULL for a dish
    dish_id         TEXT,
    name            TEXT NOT NULL,
    count_milli     INTEGER NOT NULL,               -- 1.5 portions = 1500
    sum_kop         INTEGER NOT NULL,               -- line total
    category        TEXT,
    category_id     TEXT,
    tax_category    TEXT,
    tax_category_id TEXT,
    type            TEXT NOT NULL DEFAULT 'dish',   -- 'dish' or 'modifier'
    check_number    TEXT,
    PRIMARY KEY (bill_id, position_id)
);

CREATE TABLE IF NOT EXISTS order_discounts (
    bill_id     TEXT NOT NULL REFERENCES orders(bill_id),
    discount_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    sum_kop     INTEGER NOT NULL,
    PRIMARY KEY (bill_id, discount_id)
);
