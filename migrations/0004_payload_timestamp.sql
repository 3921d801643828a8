-- Reads a date-time from a payload field for filters such as "expiring within N days",
-- the way the API shows it: ISO 8601 with an offset, or without one meaning UTC. Anything
-- else (a typo, `tomorrow`, an impossible date) is NULL rather than an error, because one
-- odd payload must not fail every query that filters on the field.
CREATE FUNCTION partner_center_payload_timestamp(raw text) RETURNS timestamptz
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET "TimeZone" = 'UTC'
AS $$
BEGIN
    IF raw !~ '^\s*\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}' THEN
        RETURN NULL;
    END IF;
    RETURN raw::timestamptz;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$$;
