#!/usr/bin/env python3
"""The mirror as a sync job: КасаПро's tables copied into a separate mirror file.

The mirror file is created by `expirenza-agent init-mirror PATH` (the contract's tables, WAL).
Each pass runs the SELECTs of mirror_views.sql against the POS database (attached read-only
in spirit: nothing writes to it here) and replaces the mirror's rows **in one transaction**,
and only when the POS database changed since the last pass (`PRAGMA data_version`), so the
agent's kept answers stay valid between changes (docs/mirror.md, "How often to write").

    python3 contrib/pos/kasapro/mirror_sync.py --pos pos.sqlite --mirror mirror.sqlite [--every-ms 2000]

The applier (`applier.py --mirror …`) runs a pass after each command it applies and before it
acknowledges, as docs/journal.md requires.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The mirror's tables, in the order they are written.
TABLES = [
    "halls", "tables", "orders", "order_positions", "order_discounts", "staff", "categories",
    "menu_groups", "menu_items", "modifiers", "group_modifiers", "group_modifier_children",
    "menu_item_group_modifiers", "menu_item_modifiers", "stop_list", "terminal_groups",
]


class MirrorSync:
    def __init__(self, pos_path: str, mirror_path: str):
        self.db = sqlite3.connect(mirror_path, timeout=5.0, isolation_level=None)
        if not self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'orders'"
        ).fetchone():
            raise SystemExit(f"{mirror_path} has no mirror tables: run `expirenza-agent init-mirror {mirror_path}`")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("ATTACH DATABASE ? AS pos", (pos_path,))
        # The views' SELECTs as TEMP views (a TEMP view may read an attached database) named
        # src_<table>; their unqualified pos_* tables resolve to the attached POS database.
        views = (HERE / "mirror_views.sql").read_text(encoding="utf-8")
        views = re.sub(r"CREATE VIEW IF NOT EXISTS (\w+) AS", r"CREATE TEMP VIEW IF NOT EXISTS src_\1 AS", views)
        self.db.executescript(views)
        self.columns = {}
        for t in TABLES:
            mirror_cols = [r[1] for r in self.db.execute(f"PRAGMA main.table_info({t})")]
            src_cols = {r[1] for r in self.db.execute(f"PRAGMA temp.table_info(src_{t})")}
            self.columns[t] = [c for c in mirror_cols if c in src_cols]
        self.last_version = None

    def run(self, force: bool = False) -> bool:
        """One pass; False when the POS database has not changed since the last one."""
        version = self.db.execute("PRAGMA pos.data_version").fetchone()[0]
        if version == self.last_version and not force:
            return False
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for t in TABLES:
                cols = ", ".join(self.columns[t])
                self.db.execute(f"DELETE FROM main.{t}")
                self.db.execute(f"INSERT INTO main.{t} ({cols}) SELECT {cols} FROM temp.src_{t}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.last_version = version
        return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pos", required=True)
    p.add_argument("--mirror", required=True)
    p.add_argument("--every-ms", type=int, default=2000)
    p.add_argument("--once", action="store_true")
    args = p.parse_args(argv)
    sync = MirrorSync(args.pos, args.mirror)
    while True:
        sync.run()
        if args.once:
            return 0
        time.sleep(args.every_ms / 1000)


if __name__ == "__main__":
    sys.exit(main())
