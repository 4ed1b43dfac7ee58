-- Activity files as imported, so metrics can be recomputed when a formula changes without
-- asking the athlete to upload again. Sealed with the athlete's data key (AES-256-GCM, the
-- blob id as associated data): erasure destroys that key and every blob with it.
CREATE TABLE sample_blobs (
    blob_id     uuid        PRIMARY KEY,
    athlete_id  uuid        NOT NULL,
    format      text        NOT NULL,
    sha256      text        NOT NULL,
    byte_len    bigint      NOT NULL,
    sealed      bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sample_blobs_athlete ON sample_blobs (athlete_id);
