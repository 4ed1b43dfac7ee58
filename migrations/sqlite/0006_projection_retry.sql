-- What an operator did about a skipped (poison) event: `applied` by `stridelog projections
-- retry <name> <position>` once the cause was fixed, or `dismissed` with `--dismiss` when the
-- event can never apply. Until then the event is unresolved and `/health` answers 503.
ALTER TABLE projection_skipped ADD COLUMN resolved_at_us BIGINT;
ALTER TABLE projection_skipped ADD COLUMN resolution TEXT;
