-- Admin actions that are not domain events (suspensions, views of an athlete's history) are
-- security-log rows, and each names the account that acted: `actor_id` is NULL for the
-- account's own actions (a login) and for the system (the CLI, unless it is given --actor).
ALTER TABLE security_log ADD COLUMN actor_id TEXT;
CREATE INDEX security_log_at ON security_log (at_us);

-- An impersonation session: an admin acting as the account, for at most 15 minutes, with no
-- refresh token. Every request in it is marked, and every event it appends carries the admin.
ALTER TABLE auth_sessions ADD COLUMN impersonator_id TEXT;
