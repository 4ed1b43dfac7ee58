-- The event store. One table holds every stream; the global log is this table read in
-- (transaction_id, global_position) order below the oldest running transaction (see
-- docs/architecture.md, "Why the log is gap-safe").

CREATE TABLE events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction. Readers stop below pg_snapshot_xmin(pg_current_snapshot()), so an
    -- event whose transaction is still open can never be skipped.
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL UNIQUE,
    stream_type     text        NOT NULL,
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    athlete_id      uuid,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    -- Ids and codes only (actor, correlation, causation, idempotency key): readable after erasure.
    metadata        jsonb       NOT NULL,
    -- JSON bytes, or, when `encrypted`, a sealed blob under the athlete's data key.
    payload         bytea       NOT NULL,
    encrypted       boolean     NOT NULL,
    CONSTRAINT events_stream_version UNIQUE (stream_type, stream_id, stream_version),
    CONSTRAINT events_personal_has_athlete CHECK (NOT encrypted OR athlete_id IS NOT NULL)
);

CREATE INDEX events_log_order ON events (transaction_id, global_position);
CREATE INDEX events_by_athlete ON events (athlete_id, global_position) WHERE athlete_id IS NOT NULL;
CREATE INDEX events_by_time ON events (recorded_at);

-- One data key per athlete, wrapped by the master key. Erasure sets wrapped_key to NULL.
CREATE TABLE athlete_keys (
    athlete_id   uuid PRIMARY KEY,
    wrapped_key  bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz,
    CONSTRAINT athlete_keys_destroyed CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);

-- Written in the same transaction as the events a command appended.
CREATE TABLE idempotency_keys (
    scope        text        NOT NULL,
    key          text        NOT NULL,
    request_hash text        NOT NULL,
    outcome      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
