-- The registry's tables in PostgreSQL: the SQLite schema in native types (TIMESTAMPTZ,
-- JSON, an identity column), with the audit log made append-only by a trigger.
-- Cards and lineage are JSON, not JSONB, so they read back with their keys in the order
-- written, as from SQLite.

-- One row per model; latest_version is the counter that numbers versions. Writers of a
-- model hold a transaction-scoped advisory lock on its name, so numbering never gaps or
-- repeats and read-then-write changes (promote, rollback) never interleave.
CREATE TABLE models (
    name TEXT PRIMARY KEY,
    latest_version BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE model_versions (
    model TEXT NOT NULL REFERENCES models (name),
    version BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('registered', 'rejected')),
    artifact_key TEXT NOT NULL,
    artifact_sha256 TEXT NOT NULL,
    artifact_size BIGINT NOT NULL,
    card JSON NOT NULL,
    lineage JSON NOT NULL,
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
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (model, name),
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
);

-- Append-only: the trigger below refuses every UPDATE and DELETE, and TRUNCATE.
CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    model TEXT NOT NULL,
    action TEXT NOT NULL,
    alias TEXT,
    from_version BIGINT,
    to_version BIGINT,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL
);

CREATE INDEX audit_log_model ON audit_log (model, id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: rows cannot be %', lower(TG_OP) || 'd';
END;
$$;

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
