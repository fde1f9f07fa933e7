-- The first schema of a bureau's ledger.
-- Conventions: money is INTEGER cents (*_cents), times are INTEGER Unix milliseconds UTC (*_at_ms),
-- calendar days are TEXT 'YYYY-MM-DD' (*_on), booleans are INTEGER 0/1.

CREATE TABLE persons (
    certno        TEXT    NOT NULL PRIMARY KEY,
    psn_name      TEXT    NOT NULL,
    insu_admdvs   TEXT    NOT NULL,
    insutype      INTEGER NOT NULL,
    psn_insu_stas INTEGER NOT NULL,
    fst_insu_ym   TEXT    NOT NULL,
    retired       INTEGER NOT NULL CHECK (retired IN (0, 1)),
    arrears_cents INTEGER NOT NULL,
    deemed_months INTEGER NOT NULL CHECK (deemed_months >= 0),
    periods_json  TEXT    NOT NULL,
    flow          TEXT    NOT NULL
);
-- sample_persons: persons of one flow in ID-number order.
CREATE INDEX persons_by_flow ON persons (flow, certno);

-- Cached balances, updated in the same transaction as each posting. SQLite turns an integer that
-- overflows into a REAL; the type check makes that an error instead of a silently rounded balance.
CREATE TABLE accounts (
    account       TEXT    NOT NULL PRIMARY KEY,
    balance_cents INTEGER NOT NULL CHECK (typeof(balance_cents) = 'integer')
) WITHOUT ROWID;

-- The journal: append-only, one row per money movement.
CREATE TABLE postings (
    id           INTEGER PRIMARY KEY,
    from_account TEXT    NOT NULL,
    to_account   TEXT    NOT NULL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    transfer_id  TEXT,
    reason       TEXT    NOT NULL,
    at_ms        INTEGER NOT NULL,
    CHECK (from_account <> to_account)
);
CREATE INDEX postings_by_transfer ON postings (transfer_id) WHERE transfer_id IS NOT NULL;

CREATE TABLE transfers (
    transfer_id          TEXT    NOT NULL PRIMARY KEY,
    certno               TEXT    NOT NULL,
    state                TEXT    NOT NULL,
    open                 INTEGER NOT NULL CHECK (open IN (0, 1)),
    whole_process_due_on TEXT,
    created_at_ms        INTEGER NOT NULL,
    updated_at_ms        INTEGER NOT NULL,
    document             TEXT    NOT NULL
);
CREATE INDEX transfers_by_certno ON transfers (certno, created_at_ms);
-- Architecture Invariant: a person has at most one open transfer, enforced by the database.
CREATE UNIQUE INDEX transfers_one_open_per_certno ON transfers (certno) WHERE open = 1;
-- open_transfers_due_before: only open transfers are indexed, so the index stays small.
CREATE INDEX transfers_open_by_due ON transfers (whole_process_due_on) WHERE open = 1;
CREATE INDEX transfers_by_state ON transfers (state);

CREATE TABLE transfer_events (
    transfer_id TEXT    NOT NULL REFERENCES transfers (transfer_id),
    seq         INTEGER NOT NULL CHECK (seq > 0),
    at_ms       INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    from_state  TEXT    NOT NULL,
    to_state    TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    PRIMARY KEY (transfer_id, seq)
) WITHOUT ROWID;

-- AUTOINCREMENT: an acknowledged (deleted) message's id is never reused, so a dispatcher holding
-- a stale id can never acknowledge a newer message by mistake.
CREATE TABLE outbox (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    transfer_id        TEXT    NOT NULL,
    kind               TEXT    NOT NULL,
    peer               TEXT    NOT NULL,
    msgid              TEXT    NOT NULL UNIQUE,
    payload            BLOB    NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER NOT NULL,
    created_at_ms      INTEGER NOT NULL,
    last_error         TEXT
);
CREATE INDEX outbox_by_due ON outbox (next_attempt_at_ms, id);

CREATE TABLE processed_messages (
    msgid       TEXT    NOT NULL PRIMARY KEY,
    body_sha256 BLOB    NOT NULL,
    answer      BLOB    NOT NULL,
    at_ms       INTEGER NOT NULL
);

CREATE TABLE sequences (
    name  TEXT    NOT NULL PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE settings (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE certificates (
    code         TEXT    NOT NULL PRIMARY KEY,
    certno       TEXT    NOT NULL,
    body_json    TEXT    NOT NULL,
    issued_at_ms INTEGER NOT NULL
);
CREATE INDEX certificates_by_certno ON certificates (certno);
