-- Admin actions that are not domain events (suspensions, views of an athlete's history) are
-- security-log rows, and each names the account that acted: `actor_id` is NULL for the
-- account's own actions (a login) and for the system (the CLI, unless it is given --actor).
ALTER TABLE security_log ADD COLUMN actor_id TEXT;
CREATE INDEX security_log_at ON security_log (at_us);

-- An impersonation session: an admin acting as the account, for at most 15 minutes, with no
-- refresh token. Every request in it is marked, and every event it appends carries the admin.
ALTER TABLE auth_sessions ADD COLUMN impersonator_id TEXT;

-- Exports an athlete asked for (POST /v1/me/export), built by a worker. The archive itself is
-- a sample blob sealed with the athlete's data key, so erasure makes it unreadable with the
-- rest; this row holds its state, progress and the current download token's hash only.
CREATE TABLE export_jobs (
    job_id              TEXT   PRIMARY KEY,
    athlete_id          TEXT   NOT NULL,
    state               TEXT   NOT NULL,
    requested_at_us     BIGINT NOT NULL,
    started_at_us       BIGINT,
    finished_at_us      BIGINT,
    progress_done       BIGINT NOT NULL DEFAULT 0,
    progress_total      BIGINT NOT NULL DEFAULT 0,
    blob_id             TEXT,
    byte_len            BIGINT,
    error               TEXT,
    token_hash          TEXT,
    token_expires_at_us BIGINT,
    token_used_at_us    BIGINT
);
CREATE INDEX export_jobs_athlete ON export_jobs (athlete_id, state);
-- One open export per athlete, even when two requests race.
CREATE UNIQUE INDEX export_jobs_open ON export_jobs (athlete_id) WHERE state IN ('queued', 'running');
CREATE INDEX export_jobs_state ON export_jobs (state, requested_at_us);
CREATE UNIQUE INDEX export_jobs_token ON export_jobs (token_hash);
