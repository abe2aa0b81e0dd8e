-- The pipeline store: what the upstream agents write and the deploy gates read.
--
-- validation_runs      written by the ValidationAgent (agent_005), one row per test run
-- compliance_verdicts  written by the ComplianceValidator (agent_002), one or more per run;
--                      the newest (decided_at, then id) is the one in force, so a verdict is
--                      revoked by writing a newer `non_compliant` one, never by an update
-- sqlagent_migrations  written by the SQLAgent (agent_004), one row per migration it produced:
--                      the V file and its undo script, by file name and sha256 (the same sha256
--                      as `artifact_digests` below: of the file's bytes, lowercase hex)
--
-- `artifact_digests` holds what was validated/approved, in the shape of
-- orchestrator.artifacts.ArtifactDigests.to_dict():
--   {"migrations": {"<workspace-relative path>": "<sha256 hex>", ...},
--    "modules":    {"<workspace-relative path>": "<tree digest hex>", ...},
--    "image": "<name>@sha256:<hex>" | "<name>:<tag>" | null,
--    "image_pinned": true | false}
-- In a verdict, `migrations` is the set of approved migrations: the only files the
-- migration runner may run.
--
-- Idempotent: safe to load on every start. The deploy orchestrator only ever reads these
-- tables (in a READ ONLY transaction).

CREATE TABLE IF NOT EXISTS validation_runs (
    id               text        PRIMARY KEY,
    status           text        NOT NULL
                     CHECK (status IN ('pending', 'running', 'passed', 'failed', 'error', 'cancelled')),
    agent_id         text        NOT NULL DEFAULT 'agent_005',
    artifact_digests jsonb       NOT NULL
                     CHECK (jsonb_typeof(artifact_digests) = 'object'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    CHECK (finished_at IS NOT NULL OR status IN ('pending', 'running'))
);

CREATE TABLE IF NOT EXISTS compliance_verdicts (
    id                text        PRIMARY KEY DEFAULT gen_random_uuid()::text,
    validation_run_id text        NOT NULL REFERENCES validation_runs (id),
    validator_id      text        NOT NULL DEFAULT 'agent_002',
    verdict           text        NOT NULL
                      CHECK (verdict IN ('compliant', 'non_compliant', 'needs_review')),
    artifact_digests  jsonb       NOT NULL
                      CHECK (jsonb_typeof(artifact_digests) = 'object'),
    reason            text,
    decided_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS compliance_verdicts_run_decided
    ON compliance_verdicts (validation_run_id, decided_at DESC, id DESC);

-- The SQLAgent's record of each migration it produced. The gates accept a migration file (V or
-- U) only when a row here carries exactly its sha256 and every row with that sha256 comes from
-- agent_004 (`agent_id` is kept, not constrained, so another agent's claim is seen and refused);
-- the runs vouching for a deploy must have produced nothing its validation run and verdict do
-- not cover. A revised migration is a new row (a new SQLAgent run), never an update.
-- `undo_filename`/`undo_sha256` are both NULL for a migration without an undo script.
CREATE TABLE IF NOT EXISTS sqlagent_migrations (
    id              text        PRIMARY KEY DEFAULT gen_random_uuid()::text,
    sqlagent_run_id text        NOT NULL,
    agent_id        text        NOT NULL DEFAULT 'agent_004',
    filename        text        NOT NULL CHECK (filename ~ '^V[0-9]+([._][0-9]+)*__.+[.]sql$'),
    version         text        NOT NULL CHECK (version ~ '^[0-9]+([._][0-9]+)*$'),
    sha256          text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    undo_filename   text        CHECK (undo_filename ~ '^U[0-9]+([._][0-9]+)*__.+[.]sql$'),
    undo_sha256     text        CHECK (undo_sha256 ~ '^[0-9a-f]{64}$'),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((undo_filename IS NULL) = (undo_sha256 IS NULL)),
    UNIQUE (sqlagent_run_id, filename)
);

CREATE INDEX IF NOT EXISTS sqlagent_migrations_filename ON sqlagent_migrations (filename);
CREATE INDEX IF NOT EXISTS sqlagent_migrations_undo_filename ON sqlagent_migrations (undo_filename);
