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
-- getBill reads a bill's lines in (guest_no, line_no) order: this index saves the sort.
CREATE INDEX IF NOT EXISTS order_positions_in_bill_order ON order_positions(bill_id, guest_no, line_no);

CREATE TABLE IF NOT EXISTS order_discounts (
    bill_id     TEXT NOT NULL REFERENCES orders(bill_id),
    discount_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    sum_kop     INTEGER NOT NULL,
    PRIMARY KEY (bill_id, discount_id)
);

-- v2: staff, menu, stop list ------------------------------------------------------------------

-- Staff (usersInfo). `roles` is one text column, roles separated by commas: what
-- `group_concat(role_name, ', ')` over a POS's user-role link table produces.
CREATE TABLE IF NOT EXISTS staff (
    id         TEXT PRIMARY KEY,                    -- the same id as orders.waiter_id
    name       TEXT NOT NULL,
    cell_phone TEXT,                                -- '+380…'
    roles      TEXT                                 -- 'Офіціант, Кур''єр'
);

-- Product categories (categoriesInfo; the category name of each dish in menuInfo).
CREATE TABLE IF NOT EXISTS categories (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT                                       -- free text, e.g. 'dish', 'drink'
);

-- Menu groups (folders), nested through parent_id.
CREATE TABLE IF NOT EXISTS menu_groups (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    parent_id  TEXT,                                -- NULL for a top-level group
    menu_index INTEGER NOT NULL DEFAULT 0           -- display order
);

-- Dishes (menuInfo dishes; checkProductsRestrictions items).
CREATE TABLE IF NOT EXISTS menu_items (
    id                      TEXT PRIMARY KEY,       -- the same id as order_positions.dish_id
    name                    TEXT NOT NULL,
    description             TEXT,
    price_kop               INTEGER NOT NULL,       -- price of one unit
    category_id             TEXT,                   -- categories.id
    group_id                TEXT,                   -- menu_groups.id
    is_active               INTEGER NOT NULL DEFAULT 1,
    type                    TEXT,                   -- NULL = 'dish'
    unit                    TEXT,                   -- 'порція', 'кг', 'л'
    vendor_code             TEXT,
    tax_category            TEXT,
    tax_category_id         TEXT,
    scale_id                TEXT,                   -- size scale; NULL = none
    scale_name              TEXT,
    scale_size_id           TEXT,                   -- the scale's default size
    scale_size_name         TEXT,
    scale_size_kitchen_name TEXT,
    scale_size_menu_index   INTEGER,
    modifier_scheme_id      TEXT                    -- optional column: menuInfo modifierSchemeId
);

-- Optional: the menu sections a dish is listed in (menuInfo dishes[].menuSections).
CREATE TABLE IF NOT EXISTS menu_item_sections (
    item_id  TEXT NOT NULL,                         -- menu_items.id
    section  TEXT NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (item_id, section)
);

-- Modifiers (menuInfo modifiers; checkProductsRestrictions modifier lines).
CREATE TABLE IF NOT EXISTS modifiers (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    description     TEXT,
    price_kop       INTEGER NOT NULL DEFAULT 0,
    category_id     TEXT,
    group_id        TEXT,                           -- group_modifiers.id (or a menu group id)
    is_active       INTEGER NOT NULL DEFAULT 1,
    type            TEXT,                           -- NULL = 'modifier'
    unit            TEXT,
    vendor_code     TEXT,
    tax_category    TEXT,
    tax_category_id TEXT
);

-- Group modifiers ("choose up to 2 sauces"). Amounts are whole numbers of portions.
CREATE TABLE IF NOT EXISTS group_modifiers (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    required       INTEGER NOT NULL DEFAULT 0,
    min_amount     INTEGER NOT NULL DEFAULT 0,
    max_amount     INTEGER NOT NULL DEFAULT 1,
    default_amount INTEGER NOT NULL DEFAULT 0,
    free           INTEGER NOT NULL DEFAULT 0,
    free_amount    INTEGER NOT NULL DEFAULT 0,
    child_min_max  INTEGER NOT NULL DEFAULT 0       -- childModifiersHaveMinMaxRestrictions
);

-- The modifiers a group modifier offers.
CREATE TABLE IF NOT EXISTS group_modifier_children (
    group_id       TEXT NOT NULL,                   -- group_modifiers.id
    modifier_id    TEXT NOT NULL,                   -- modifiers.id
    position       INTEGER NOT NULL DEFAULT 0,
    required       INTEGER NOT NULL DEFAULT 0,
    min_amount     INTEGER NOT NULL DEFAULT 0,
    max_amount     INTEGER NOT NULL DEFAULT 1,
    default_amount INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (group_id, modifier_id)
);

-- Group modifiers offered with a dish.
CREATE TABLE IF NOT EXISTS menu_item_group_modifiers (
    item_id  TEXT NOT NULL,                         -- menu_items.id
    group_id TEXT NOT NULL,                         -- group_modifiers.id
    position INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (item_id, group_id)
);

-- Single modifiers offered with a dish (outside any group).
CREATE TABLE IF NOT EXISTS menu_item_modifiers (
    item_id        TEXT NOT NULL,                   -- menu_items.id
    modifier_id    TEXT NOT NULL,                   -- modifiers.id
    position       INTEGER NOT NULL DEFAULT 0,
    required       INTEGER NOT NULL DEFAULT 0,
    min_amount     INTEGER NOT NULL DEFAULT 0,
    max_amount     INTEGER NOT NULL DEFAULT 1,
    default_amount INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (item_id, modifier_id)
);

-- Stop list: items (dishes or modifiers) that are out or limited. Absent = unlimited.
CREATE TABLE IF NOT EXISTS stop_list (
    item_id         TEXT PRIMARY KEY,               -- menu_items.id or modifiers.id
    remaining_milli INTEGER NOT NULL DEFAULT 0      -- balance left; 0 = unavailable
);

-- Terminal groups (menuInfo hostTerminalsGroup / terminalsGroups).
CREATE TABLE IF NOT EXISTS terminal_groups (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    is_host INTEGER NOT NULL DEFAULT 0              -- 1 = this agent's own group
);
