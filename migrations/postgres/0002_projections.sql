-- Projection bookkeeping. The same DDL runs on SQLite (migrations/sqlite/0002_projections.sql):
-- the projector engine talks to both through one SQL dialect.

-- Which generation of each projection's tables serves reads, and which (if any) is being built.
CREATE TABLE projection_state (
    name                TEXT PRIMARY KEY,
    active_generation   BIGINT NOT NULL,
    active_version      BIGINT NOT NULL,
    building_generation BIGINT,
    building_version    BIGINT,
    updated_at_us       BIGINT NOT NULL
);

-- Written in the same transaction as the read-model rows the batch produced.
CREATE TABLE projection_checkpoints (
    name                 TEXT   NOT NULL,
    generation           BIGINT NOT NULL,
    tx                   BIGINT NOT NULL,
    position             BIGINT NOT NULL,
    events_applied       BIGINT NOT NULL,
    -- Side effects stay off until the generation passes this point (the log head when it was
    -- created), so a first build or a rebuild never re-sends mail or integration events.
    gate_tx              BIGINT NOT NULL,
    gate_pos             BIGINT NOT NULL,
    updated_at_us        BIGINT NOT NULL,
    PRIMARY KEY (name, generation)
);

-- Events a projection could not apply: recorded, skipped, shown by `projections list`.
CREATE TABLE projection_skipped (
    name          TEXT   NOT NULL,
    generation    BIGINT NOT NULL,
    position      BIGINT NOT NULL,
    event_id      TEXT   NOT NULL,
    event_type    TEXT   NOT NULL,
    error         TEXT   NOT NULL,
    skipped_at_us BIGINT NOT NULL,
    PRIMARY KEY (name, generation, position)
);

-- One runner per projection across processes: a lease renewed by its holder.
CREATE TABLE projection_leases (
    name          TEXT   PRIMARY KEY,
    owner         TEXT   NOT NULL,
    expires_at_us BIGINT NOT NULL
);
