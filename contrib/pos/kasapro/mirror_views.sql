-- The mirror (docs/mirror.md) as views over КасаПро's own tables (schema.sql), created in the
-- POS database itself: `mirror_path` points at that file. mirror_sync.py runs these same
-- SELECTs to fill a separate mirror file instead.
--
-- Integer ids become TEXT with CAST; hryvnia (REAL) become kopecks with CAST(ROUND(x * 100) AS
-- INTEGER), quantities thousandths with CAST(ROUND(q * 1000) AS INTEGER); the POS's statuses
-- become NEW / BILL (open) and PAYED / CLOSED.

CREATE VIEW IF NOT EXISTS halls AS
  SELECT CAST(hall_id AS TEXT) AS id, hall_name AS name FROM pos_halls;

CREATE VIEW IF NOT EXISTS tables AS
  SELECT CAST(table_id AS TEXT) AS id, table_no AS number, COALESCE(caption, '') AS name,
         CAST(hall_id AS TEXT) AS hall_id
  FROM pos_tables;

CREATE VIEW IF NOT EXISTS orders AS
  SELECT CAST(c.check_id AS TEXT) AS bill_id, c.check_no AS order_number,
         CAST(c.table_id AS TEXT) AS table_id,
         CASE c.status WHEN 0 THEN 'NEW' WHEN 1 THEN 'BILL' WHEN 2 THEN 'PAYED' ELSE 'CLOSED' END AS state,
         strftime('%Y.%m.%d %H:%M:%S', c.opened_at) AS created,
         CAST(c.waiter_id AS TEXT) AS waiter_id, e.first_name || ' ' || e.last_name AS waiter_name,
         CAST(ROUND(c.total * 100) AS INTEGER) AS raw_sum_kop,
         CAST(ROUND(c.to_pay * 100) AS INTEGER) AS total_sum_kop,
         CAST(ROUND(COALESCE(c.bonus, 0) * 100) AS INTEGER) AS bonus_sum_kop,
         COALESCE(c.banquet, 0) AS is_banquet, COALESCE(c.delivery, 0) AS is_delivery,
         c.splittable AS split_available, CAST(c.parent_check_id AS TEXT) AS root_bill_id,
         NULL AS payment_type, NULL AS pricing_time
  FROM pos_checks c LEFT JOIN pos_employees e ON e.emp_id = c.waiter_id;

CREATE VIEW IF NOT EXISTS order_positions AS
  SELECT CAST(l.check_id AS TEXT) AS bill_id, CAST(l.line_id AS TEXT) AS position_id,
         l.line_pos AS line_no,
         COALESCE(l.guest, 1) AS guest_no, 'Гість ' || COALESCE(l.guest, 1) AS guest_name,
         CAST(l.parent_line_id AS TEXT) AS linked_to, CAST(l.product_id AS TEXT) AS dish_id,
         l.product_name AS name,
         CAST(ROUND(l.qty * 1000) AS INTEGER) AS count_milli,
         CAST(ROUND(l.amount * 100) AS INTEGER) AS sum_kop,
         CASE p.kitchen WHEN 1 THEN 'Кухня' ELSE 'Бар' END AS category,
         CASE p.kitchen WHEN 1 THEN 'cat-kitchen' ELSE 'cat-bar' END AS category_id,
         'ПДВ 20%' AS tax_category, 'tax-a' AS tax_category_id,
         CASE l.is_modifier WHEN 1 THEN 'modifier' ELSE 'dish' END AS type,
         NULL AS check_number
  FROM pos_check_lines l LEFT JOIN pos_products p ON p.product_id = l.product_id;

CREATE VIEW IF NOT EXISTS order_discounts AS
  SELECT CAST(check_id AS TEXT) AS bill_id, CAST(discount_id AS TEXT) AS discount_id,
         title AS name, CAST(ROUND(amount * 100) AS INTEGER) AS sum_kop
  FROM pos_check_discounts;

CREATE VIEW IF NOT EXISTS staff AS
  SELECT CAST(e.emp_id AS TEXT) AS id, e.first_name || ' ' || e.last_name AS name,
         e.phone AS cell_phone,
         (SELECT group_concat(r.role_name, ', ') FROM pos_employee_roles er
            JOIN pos_roles r ON r.role_id = er.role_id WHERE er.emp_id = e.emp_id) AS roles
  FROM pos_employees e WHERE COALESCE(e.fired, 0) = 0;

CREATE VIEW IF NOT EXISTS categories AS
  SELECT 'cat-kitchen' AS id, 'Кухня' AS name, 'dish' AS type
  UNION ALL SELECT 'cat-bar', 'Бар', 'drink';

CREATE VIEW IF NOT EXISTS menu_groups AS
  SELECT CAST(group_id AS TEXT) AS id, name, CAST(parent_id AS TEXT) AS parent_id,
         COALESCE(sort, 0) AS menu_index
  FROM pos_product_groups;

CREATE VIEW IF NOT EXISTS menu_items AS
  SELECT CAST(product_id AS TEXT) AS id, name, descr AS description,
         CAST(ROUND(price * 100) AS INTEGER) AS price_kop,
         CASE kitchen WHEN 1 THEN 'cat-kitchen' ELSE 'cat-bar' END AS category_id,
         CAST(group_id AS TEXT) AS group_id, 1 - COALESCE(hidden, 0) AS is_active,
         'dish' AS type, unit, sku AS vendor_code, 'ПДВ 20%' AS tax_category, 'tax-a' AS tax_category_id,
         NULL AS scale_id, NULL AS scale_name, NULL AS scale_size_id, NULL AS scale_size_name,
         NULL AS scale_size_kitchen_name, NULL AS scale_size_menu_index, NULL AS modifier_scheme_id
  FROM pos_products WHERE is_modifier = 0;

CREATE VIEW IF NOT EXISTS modifiers AS
  SELECT CAST(p.product_id AS TEXT) AS id, p.name, p.descr AS description,
         CAST(ROUND(p.price * 100) AS INTEGER) AS price_kop, 'cat-kitchen' AS category_id,
         (SELECT CAST(MIN(si.set_id) AS TEXT) FROM pos_modifier_set_items si WHERE si.product_id = p.product_id) AS group_id,
         1 - COALESCE(p.hidden, 0) AS is_active, 'modifier' AS type, p.unit, p.sku AS vendor_code,
         'ПДВ 20%' AS tax_category, 'tax-a' AS tax_category_id
  FROM pos_products p WHERE p.is_modifier = 1;

CREATE VIEW IF NOT EXISTS group_modifiers AS
  SELECT CAST(set_id AS TEXT) AS id, name, CASE WHEN min_qty > 0 THEN 1 ELSE 0 END AS required,
         min_qty AS min_amount, max_qty AS max_amount, 0 AS default_amount,
         0 AS free, 0 AS free_amount, 1 AS child_min_max
  FROM pos_modifier_sets;

CREATE VIEW IF NOT EXISTS group_modifier_children AS
  SELECT CAST(set_id AS TEXT) AS group_id, CAST(product_id AS TEXT) AS modifier_id, sort AS position,
         0 AS required, 0 AS min_amount, COALESCE(max_qty, 1) AS max_amount, 0 AS default_amount
  FROM pos_modifier_set_items;

CREATE VIEW IF NOT EXISTS menu_item_group_modifiers AS
  SELECT CAST(product_id AS TEXT) AS item_id, CAST(set_id AS TEXT) AS group_id, sort AS position
  FROM pos_product_sets;

-- КасаПро has no single modifiers outside sets: an empty view with the right columns.
CREATE VIEW IF NOT EXISTS menu_item_modifiers AS
  SELECT NULL AS item_id, NULL AS modifier_id, 0 AS position, 0 AS required,
         0 AS min_amount, 1 AS max_amount, 0 AS default_amount WHERE 0;

CREATE VIEW IF NOT EXISTS stop_list AS
  SELECT CAST(product_id AS TEXT) AS item_id,
         CAST(ROUND(MAX(balance, 0) * 1000) AS INTEGER) AS remaining_milli
  FROM pos_stop;

CREATE VIEW IF NOT EXISTS terminal_groups AS SELECT 'tg-1' AS id, 'Основна каса' AS name, 1 AS is_host;
