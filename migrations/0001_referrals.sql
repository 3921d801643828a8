-- Referrals as Partner Center holds them: typed columns for filtering, the raw JSON for
-- everything else. `updated_at` is Partner Center's updatedDateTime; `first_seen_at`,
-- `last_seen_at` and `missing_since` are ours.
CREATE TABLE partner_center_referrals (
    id               text PRIMARY KEY,
    engagement_id    text,
    name             text,
    status           text,
    substatus        text,
    type             text,
    qualification    text,
    direction        text,
    customer_name    text,
    customer_country text,
    customer_domain  text,
    deal_value       numeric,
    currency         text,
    created_at       timestamptz,
    updated_at       timestamptz,
    etag             text,
    payload          jsonb NOT NULL,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    missing_since    timestamptz
);

-- The UI's default view and keyset paging: newest first, id as the tie-break.
CREATE INDEX partner_center_referrals_updated_idx ON partner_center_referrals (updated_at DESC, id);
CREATE INDEX partner_center_referrals_created_idx ON partner_center_referrals (created_at DESC, id);
CREATE INDEX partner_center_referrals_status_idx ON partner_center_referrals (status, substatus);
CREATE INDEX partner_center_referrals_type_direction_idx ON partner_center_referrals (type, direction);
CREATE INDEX partner_center_referrals_domain_idx ON partner_center_referrals (customer_domain);
CREATE INDEX partner_center_referrals_missing_idx ON partner_center_referrals (missing_since) WHERE missing_since IS NOT NULL;
