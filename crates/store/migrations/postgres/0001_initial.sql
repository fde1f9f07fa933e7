-- The first PostgreSQL schema of a bureau's ledger: the SQLite schema's tables and rules, in
-- PostgreSQL's types. Conventions: money is BIGINT cents (*_cents), times are BIGINT Unix
-- milliseconds UTC (*_at_ms, as in SQLite, so rows round-trip exactly), calendar days are DATE
-- (*_on). Text keys use the "C" collation, so they sort byte-wise as in SQLite whatever the
-- database's locale.

CREATE TABLE persons (
    certno        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    psn_name      TEXT     NOT NULL,
    insu_admdvs   TEXT     NOT NULL,
    insutype      INTEGER  NOT NULL CHECK (insutype BETWEEN 0 AND 65535),
    psn_insu_stas SMALLINT NOT NULL CHECK (psn_insu_stas BETWEEN 0 AND 255),
    fst_insu_ym   TEXT     NOT NULL,
    retired       BOOLEAN  NOT NULL,
    arrears_cents BIGINT   NOT NULL,
    deemed_months BIGINT   NOT NULL CHECK (deemed_months BETWEEN 0 AND 4294967295),
    periods_json  TEXT     NOT NULL,
    flow          TEXT COLLATE "C" NOT NULL
);
CREATE INDEX persons_by_flow ON persons (flow, certno);

-- Cached balances of person accounts only, updated (row-locked) in the same transaction as each
-- posting; a person account never goes negative. The other accounts (transit:, fund:, bank:)
-- are summed from the journal when read: every posting touches one of them, and a cached row
-- for each would be a lock every concurrent writer queues on.
CREATE TABLE accounts (
    account       TEXT COLLATE "C" NOT NULL PRIMARY KEY CHECK (account LIKE 'person:%'),
    balance_cents BIGINT NOT NULL CHECK (balance_cents >= 0)
);

-- The journal: append-only, one row per money movement.
CREATE TABLE postings (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    from_account TEXT COLLATE "C" NOT NULL,
    to_account   TEXT COLLATE "C" NOT NULL,
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    transfer_id  TEXT COLLATE "C",
    reason       TEXT COLLATE "C" NOT NULL,
    at_ms        BIGINT NOT NULL,
    CHECK (from_account <> to_account)
);
CREATE INDEX postings_by_transfer ON postings (transfer_id) WHERE transfer_id IS NOT NULL;
CREATE INDEX postings_from_other ON postings (from_account) WHERE from_account NOT LIKE 'person:%';
CREATE INDEX postings_to_other ON postings (to_account) WHERE to_account NOT LIKE 'person:%';

CREATE TABLE transfers (
    transfer_id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    certno               TEXT COLLATE "C" NOT NULL,
    state                TEXT COLLATE "C" NOT NULL,
    open                 BOOLEAN NOT NULL,
    whole_process_due_on DATE,
    created_at_ms        BIGINT NOT NULL,
    updated_at_ms        BIGINT NOT NULL,
    document             TEXT NOT NULL
);
CREATE INDEX transfers_by_certno ON transfers (certno, created_at_ms);
-- Architecture Invariant: a person has at most one open transfer, enforced by the database.
CREATE UNIQUE INDEX transfers_one_open_per_certno ON transfers (certno) WHERE open;
CREATE INDEX transfers_open_by_due ON transfers (whole_process_due_on) WHERE open;

CREATE TABLE transfer_events (
    transfer_id TEXT COLLATE "C" NOT NULL REFERENCES transfers (transfer_id),
    seq         BIGINT NOT NULL CHECK (seq BETWEEN 1 AND 4294967295),
    at_ms       BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    from_state  TEXT   NOT NULL,
    to_state    TEXT   NOT NULL,
    detail      TEXT   NOT NULL,
    attempt     BIGINT NOT NULL CHECK (attempt BETWEEN 0 AND 4294967295),
    PRIMARY KEY (transfer_id, seq)
);

-- An identity column: an acknowledged (deleted) message's id is never reused. claimed_until_ms
-- and claimed_by are the lease of the replica sending the message (0 and NULL: unclaimed).
CREATE TABLE outbox (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id        TEXT COLLATE "C" NOT NULL,
    kind               TEXT COLLATE "C" NOT NULL,
    peer               TEXT   NOT NULL,
    msgid              TEXT COLLATE "C" NOT NULL UNIQUE,
    payload            BYTEA  NOT NULL,
    attempts           BIGINT NOT NULL DEFAULT 0 CHECK (attempts BETWEEN 0 AND 4294967295),
    next_attempt_at_ms BIGINT NOT NULL,
    created_at_ms      BIGINT NOT NULL,
    last_error         TEXT,
    claimed_until_ms   BIGINT NOT NULL DEFAULT 0,
    claimed_by         TEXT
);
CREATE INDEX outbox_by_due ON outbox (next_attempt_at_ms, id);
CREATE INDEX outbox_by_transfer ON outbox (transfer_id, kind);

CREATE TABLE processed_messages (
    msgid       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    body_sha256 BYTEA  NOT NULL,
    answer      BYTEA  NOT NULL,
    at_ms       BIGINT NOT NULL
);

CREATE TABLE sequences (
    name  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);

CREATE TABLE settings (
    key   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE certificates (
    code         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    certno       TEXT COLLATE "C" NOT NULL,
    body_json    TEXT   NOT NULL,
    issued_at_ms BIGINT NOT NULL
);
CREATE INDEX certificates_by_certno ON certificates (certno);

-- Leases of jobs only one replica may run at a time (the timers' sweep): held by `holder`
-- until `until_ms`, taken over by another replica once expired.
CREATE TABLE leases (
    name     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    holder   TEXT   NOT NULL,
    until_ms BIGINT NOT NULL
);
