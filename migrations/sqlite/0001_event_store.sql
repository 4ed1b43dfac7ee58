-- The embedded event store. SQLite serialises writers (every append is BEGIN IMMEDIATE), so
-- positions are assigned in commit order and the log needs no transaction horizon.

CREATE TABLE events (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL UNIQUE,
    stream_type     TEXT    NOT NULL,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
    event_type      TEXT    NOT NULL,
    event_version   TEXT    NOT NULL,
    athlete_id      TEXT,
    -- Microseconds since the Unix epoch, UTC.
    recorded_at_us  INTEGER NOT NULL,
    metadata        TEXT    NOT NULL,
    payload         BLOB    NOT NULL,
    encrypted       INTEGER NOT NULL CHECK (encrypted IN (0, 1)),
    UNIQUE (stream_type, stream_id, stream_version),
    CHECK (encrypted = 0 OR athlete_id IS NOT NULL)
);

CREATE INDEX events_by_athlete ON events (athlete_id, global_position) WHERE athlete_id IS NOT NULL;
CREATE INDEX events_by_time ON events (recorded_at_us);

CREATE TABLE athlete_keys (
    athlete_id      TEXT PRIMARY KEY,
    wrapped_key     BLOB,
    created_at_us   INTEGER NOT NULL,
    destroyed_at_us INTEGER,
    CHECK ((wrapped_key IS NULL) = (destroyed_at_us IS NOT NULL))
);

CREATE TABLE idempotency_keys (
    scope         TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    outcome       TEXT    NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at_us);
