"""The journal's commands applied to КасаПро (schema.sql): the part of the POS side an
integrator writes for their own POS (docs/journal.md, "Apply").

Every command is one POS transaction (BEGIN IMMEDIATE ... COMMIT) that checks, makes the change
in a savepoint (rolled back on a refusal, so a refusal found half-way leaves nothing behind) and
records `(rid, outcome)` in `pos_journal_applied`. Money is integer kopecks inside; КасаПро's
REAL hryvnia are converted only where they are read or written (`kop`, `hrn`).
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any, Callable, Optional

import applier
from applier import Command, Outcome, ratio, to_milli

log = logging.getLogger("kasapro")

HERE = Path(__file__).resolve().parent


def kop(x: Any) -> int:
    """A REAL hryvnia amount as kopecks, rounded half up (as ROUND(x * 100) in the views)."""
    d = decimal.Decimal(str(x if x is not None else 0)) * 100
    return int(d.to_integral_value(rounding=decimal.ROUND_HALF_UP))


def hrn(k: int) -> float:
    """Kopecks as КасаПро's REAL hryvnia (k / 100 reads back as exactly k kopecks)."""
    return k / 100


def milli(x: Any) -> int:
    return to_milli(x if x is not None else 0)


def local_now() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def open_pos(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.executescript((HERE / "schema.sql").read_text(encoding="utf-8"))
    return db


# ------------------------------------------------------------------ splitOrder: what moves


class Refused(Exception):
    def __init__(self, substate: str, message: str):
        super().__init__(message)
        self.outcome = Outcome.refuse(substate, message)


def plan(lines: list[dict], positions: list[dict]) -> list[dict]:
    """docs/journal.md, splitOrder: which lines move and how much of each.

    `lines`: [{"id", "linked_to", "count" (thousandths), "sum" (kopecks)}] in bill order;
    `positions`: [{"id", "quantity" (thousandths)}]. Returns [{"id", "count", "sum", "whole"}].
    """
    if not positions:
        raise Refused(applier.WRONG_POSITIONS, "no positions to split")
    by_id = {l["id"]: l for l in lines}
    listed: dict[str, int] = {}
    for p in positions:
        if p["id"] in listed:
            raise Refused(applier.WRONG_POSITIONS, f"position {p['id']} is listed twice")
        line = by_id.get(p["id"])
        if line is None:
            raise Refused(applier.WRONG_POSITIONS, f"position {p['id']} is not on the bill")
        if not 0 < p["quantity"] <= line["count"]:
            raise Refused(applier.WRONG_POSITIONS, f"position {p['id']}: quantity out of range")
        listed[p["id"]] = p["quantity"]
    moves = []
    for l in lines:
        # The outermost listed line among this line and the lines it hangs from.
        mover = (l, listed[l["id"]]) if l["id"] in listed else None
        up, steps = l["linked_to"], 0
        while up is not None and up in by_id and steps <= len(lines):
            steps += 1
            if up in listed:
                mover = (by_id[up], listed[up])
            up = by_id[up]["linked_to"]
        if mover is None:
            continue
        a, q = mover
        count = l["count"] if q == a["count"] else ratio(l["count"], q, a["count"])
        if count <= 0:
            continue
        whole = count >= l["count"]
        moves.append({
            "id": l["id"],
            "count": l["count"] if whole else count,
            "sum": l["sum"] if whole else ratio(l["sum"], q, a["count"]),
            "whole": whole,
        })
    return moves


# ------------------------------------------------------------------ the adapter


class KasaProAdapter(applier.Adapter):
    def __init__(self, pos_path: str, mirror_path: Optional[str] = None):
        self.db = open_pos(pos_path)
        self.sync = None
        if mirror_path:
            from .mirror_sync import MirrorSync

            self.sync = MirrorSync(pos_path, mirror_path)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "KasaProAdapter":
        return cls(args.pos, args.mirror)

    # -- the rID ledger

    def stored(self, rid: str) -> Optional[Outcome]:
        row = self.db.execute("SELECT outcome FROM pos_journal_applied WHERE rid = ?", (rid,)).fetchone()
        return Outcome.from_json(row[0]) if row else None

    def _once(self, cmd: Command, change: Callable[[], Outcome]) -> Outcome:
        """One POS transaction: the change (in a savepoint, undone on a refusal) and its rID."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT outcome FROM pos_journal_applied WHERE rid = ?", (cmd.rid,)).fetchone()
            if row:
                db.execute("COMMIT")
                return Outcome.from_json(row[0])
            db.execute("SAVEPOINT change")
            try:
                o = change()
            except Refused as r:
                o = r.outcome
            if not o.applied:
                db.execute("ROLLBACK TO change")
            db.execute("RELEASE change")
            db.execute(
                "INSERT INTO pos_journal_applied (rid, outcome, applied_at) VALUES (?, ?, ?)",
                (cmd.rid, o.to_json(), local_now()),
            )
            db.execute("COMMIT")
            return o
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def update_mirror(self) -> None:
        if self.sync is not None:
            self.sync.run()

    # -- helpers on КасаПро's tables

    def _check(self, bill_id: Optional[str]) -> Optional[sqlite3.Row]:
        try:
            check_id = int(bill_id or "")
        except ValueError:
            return None
        return self.db.execute("SELECT * FROM pos_checks WHERE check_id = ?", (check_id,)).fetchone()

    def _recompute(self, check_id: int) -> None:
        """Totals from the lines: percentage discounts on this check's own lines, fixed ones as
        they stand, bonus last."""
        db = self.db
        total = sum(kop(r[0]) for r in db.execute(
            "SELECT amount FROM pos_check_lines WHERE check_id = ?", (check_id,)))
        off = 0
        for d in db.execute(
            "SELECT discount_id, percent, amount FROM pos_check_discounts WHERE check_id = ?", (check_id,)
        ).fetchall():
            if d["percent"] is not None:
                amount = ratio(total, kop(d["percent"]), 10_000)  # percent in hundredths
                db.execute(
                    "UPDATE pos_check_discounts SET amount = ? WHERE check_id = ? AND discount_id = ?",
                    (hrn(amount), check_id, d["discount_id"]),
                )
            else:
                amount = kop(d["amount"])
            off += amount
        bonus = kop(db.execute("SELECT bonus FROM pos_checks WHERE check_id = ?", (check_id,)).fetchone()[0])
        db.execute(
            "UPDATE pos_checks SET total = ?, to_pay = ? WHERE check_id = ?",
            (hrn(total), hrn(max(0, total - off - bonus)), check_id),
        )

    def _pay(self, check_id: int, amount_kop: int, tips_kop: Optional[int], cmd: Command) -> None:
        self.db.execute(
            "INSERT INTO pos_payments (check_id, amount, tips, method, fiscal, rid, paid_at) "
            "VALUES (?, ?, ?, 'expirenza', ?, ?, ?)",
            (
                check_id,
                hrn(amount_kop),
                hrn(tips_kop) if tips_kop is not None else None,
                json.dumps(cmd.request.get("fiscalData"), ensure_ascii=False, default=str),
                cmd.rid,
                local_now(),
            ),
        )
        self.db.execute("UPDATE pos_checks SET status = 2 WHERE check_id = ?", (check_id,))

    # -- payBill

    def pay(self, cmd: Command) -> Outcome:
        def change() -> Outcome:
            c = self._check(cmd.bill_id)
            if c is None:
                return Outcome.refuse(applier.ORDER_NOT_FOUND, f"check {cmd.bill_id} does not exist")
            if c["status"] not in (0, 1):
                return Outcome.refuse(applier.ORDER_CLOSED, f"check {c['check_no']} is already closed")
            if cmd.sum_kop is None or kop(c["to_pay"]) != cmd.sum_kop:
                return Outcome.refuse(
                    applier.WRONG_REQUEST_SUM,
                    f"the check is {kop(c['to_pay']) / 100:.2f}, the guest paid {(cmd.sum_kop or 0) / 100:.2f}",
                )
            self._pay(c["check_id"], cmd.sum_kop, cmd.tips_kop, cmd)
            return Outcome.ok(billId=str(c["check_id"]))

        return self._once(cmd, change)

    # -- splitOrder

    def split(self, cmd: Command) -> Outcome:
        def change() -> Outcome:
            db = self.db
            c = self._check(cmd.bill_id)
            if c is None or c["status"] not in (0, 1):
                return Outcome.refuse(applier.ORDER_NOT_FOUND, f"check {cmd.bill_id} is not open")
            if not c["splittable"]:
                return Outcome.refuse("SPLIT_NOT_AVAILABLE", f"check {c['check_no']} cannot be split")
            parent = c["check_id"]
            rows = db.execute(
                "SELECT * FROM pos_check_lines WHERE check_id = ? ORDER BY COALESCE(guest, 1), line_pos",
                (parent,),
            ).fetchall()
            lines = [{
                "id": str(r["line_id"]),
                "linked_to": str(r["parent_line_id"]) if r["parent_line_id"] is not None else None,
                "count": milli(r["qty"]),
                "sum": kop(r["amount"]),
            } for r in rows]
            try:
                positions = [
                    {"id": str(p["id"]), "quantity": to_milli(p.get("quantity", 1))}
                    for p in cmd.request.get("positions", [])
                ]
            except (KeyError, TypeError, decimal.InvalidOperation):
                return Outcome.refuse(applier.BAD_REQUEST, "positions cannot be read")
            moves = plan(lines, positions)
            raw_before = sum(l["sum"] for l in lines)
            moved = sum(m["sum"] for m in moves)
            # The new check: created now, open, not splittable itself, the parent's table,
            # waiter and order type.
            number = db.execute("SELECT COALESCE(MAX(check_no), 0) + 1 FROM pos_checks").fetchone()[0]
            child = db.execute(
                "INSERT INTO pos_checks (check_no, table_id, status, opened_at, waiter_id, banquet, delivery, "
                "splittable, parent_check_id, origin) VALUES (?, ?, 0, ?, ?, ?, ?, 0, ?, 'split')",
                (number, c["table_id"], local_now(), c["waiter_id"], c["banquet"], c["delivery"], parent),
            ).lastrowid
            by_id = {str(r["line_id"]): r for r in rows}
            new_id: dict[str, int] = {}
            for m in moves:
                r = by_id[m["id"]]
                if m["whole"]:
                    db.execute("UPDATE pos_check_lines SET check_id = ? WHERE line_id = ?", (child, r["line_id"]))
                    new_id[m["id"]] = r["line_id"]
                    continue
                new_id[m["id"]] = db.execute(
                    "INSERT INTO pos_check_lines (check_id, line_pos, guest, parent_line_id, product_id, "
                    "product_name, qty, amount, is_modifier) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (child, r["line_pos"], r["guest"], r["parent_line_id"], r["product_id"],
                     r["product_name"], m["count"] / 1000, hrn(m["sum"]), r["is_modifier"]),
                ).lastrowid
                db.execute(
                    "UPDATE pos_check_lines SET qty = ?, amount = ? WHERE line_id = ?",
                    ((milli(r["qty"]) - m["count"]) / 1000, hrn(kop(r["amount"]) - m["sum"]), r["line_id"]),
                )
            # A moved modifier hangs from its dish's moved part.
            for old, new in new_id.items():
                parent_line = by_id[old]["parent_line_id"]
                if parent_line is not None and str(parent_line) in new_id:
                    db.execute("UPDATE pos_check_lines SET parent_line_id = ? WHERE line_id = ?",
                               (new_id[str(parent_line)], new))
            # Discounts: a percentage one applies to each check's own lines; a fixed one is
            # divided in proportion to the lines' sums, never copied whole.
            for d in db.execute("SELECT * FROM pos_check_discounts WHERE check_id = ?", (parent,)).fetchall():
                if d["percent"] is not None:
                    share = 0
                else:
                    share = ratio(kop(d["amount"]), moved, raw_before) if raw_before > 0 else 0
                    if share == 0:
                        continue
                    db.execute(
                        "UPDATE pos_check_discounts SET amount = ? WHERE check_id = ? AND discount_id = ?",
                        (hrn(kop(d["amount"]) - share), parent, d["discount_id"]),
                    )
                db.execute(
                    "INSERT INTO pos_check_discounts (check_id, discount_id, title, percent, amount) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (child, d["discount_id"], d["title"], d["percent"], hrn(share)),
                )
            self._recompute(parent)
            self._recompute(child)
            return Outcome.ok(newBillId=str(child))

        return self._once(cmd, change)

    # -- createOrderOnTable

    def create_order(self, cmd: Command) -> Outcome:
        def change() -> Outcome:
            db = self.db
            ext = cmd.external_id or str(cmd.request.get("externalId", ""))
            row = db.execute("SELECT check_id FROM pos_checks WHERE external_id = ?", (ext,)).fetchone()
            if row:  # created by an earlier attempt
                return Outcome.ok(orderId=str(row[0]))
            try:
                table_id = int(str(cmd.request.get("tableId", "")))
            except ValueError:
                table_id = None
            if table_id is None or not db.execute(
                "SELECT 1 FROM pos_tables WHERE table_id = ?", (table_id,)
            ).fetchone():
                return Outcome.refuse(applier.TABLE_NOT_FOUND, f"table {cmd.request.get('tableId')} does not exist")
            number = db.execute("SELECT COALESCE(MAX(check_no), 0) + 1 FROM pos_checks").fetchone()[0]
            check = db.execute(
                "INSERT INTO pos_checks (check_no, table_id, status, opened_at, splittable, external_id, origin) "
                "VALUES (?, ?, 0, ?, 0, ?, ?)",
                (number, table_id, local_now(), ext, str(cmd.request.get("originName") or "expirenza")),
            ).lastrowid
            pos = 0

            def add(item: dict, parent_line: Optional[int], modifier: bool) -> int:
                nonlocal pos
                try:
                    product, qty = int(str(item["id"])), to_milli(item.get("quantity", 1))
                except (KeyError, ValueError, decimal.InvalidOperation):
                    raise Refused(applier.BAD_REQUEST, f"item {item!r} cannot be read")
                p = db.execute("SELECT * FROM pos_products WHERE product_id = ?", (product,)).fetchone()
                if p is None or p["hidden"]:
                    raise Refused(applier.PRODUCT_UNAVAILABLE, f"product {product} is not on sale")
                stop = db.execute("SELECT balance FROM pos_stop WHERE product_id = ?", (product,)).fetchone()
                if stop is not None and milli(stop[0]) < qty:
                    raise Refused(applier.PRODUCT_UNAVAILABLE, f"{p['name']} is on the stop list")
                if stop is not None:
                    db.execute("UPDATE pos_stop SET balance = ? WHERE product_id = ?",
                               ((milli(stop[0]) - qty) / 1000, product))
                pos += 1
                amount = ratio(kop(p["price"]) * qty, 1, 1000)  # price × quantity, half up
                return db.execute(
                    "INSERT INTO pos_check_lines (check_id, line_pos, guest, parent_line_id, product_id, "
                    "product_name, qty, amount, is_modifier) VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?)",
                    (check, pos, parent_line, product, p["name"], qty / 1000, hrn(amount), int(modifier)),
                ).lastrowid

            for item in cmd.request.get("items", []):
                line = add(item, None, False)
                for m in item.get("modifier") or item.get("modifiers") or []:
                    add(m, line, True)
            # Kitchen tickets would be printed here. Then the guest's payment: sum_kop, what the
            # agent priced from the mirror when the order arrived.
            self._recompute(check)
            own = kop(db.execute("SELECT to_pay FROM pos_checks WHERE check_id = ?", (check,)).fetchone()[0])
            if cmd.sum_kop is None:
                return Outcome.refuse(applier.BAD_REQUEST, "the journal row has no sum_kop")
            self._pay(check, cmd.sum_kop, None, cmd)
            result: dict[str, Any] = {"orderId": str(check)}
            if own != cmd.sum_kop:
                result["priceDifferenceKop"] = own - cmd.sum_kop
                db.execute(
                    "INSERT INTO pos_notes (check_id, text) VALUES (?, ?)",
                    (check, f"prices changed: the POS says {own / 100:.2f}, the guest paid {cmd.sum_kop / 100:.2f}"),
                )
                log.warning("order %s: the POS prices it %d kop, the guest paid %d", ext, own, cmd.sum_kop)
            return Outcome(True, result)

        return self._once(cmd, change)

    # -- showMessage

    def show_message(self, cmd: Command) -> Outcome:
        def change() -> Outcome:
            c = self._check(cmd.request.get("billId"))
            self.db.execute(
                "INSERT INTO pos_messages (check_id, text, warning, rid, shown_at) VALUES (?, ?, ?, ?, ?)",
                (
                    c["check_id"] if c is not None else None,
                    str(cmd.request.get("message", "")),
                    int(bool(cmd.request.get("warning"))),
                    cmd.rid,
                    local_now(),
                ),
            )
            return Outcome.ok(shown=True)

        return self._once(cmd, change)
