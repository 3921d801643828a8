-- Change history: one row per tracked field that a run saw change, plus `created` (the
-- first sighting), `missing` (a full pass no longer returned it) and `returned` (back
-- after missing). `observed_at` is the database clock at the start of the run that saw
-- it; `run_id` is a plain number (no foreign key: runs may be pruned, history stays).
CREATE TABLE partner_center_referral_changes (
    id          bigserial PRIMARY KEY,
    referral_id text NOT NULL,
    observed_at timestamptz NOT NULL,
    run_id      bigint,
    field       text NOT NULL,
    old_value   text,
    new_value   text
);
CREATE INDEX partner_center_referral_changes_referral_idx
    ON partner_center_referral_changes (referral_id, id);
-- Rows arrive in time order, so a BRIN index serves `since` for the cost of a few pages.
CREATE INDEX partner_center_referral_changes_observed_idx
    ON partner_center_referral_changes USING brin (observed_at);

-- The notifications outbox: one row per event and destination, written in the
-- transaction of the change that caused it. `dedupe_key` makes enqueueing idempotent;
-- `delivery_id` is sent with every attempt so receivers can drop duplicates.
-- `held` rows belong to a run still writing: the end of the run releases them (or folds
-- them into one digest); `merged` rows were delivered as part of a digest or summary.
CREATE TABLE partner_center_notifications (
    id              bigserial PRIMARY KEY,
    delivery_id     uuid NOT NULL,
    destination     text NOT NULL,
    event           text NOT NULL,
    referral_id     text,
    run_id          bigint,
    dedupe_key      text NOT NULL,
    data            jsonb NOT NULL,
    state           text NOT NULL CHECK (state IN ('held', 'pending', 'delivered', 'merged')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (destination, dedupe_key)
);
CREATE INDEX partner_center_notifications_due_idx
    ON partner_center_notifications (destination, next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX partner_center_notifications_held_idx
    ON partner_center_notifications (run_id) WHERE state = 'held';
CREATE INDEX partner_center_notifications_created_idx
    ON partner_center_notifications (id DESC);

-- Delivery health per destination, kept across restarts and shared by an HA pair.
CREATE TABLE partner_center_notify_destinations (
    name                 text PRIMARY KEY,
    consecutive_failures integer NOT NULL DEFAULT 0,
    failed_total         bigint NOT NULL DEFAULT 0,
    last_error           text,
    last_delivered_at    timestamptz
);

-- The partner team of a referral as change history records it: e-mail (else full name)
-- of each member, sorted, comma-separated; NULL when there is none.
CREATE FUNCTION partner_center_referral_team(payload jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT string_agg(who, ', ' ORDER BY who)
    FROM (
        SELECT coalesce(nullif(m->>'email', ''), nullif(concat_ws(' ', m->>'firstName', m->>'lastName'), '')) AS who
        FROM jsonb_array_elements(CASE jsonb_typeof(payload->'team') WHEN 'array' THEN payload->'team' ELSE '[]'::jsonb END) AS m
    ) AS members
    WHERE who IS NOT NULL
$$;

-- The tracked fields, the ONE list: their names, and their values from a referral's
-- columns, in the same order. A change in any of them is a history row; the rest of the
-- payload (eTags, timestamps, notes) moves too often to be worth a row.
CREATE FUNCTION partner_center_referral_tracked_names() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ARRAY['status', 'substatus', 'deal_value', 'currency', 'qualification',
                 'expiration_date', 'close_date', 'expected_close_date', 'team']
$$;

CREATE FUNCTION partner_center_referral_tracked_values(
    status text, substatus text, deal_value numeric, currency text, qualification text, payload jsonb
) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ARRAY[status, substatus, deal_value::text, currency, qualification,
                 payload->>'expirationDateTime', payload->>'closedDateTime',
                 payload->'details'->>'closingDateTime', partner_center_referral_team(payload)]
$$;
