#!/usr/bin/env python3
"""The POS side of expirenza-agent's command journal, written from docs/journal.md.

Standard library only. The loop is generic; what a command does in a particular POS is an
`Adapter` (see `kasapro/adapter.py` for a complete one):

    step:  a row left `claimed` by a crash is finished first; else the oldest `pending` row is
           claimed (BEGIN IMMEDIATE; SELECT it; UPDATE ... WHERE id = ? AND status = 'pending';
           COMMIT), before the POS is touched
    apply: adapter.stored(rid) -> the outcome recorded for this rID, if any (never apply twice);
           else adapter.pay / split / create_order / show_message, each ONE POS transaction
           that makes the change and records (rid, outcome) together
    sync:  adapter.update_mirror() -- the mirror shows the change before the acknowledgement
    ack:   UPDATE commands SET status, result, substate, reason, applied_at
           WHERE id = ? AND status = 'claimed'

Run it as one process next to the agent:

    python3 contrib/pos/applier.py --journal /var/lib/expirenza-agent/journal.sqlite \\
        --pos /var/lib/kasapro/pos.sqlite [--mirror /var/lib/expirenza-agent/mirror.sqlite]

Python 3.9 or newer, with the SQLite it was built with: 3.34 or newer (Debian 11 and Raspberry
Pi OS bullseye have Python 3.9.2 with SQLite 3.34.1; the claim does without `RETURNING`, which
SQLite has only from 3.35). A busy lock or a journal the agent has not created yet is waited
out; any other SQL error stops the applier with exit status 1 and the error on stderr, so that
a fault retrying cannot fix (a journal of another schema, a bad query in an adapter) is seen
instead of looping.
"""

from __future__ import annotations

import argparse
import dataclasses
import decimal
import importlib
import json
import logging
import os
import signal
import sqlite3
import sys
import time
from typing import Any, Optional

log = logging.getLogger("expirenza-applier")

# Sub-states the agent knows (src/ops/substate.rs); a refusal uses one of these when it can.
ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
ORDER_CLOSED = "ORDER_CLOSED"
WRONG_REQUEST_SUM = "WRONG_REQUEST_SUM"
TABLE_NOT_FOUND = "TABLE_NOT_FOUND"
WRONG_POSITIONS = "WRONG_POSITIONS"
PRODUCT_UNAVAILABLE = "PRODUCT_UNAVAILABLE"
BAD_REQUEST = "BAD_REQUEST"
POS_REJECTED = "POS_REJECTED"


@dataclasses.dataclass
class Command:
    """A claimed journal row. Money is in the columns (integer kopecks); the rest in `request`."""

    id: int
    rid: str
    operation: str
    bill_id: Optional[str]
    external_id: Optional[str]
    request: dict[str, Any]
    sum_kop: Optional[int]
    tips_kop: Optional[int]


@dataclasses.dataclass
class Outcome:
    """What the POS did: `applied` with a `result` (billId / newBillId / orderId), or refused
    with a sub-state and a message."""

    applied: bool
    result: dict[str, Any]
    substate: Optional[str] = None
    reason: Optional[str] = None

    @staticmethod
    def ok(**result: Any) -> "Outcome":
        return Outcome(True, result)

    @staticmethod
    def refuse(substate: str, message: str) -> "Outcome":
        return Outcome(False, {"substate": substate, "message": message}, substate, message)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)

    @staticmethod
    def from_json(text: str) -> "Outcome":
        return Outcome(**json.loads(text))


class Adapter:
    """What an integrator writes for a POS. Each apply method gets a claimed `Command` and
    returns an `Outcome`; it must make the change AND record `(cmd.rid, outcome)` in ONE POS
    transaction, so that `stored(cmd.rid)` finds it afterwards. A refusal records its outcome
    and changes nothing else."""

    def stored(self, rid: str) -> Optional[Outcome]:
        raise NotImplementedError

    def pay(self, cmd: Command) -> Outcome:
        raise NotImplementedError

    def split(self, cmd: Command) -> Outcome:
        raise NotImplementedError

    def create_order(self, cmd: Command) -> Outcome:
        raise NotImplementedError

    def show_message(self, cmd: Command) -> Outcome:
        raise NotImplementedError

    def update_mirror(self) -> None:
        """Make the mirror show what was applied (nothing to do when the mirror is views over
        the POS's own tables: the apply transaction did it)."""


# --------------------------------------------------------------------------- money helpers


def kop_to_decimal(kop: int) -> decimal.Decimal:
    """Integer kopecks as hryvnia, exactly: 38950 -> Decimal('389.50')."""
    return decimal.Decimal(kop).scaleb(-2)


def to_milli(v: Any) -> int:
    """A quantity from the request (a JSON number read as Decimal, or a decimal string) in
    thousandths, rounded half up: "1.5" -> 1500."""
    d = decimal.Decimal(str(v))
    return int((d * 1000).to_integral_value(rounding=decimal.ROUND_HALF_UP))


def ratio(v: int, num: int, den: int) -> int:
    """v * num / den rounded half up, in integers (non-negative values, den > 0)."""
    return (v * num * 2 + den) // (den * 2)


# --------------------------------------------------------------------------- the journal side


def now_ms() -> int:
    return int(time.time() * 1000)


COLS = "id, rid, operation, bill_id, external_id, request, sum_kop, tips_kop"


def _command(row: sqlite3.Row) -> Command:
    try:
        request = json.loads(row["request"], parse_float=decimal.Decimal)
    except ValueError:
        request = {}
    if not isinstance(request, dict):
        request = {}
    return Command(
        id=row["id"],
        rid=row["rid"],
        operation=row["operation"],
        bill_id=row["bill_id"],
        external_id=row["external_id"],
        request=request,
        sum_kop=row["sum_kop"],
        tips_kop=row["tips_kop"],
    )


class Applier:
    def __init__(self, journal_path: str, adapter: Adapter, busy_timeout_s: float = 5.0):
        # Autocommit mode: every transaction below is explicit and short.
        self.db = sqlite3.connect(journal_path, timeout=busy_timeout_s, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.adapter = adapter
        self.crash_after_apply: Optional[str] = None  # test hook: SIGKILL self after this rID

    def next_command(self) -> Optional[Command]:
        """A row this applier left `claimed` (a crash), else the oldest `pending`, claimed now.

        One write transaction: `BEGIN IMMEDIATE` takes the journal's write lock before the
        SELECT, so nothing can change the row between the SELECT and the UPDATE. The
        `status = 'pending'` guard and the row count check say so again rather than trust it."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute(
                f"SELECT {COLS} FROM commands WHERE status = 'claimed' ORDER BY id LIMIT 1"
            ).fetchone()
            if row is None:
                row = self.db.execute(
                    f"SELECT {COLS} FROM commands WHERE status = 'pending' ORDER BY id LIMIT 1"
                ).fetchone()
                if row is not None:
                    cur = self.db.execute(
                        "UPDATE commands SET status = 'claimed', claimed_at = ? "
                        "WHERE id = ? AND status = 'pending'",
                        (now_ms(), row["id"]),
                    )
                    if cur.rowcount != 1:
                        raise ClaimLost(f"journal row #{row['id']} changed under the write lock")
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # an I/O error may have rolled it back already
                self.db.execute("ROLLBACK")
            raise
        return _command(row) if row is not None else None

    def apply(self, cmd: Command) -> Outcome:
        stored = self.adapter.stored(cmd.rid)
        if stored is not None:
            log.info("%s rID=%s was applied before: acknowledging its stored outcome", cmd.operation, cmd.rid)
            return stored
        handler = {
            "payBill": self.adapter.pay,
            "splitOrder": self.adapter.split,
            "createOrderOnTable": self.adapter.create_order,
            "showMessage": self.adapter.show_message,
        }.get(cmd.operation)
        if handler is None:
            return Outcome.refuse(POS_REJECTED, f"unknown operation {cmd.operation}")
        return handler(cmd)

    def acknowledge(self, cmd: Command, o: Outcome) -> bool:
        cur = self.db.execute(
            "UPDATE commands SET status = ?, result = ?, substate = ?, reason = ?, applied_at = ? "
            "WHERE id = ? AND status = 'claimed'",
            (
                "applied" if o.applied else "rejected",
                json.dumps(o.result, ensure_ascii=False),
                None if o.applied else o.substate,
                None if o.applied else o.reason,
                now_ms(),
                cmd.id,
            ),
        )
        return cur.rowcount == 1

    def step(self) -> bool:
        """Claim (or finish), apply, update the mirror, acknowledge one command; False when
        there is nothing to do."""
        cmd = self.next_command()
        if cmd is None:
            return False
        o = self.apply(cmd)
        if self.crash_after_apply == cmd.rid:
            log.warning("test hook: killing this applier between apply and acknowledge of %s", cmd.rid)
            os.kill(os.getpid(), signal.SIGKILL)
        self.adapter.update_mirror()
        self.acknowledge(cmd, o)
        log.info(
            "%s rID=%s #%d %s%s",
            cmd.operation,
            cmd.rid,
            cmd.id,
            "applied" if o.applied else "rejected",
            "" if o.applied else f" {o.substate}: {o.reason}",
        )
        return True

    def run(self, poll_s: float = 0.2, once: bool = False) -> None:
        """Step until nothing is left, look again every `poll_s`. Waits out what passes by itself
        (`transient`); any other error is raised to the caller, which stops the applier."""
        last_error = None
        while True:
            try:
                while self.step():
                    pass
                last_error = None
            except sqlite3.Error as e:
                if not transient(e):
                    raise
                # A claimed row stays claimed and is finished (stored outcome first) at the next step.
                if str(e) != last_error:
                    log.warning("%s; trying again", describe(e))
                    last_error = str(e)
            if once:
                return
            time.sleep(poll_s)


class ClaimLost(sqlite3.DatabaseError):
    """The claim's UPDATE did not change the row its SELECT found in the same write transaction:
    the journal's locking is not working (a journal on a network file system, say)."""


def transient(e: sqlite3.Error) -> bool:
    """An error that passes by itself: a lock held longer than the busy timeout (by the agent, by
    a POS transaction), or a journal the agent has not created yet. Everything else (a syntax
    error, a column missing from a journal of another schema, a constraint, a corrupt file)
    fails the same way every time, so retrying would only hide it."""
    if not isinstance(e, sqlite3.OperationalError):
        return False
    msg = str(e)
    # SQLITE_BUSY is "database is locked", SQLITE_LOCKED "database table is locked".
    return msg.endswith("is locked") or msg == "no such table: commands"


def describe(e: sqlite3.Error) -> str:
    if str(e) == "no such table: commands":
        return "no journal yet (no table commands): is the agent running, with this journal?"
    return str(e)


def load_adapter(spec: str, args: argparse.Namespace) -> Adapter:
    module, _, cls = spec.partition(":")
    return getattr(importlib.import_module(module), cls).from_args(args)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--journal", required=True, help="the agent's journal.sqlite")
    p.add_argument("--pos", required=True, help="the POS database")
    p.add_argument("--mirror", help="a separate mirror to sync before each acknowledgement "
                   "(default: the mirror is views in the POS database)")
    p.add_argument("--adapter", default="kasapro.adapter:KasaProAdapter", help="module:Class")
    p.add_argument("--poll-ms", type=int, default=200)
    p.add_argument("--once", action="store_true", help="apply what is there, then exit")
    p.add_argument("--crash-after-apply", metavar="RID", help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
        stream=sys.stderr,
    )
    applier = Applier(args.journal, load_adapter(args.adapter, args))
    applier.crash_after_apply = args.crash_after_apply
    print("applier: ready", file=sys.stderr, flush=True)
    try:
        applier.run(args.poll_ms / 1000, args.once)
    except sqlite3.Error as e:
        print(
            f"applier: stopped: {type(e).__name__}: {e} (journal {args.journal}, POS {args.pos}; "
            f"SQLite {sqlite3.sqlite_version}). Retrying cannot fix this; a claimed row is "
            "finished when the applier runs again.",
            file=sys.stderr,
            flush=True,
        )
        return 1
    return 0


if __name__ == "__main__":
    # Run as the module `applier`, the one adapters import, not as a second copy (`__main__`).
    import applier as _self

    sys.exit(_self.main())
