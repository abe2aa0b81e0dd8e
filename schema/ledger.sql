-- The ledger: what every run did (deployment_log), what it was built from (pipeline_lineage),
-- and the hardening outbox (preference pairs waiting for, or done with, delivery to agentbench).
--
-- Idempotent: safe to run at the start of every run. orchestrator/ledger/database.py runs it inside one
-- transaction that holds a transaction-level advisory lock (two runs creating the tables at the
-- same moment would otherwise race on the catalog) with `search_path` set to the ledger schema
-- (`public` by default), so the names below are deliberately unqualified. Transaction-level
-- locks and `SET LOCAL` both work through transaction-mode poolers (Supavisor, PgBouncer).

CREATE TABLE IF NOT EXISTS deployment_log (
    deployment_id      text PRIMARY KEY,
    validation_run_id  text,
    mode               text NOT NULL DEFAULT 'deploy',
    -- in_progress until the run finishes: a run that crashed stays visible as in_progress until the
    -- next run's recovery settles it as crashed (orchestrator/recovery/).
    status             text NOT NULL
                       CHECK (status IN ('in_progress', 'success', 'failed', 'rolled_back', 'crashed')),
    environment        text,
    strategy           text,
    platform           text,
    previous_version   text,
    new_version        text,
    current_step       text,
    failed_step        text,
    refused_reason     text,
    error              text,
    exit_code          integer,
    url                text,
    run_url            text,
    deployed_at        timestamptz,
    started_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    duration_seconds   double precision,
    rolled_back        boolean NOT NULL DEFAULT false,
    deployment_details jsonb,
    health_checks      jsonb NOT NULL DEFAULT '[]'::jsonb,
    migrations_applied jsonb NOT NULL DEFAULT '[]'::jsonb,
    rollback           jsonb,
    hardening          jsonb,
    logs               jsonb NOT NULL DEFAULT '[]'::jsonb,
    artifact_digests   jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- The whole output contract as written to the Action's `result` output.
    result             jsonb,
    -- For a crashed run: what the recovery that settled it did (recovered_by, serving, actions).
    recovery           jsonb
);

-- Ledgers created before crash recovery: the column and the 'crashed' status.
ALTER TABLE deployment_log ADD COLUMN IF NOT EXISTS recovery jsonb;
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'deployment_log'::regclass AND contype = 'c'
          AND pg_get_constraintdef(oid) LIKE '%crashed%'
    ) THEN
        ALTER TABLE deployment_log DROP CONSTRAINT IF EXISTS deployment_log_status_check;
        ALTER TABLE deployment_log ADD CONSTRAINT deployment_log_status_check
            CHECK (status IN ('in_progress', 'success', 'failed', 'rolled_back', 'crashed'));
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS deployment_log_env_started_idx
    ON deployment_log (environment, started_at DESC);

CREATE TABLE IF NOT EXISTS pipeline_lineage (
    deployment_id         text PRIMARY KEY,
    validation_run_id     text NOT NULL,
    compliance_verdict_id text,
    migration_digests     jsonb NOT NULL DEFAULT '{}'::jsonb,
    module_digests        jsonb NOT NULL DEFAULT '{}'::jsonb,
    image_digest          text,
    outcome               text NOT NULL,
    recorded_at           timestamptz NOT NULL DEFAULT now(),
    -- The SQLAgent (agent_004) runs that produced the migrations, and per migration file the
    -- SQLAgent record the gates accepted: {"<file>": {"sha256", "sqlagent_run_id", "agent_id",
    -- "recorded_at", "record_id"}}.
    sqlagent_run_ids      text[] NOT NULL DEFAULT '{}',
    migration_provenance  jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- Ledgers created before the columns above existed.
ALTER TABLE pipeline_lineage ADD COLUMN IF NOT EXISTS sqlagent_run_ids text[] NOT NULL DEFAULT '{}';
ALTER TABLE pipeline_lineage ADD COLUMN IF NOT EXISTS migration_provenance jsonb NOT NULL DEFAULT '{}'::jsonb;

CREATE INDEX IF NOT EXISTS pipeline_lineage_validation_run_idx
    ON pipeline_lineage (validation_run_id);

-- One row per preference pair. `id` is also the Idempotency-Key sent to agentbench, so a row is
-- the unit of exactly-once delivery: flushers claim rows with FOR UPDATE SKIP LOCKED and mark
-- them delivered before releasing them. Rows are never deleted by the orchestrator.
CREATE TABLE IF NOT EXISTS hardening_outbox (
    id              uuid PRIMARY KEY,
    seq             bigserial NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    deployment_id   text NOT NULL,
    priority        text NOT NULL,
    pair            jsonb NOT NULL,
    -- pending: waiting for delivery; delivered: agentbench accepted it (submission_id kept);
    -- rejected: agentbench refused its content (4xx); kept for a person to look at, not retried.
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'rejected')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    last_attempt_at timestamptz,
    submission_id   text,
    delivered_at    timestamptz
);

CREATE INDEX IF NOT EXISTS hardening_outbox_pending_idx
    ON hardening_outbox (created_at, seq) WHERE status = 'pending';
