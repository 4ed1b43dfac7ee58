-- Identity: credentials, sessions, refresh tokens, login throttling and the security log.
-- Not event-sourced: a password hash must never sit in an append-only log, sessions are
-- short-lived operational state, and throttling counters change on every failed login. The
-- security-relevant facts that matter for an athlete's history (registration, role changes,
-- coach grants) are events; the rest is in security_log. Same DDL on both stores, apart from
-- the identity column.

-- One row per account. `status` is 'pending' between the row's insert and the append of
-- AthleteRegistered, so a crash in between leaves a row that registration finishes on retry.
CREATE TABLE auth_accounts (
    account_id              TEXT PRIMARY KEY,
    email                   TEXT NOT NULL UNIQUE,
    password_hash           TEXT NOT NULL,
    role                    TEXT NOT NULL,
    status                  TEXT NOT NULL,
    created_at_us           BIGINT NOT NULL,
    password_changed_at_us  BIGINT NOT NULL
);

-- A session is one refresh-token family: one login on one device.
CREATE TABLE auth_sessions (
    session_id      TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL,
    created_at_us   BIGINT NOT NULL,
    expires_at_us   BIGINT NOT NULL,
    revoked_at_us   BIGINT,
    revoked_reason  TEXT
);
CREATE INDEX auth_sessions_account ON auth_sessions (account_id);

-- Only SHA-256 of each refresh token is kept: a copy of this table cannot mint sessions.
CREATE TABLE auth_refresh_tokens (
    token_hash      TEXT PRIMARY KEY,
    session_id      TEXT NOT NULL,
    issued_at_us    BIGINT NOT NULL,
    expires_at_us   BIGINT NOT NULL,
    used_at_us      BIGINT
);
CREATE INDEX auth_refresh_tokens_session ON auth_refresh_tokens (session_id);

-- Failed-login counters, keyed by client, by account and by (account, client).
CREATE TABLE auth_throttle (
    key               TEXT PRIMARY KEY,
    failures          BIGINT NOT NULL,
    blocked_until_us  BIGINT NOT NULL,
    updated_at_us     BIGINT NOT NULL
);

-- Clients (keyed hashes of addresses) that have logged in to an account: the per-account
-- throttle does not apply to them, so a stranger's failures cannot lock the owner out.
CREATE TABLE auth_known_clients (
    account_id       TEXT NOT NULL,
    client           TEXT NOT NULL,
    last_success_us  BIGINT NOT NULL,
    PRIMARY KEY (account_id, client)
);

-- Security-relevant actions that are not domain events. `client` is a keyed hash, never an
-- address; `detail` is a code, never free text.
CREATE TABLE security_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_us       BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    account_id  TEXT,
    client      TEXT,
    detail      TEXT
);
CREATE INDEX security_log_account ON security_log (account_id, at_us);
