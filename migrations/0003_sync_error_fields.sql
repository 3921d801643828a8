-- Which field of the referral a `partner_center_sync_errors` row is about
-- (`details.dealValue`, `id`), NULL when the whole referral was unreadable. A row is
-- recorded for every referral (or field of one) that could not be stored as sent:
-- skipped, stored with a column empty, or stored with NUL replaced; the run goes on.
ALTER TABLE partner_center_sync_errors ADD COLUMN field text;
