-- Every table but `partner_center_referrals` carries the `partner_center_` prefix so it never
-- meets a table of the host application (Hunter's `companies`) in the same schema.
-- Deployments made before the prefix have their tables renamed by `store::upgrade`.
-- Run history: one row per accepted trigger. A manual trigger creates its row as
-- `queued` so the HTTP API can answer with its id before the run starts.
CREATE TABLE partner_center_sync_runs (
    id             bigserial PRIMARY KEY,
    trigger        text NOT NULL CHECK (trigger IN ('schedule', 'manual', 'cli', 'startup')),
    -- `auto` until the run starts and decides between incremental and full.
    mode           text NOT NULL CHECK (mode IN ('auto', 'incremental', 'full')),
    status         text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'skipped', 'cancelled')),
    dry_run        boolean NOT NULL DEFAULT false,
    queued_at      timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    pages          integer NOT NULL DEFAULT 0,
    fetched        integer NOT NULL DEFAULT 0,
    inserted       integer NOT NULL DEFAULT 0,
    updated        integer NOT NULL DEFAULT 0,
    unchanged      integer NOT NULL DEFAULT 0,
    marked_missing integer NOT NULL DEFAULT 0,
    parse_errors   integer NOT NULL DEFAULT 0,
    error          text,
    -- Which process ran it, for operators reading the history of an HA pair.
    host           text,
    pid            integer
);
CREATE INDEX partner_center_sync_runs_queued_at_idx ON partner_center_sync_runs (queued_at DESC);
CREATE INDEX partner_center_sync_runs_active_idx ON partner_center_sync_runs (status) WHERE status IN ('queued', 'running');

-- The cursor: a single row, written in the same transaction as a run's last page.
CREATE TABLE partner_center_sync_state (
    id                           smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    -- Server time at which the last completed run started; the next incremental
    -- run reads `updatedDateTime ge watermark - overlap`.
    watermark                    timestamptz,
    last_full_at                 timestamptz,
    -- Set false when Partner Center refused the updatedDateTime filter.
    incremental_filter_supported boolean NOT NULL DEFAULT true,
    updated_at                   timestamptz NOT NULL DEFAULT now()
);

-- Companies derived from referral customer domains, maintained with the referrals.
CREATE TABLE partner_center_companies (
    domain             text PRIMARY KEY,
    name               text,
    referral_count     integer NOT NULL DEFAULT 0,
    latest_status      text,
    latest_referral_at timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX partner_center_companies_referral_count_idx ON partner_center_companies (referral_count DESC);

-- Referrals whose payload could not be parsed into typed columns; the raw payload
-- is still stored and the run goes on.
CREATE TABLE partner_center_sync_errors (
    id          bigserial PRIMARY KEY,
    run_id      bigint REFERENCES partner_center_sync_runs (id) ON DELETE CASCADE,
    referral_id text,
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX partner_center_sync_errors_run_idx ON partner_center_sync_errors (run_id);
