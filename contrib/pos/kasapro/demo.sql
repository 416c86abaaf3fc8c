-- A small КасаПро restaurant for trying and testing the POS side. Amounts are hryvnia (REAL);
-- each check's total and to_pay agree with its lines and discounts.

INSERT INTO pos_halls VALUES (1, 'Зала'), (2, 'Тераса');
INSERT INTO pos_tables (table_id, table_no, caption, hall_id) VALUES
  (1, 1, 'Біля вікна', 1), (2, 2, '', 1), (3, 3, '', 1), (4, 4, '', 1), (5, 5, '', 1), (6, 6, '', 1),
  (7, 7, 'Диван', 1), (8, 8, '', 1), (9, 9, 'Тераса', 2), (10, 10, '', 2), (11, 11, '', 2), (12, 12, 'Кут', 2);
INSERT INTO pos_employees VALUES (17, 'Оксана', 'Мельник', '+380501112233', 0),
                                 (4, 'Андрій', 'Коваль', '+380671234567', 0);
INSERT INTO pos_roles VALUES (1, 'Офіціант'), (2, 'Менеджер');
INSERT INTO pos_employee_roles VALUES (17, 1), (4, 1), (4, 2);

INSERT INTO pos_product_groups VALUES (1, 'Кухня', NULL, 1), (2, 'Бар', NULL, 2);
INSERT INTO pos_products (product_id, name, descr, price, group_id, kitchen, is_modifier, hidden, unit, sku) VALUES
  (101, 'Борщ український з пампушками', 'Зі сметаною та салом', 145.0, 1, 1, 0, 0, 'порція', '101'),
  (205, 'Вареники з картоплею', 'Домашні, 8 шт.', 95.0, 1, 1, 0, 0, 'порція', '205'),
  (410, 'Деруни зі сметаною', NULL, 120.0, 1, 1, 0, 0, 'порція', '410'),
  (512, 'Котлета по-київськи', 'З картопляним пюре', 400.0, 1, 1, 0, 0, 'порція', '512'),
  (905, 'Шашлик зі свинини (ваговий)', 'Ціна за 1 кг', 650.0, 1, 1, 0, 0, 'кг', '905'),
  (330, 'Узвар 0,5 л', NULL, 60.0, 2, 0, 0, 0, 'шт', '330'),
  (102, 'Юшка з білих грибів', NULL, 120.0, 1, 1, 0, 1, 'порція', '102'),
  (12, 'Сметана', NULL, 15.0, 1, 1, 1, 0, 'порція', 'm12'),
  (31, 'Аджика', NULL, 5.0, 1, 1, 1, 0, 'порція', 'm31');
INSERT INTO pos_modifier_sets VALUES (1, 'Соуси', 0, 2);
INSERT INTO pos_modifier_set_items VALUES (1, 12, 1, 2), (1, 31, 2, 1);
INSERT INTO pos_product_sets VALUES (205, 1, 1), (410, 1, 1), (905, 1, 1);
INSERT INTO pos_stop VALUES (205, 3.0);

-- Check 1842 on table 12 (pre-check printed): 410.00 less 5 % = 389.50.
INSERT INTO pos_checks (check_id, check_no, table_id, status, opened_at, waiter_id, total, to_pay, splittable)
  VALUES (1, 1842, 12, 1, '2024-05-14 18:21:07', 17, 410.0, 389.5, 0);
INSERT INTO pos_check_lines (line_id, check_id, line_pos, guest, parent_line_id, product_id, product_name, qty, amount, is_modifier) VALUES
  (1, 1, 1, 1, NULL, 101, 'Борщ український з пампушками', 1.0, 145.0, 0),
  (2, 1, 2, 1, NULL, 205, 'Вареники з картоплею', 2.0, 190.0, 0),
  (3, 1, 3, 1, 2, 12, 'Сметана', 1.0, 15.0, 1),
  (4, 1, 4, 1, NULL, 330, 'Узвар 0,5 л', 1.0, 60.0, 0);
INSERT INTO pos_check_discounts VALUES (1, 1, 'Знижка 5% постійним гостям', 5.0, 20.5);

-- Check 977 on table 7, two guests, splittable: 700.00, less 10 % (70.00) and a 50.00
-- certificate = 580.00.
INSERT INTO pos_checks (check_id, check_no, table_id, status, opened_at, waiter_id, total, to_pay, splittable)
  VALUES (2, 977, 7, 0, '2024-05-14 19:02:11', 4, 700.0, 580.0, 1);
INSERT INTO pos_check_lines (line_id, check_id, line_pos, guest, parent_line_id, product_id, product_name, qty, amount, is_modifier) VALUES
  (5, 2, 1, 1, NULL, 410, 'Деруни зі сметаною', 2.0, 240.0, 0),
  (6, 2, 2, 1, 5, 12, 'Сметана', 2.0, 30.0, 1),
  (7, 2, 3, 1, NULL, 330, 'Узвар 0,5 л', 0.5, 30.0, 0),
  (8, 2, 4, 2, NULL, 512, 'Котлета по-київськи', 1.0, 400.0, 0);
INSERT INTO pos_check_discounts VALUES (2, 1, 'Знижка 10%', 10.0, 70.0),
                                       (2, 2, 'Подарунковий сертифікат', NULL, 50.0);

-- Check 2001 on table 3, paid at the till already.
INSERT INTO pos_checks (check_id, check_no, table_id, status, opened_at, waiter_id, total, to_pay, splittable)
  VALUES (3, 2001, 3, 2, '2024-05-14 17:40:00', 17, 120.0, 120.0, 0);
INSERT INTO pos_check_lines (line_id, check_id, line_pos, guest, parent_line_id, product_id, product_name, qty, amount, is_modifier) VALUES
  (9, 3, 1, 1, NULL, 410, 'Деруни зі сметаною', 1.0, 120.0, 0);
