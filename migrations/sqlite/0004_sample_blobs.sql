-- Activity files as imported (see migrations/postgres/0004_sample_blobs.sql).
CREATE TABLE sample_blobs (
    blob_id        TEXT    PRIMARY KEY,
    athlete_id     TEXT    NOT NULL,
    format         TEXT    NOT NULL,
    sha256         TEXT    NOT NULL,
    byte_len       INTEGER NOT NULL,
    sealed         BLOB    NOT NULL,
    created_at_us  INTEGER NOT NULL
);
CREATE INDEX sample_blobs_athlete ON sample_blobs (athlete_id);
