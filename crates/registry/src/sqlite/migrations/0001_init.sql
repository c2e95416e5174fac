-- The registry's tables. Portable SQL apart from the audit id column and the triggers,
-- which a Postgres script spells as an identity column and a trigger function.
-- Timestamps are RFC 3339 UTC text with microseconds (e.g. 2026-01-02T03:04:05.000006Z).

-- One row per model; latest_version is the counter that numbers versions, incremented
-- under the write lock (a row lock in Postgres) so numbering never gaps or repeats.
CREATE TABLE models (
    name TEXT PRIMARY KEY,
    latest_version BIGINT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE model_versions (
    model TEXT NOT NULL REFERENCES models (name),
    version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('registered', 'rejected')),
    artifact_key TEXT NOT NULL,
    artifact_sha256 TEXT NOT NULL,
    artifact_size BIGINT NOT NULL,
    card TEXT NOT NULL,
    lineage TEXT NOT NULL,
    PRIMARY KEY (model, version)
);

CREATE TABLE version_tags (
    model TEXT NOT NULL,
    version BIGINT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model, version, key),
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
);

CREATE TABLE aliases (
    model TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (model, name),
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
);

-- Append-only: the triggers below refuse every UPDATE and DELETE.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    model TEXT NOT NULL,
    action TEXT NOT NULL,
    alias TEXT,
    from_version BIGINT,
    to_version BIGINT,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL
);

CREATE INDEX audit_log_model ON audit_log (model, id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: rows cannot be updated');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: rows cannot be deleted');
END;
