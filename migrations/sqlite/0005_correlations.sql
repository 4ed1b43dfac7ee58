-- Correlation discovery (docs/correlations.md). The same DDL runs on PostgreSQL
-- (migrations/postgres/0005_correlations.sql): the worker and the API reach it through sqlx `Any`.

-- One athlete's latest analysis for every window, and the log position it reflects.
CREATE TABLE correlation_snapshots (
    athlete_id      TEXT   PRIMARY KEY,
    position        BIGINT NOT NULL,
    computed_at_us  BIGINT NOT NULL,
    analyses_json   TEXT   NOT NULL
);

-- Requests to recompute now (POST /v1/correlations/recompute).
CREATE TABLE correlation_jobs (
    job_id          TEXT   PRIMARY KEY,
    athlete_id      TEXT   NOT NULL,
    state           TEXT   NOT NULL,
    requested_at_us BIGINT NOT NULL,
    started_at_us   BIGINT,
    finished_at_us  BIGINT,
    position        BIGINT,
    error           TEXT
);
CREATE INDEX correlation_jobs_athlete ON correlation_jobs (athlete_id, state);
CREATE INDEX correlation_jobs_state ON correlation_jobs (state, requested_at_us);

-- Which worker computes an athlete now: a row per athlete, taken over once `until_us` passes,
-- so any number of worker processes share the work and a crashed one blocks nobody for long.
CREATE TABLE correlation_leases (
    athlete_id  TEXT   PRIMARY KEY,
    owner       TEXT   NOT NULL,
    until_us    BIGINT NOT NULL
);
