#!/usr/bin/env python3
"""Create a КасаПро database: the POS's tables, optionally the mirror's views over them (so the
agent's `mirror_path` can point at this file) and a small demo restaurant.

    python3 contrib/pos/kasapro/pos_db.py --pos pos.sqlite --views --demo
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def create(path: str, views: bool = False, demo: bool = False) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript((HERE / "schema.sql").read_text(encoding="utf-8"))
    if views:
        db.executescript((HERE / "mirror_views.sql").read_text(encoding="utf-8"))
    if demo:
        db.executescript("BEGIN;" + (HERE / "demo.sql").read_text(encoding="utf-8") + "COMMIT;")
    db.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pos", required=True, help="the database file (created if missing)")
    p.add_argument("--views", action="store_true", help="also create the mirror's views in it")
    p.add_argument("--demo", action="store_true", help="fill in the demo restaurant")
    args = p.parse_args(argv)
    create(args.pos, args.views, args.demo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
