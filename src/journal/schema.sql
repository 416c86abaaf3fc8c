-- expirenza-agent command journal. Documented in docs/journal.md.
-- The agent writes commands; the POS claims, applies and acknowledges them. Times are unix ms.

CREATE TABLE IF NOT EXISTS commands (
    id          INTEGER PRIMARY KEY,
    rid         TEXT NOT NULL UNIQUE,            -- the cloud's rID: one row per request, ever
    operation   TEXT NOT NULL,                   -- payBill, splitOrder, createOrderOnTable, showMessage
    bill_id     TEXT,
    external_id TEXT,                            -- createOrderOnTable externalId
    request     TEXT NOT NULL,                   -- the full request frame as received
    sum_kop     INTEGER,                         -- payBill sum, splitOrder controlSum, order total
    tips_kop    INTEGER,
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'claimed', 'applied', 'rejected', 'review')),
    substate    TEXT,                            -- the FAIL sub-state answered (review) or set by the POS (rejected)
    reason      TEXT,                            -- human-readable why (review, rejected)
    result      TEXT,                            -- JSON written by the POS on applied/rejected
    dup_of      INTEGER REFERENCES commands(id), -- a repeat payment for a bill already being paid
    created_at  INTEGER NOT NULL,
    claimed_at  INTEGER,
    applied_at  INTEGER
);
CREATE INDEX IF NOT EXISTS commands_by_status ON commands(status, id);
CREATE INDEX IF NOT EXISTS commands_by_created ON commands(created_at);
-- At most one live payment per bill, and one live order per externalId, enforced by SQLite.
CREATE UNIQUE INDEX IF NOT EXISTS one_live_payment_per_bill ON commands(bill_id)
    WHERE operation = 'payBill' AND status IN ('pending', 'claimed', 'applied');
CREATE UNIQUE INDEX IF NOT EXISTS one_live_order_per_external_id ON commands(external_id)
    WHERE operation = 'createOrderOnTable' AND status IN ('pending', 'claimed', 'applied');

-- setSettings: the latest wins (one row).
CREATE TABLE IF NOT EXISTS settings (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    rid        TEXT NOT NULL,
    json       TEXT NOT NULL,                    -- the full setSettings frame
    updated_at INTEGER NOT NULL
);
