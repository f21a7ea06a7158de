-- Raw delivery bodies hold personal data; the retention task empties them
-- after HS2CC_RETENTION and records when, keeping the row (verdict, reason,
-- enrollment) as the account of what arrived.
ALTER TABLE deliveries ADD COLUMN purged_at DATETIME(6) NULL;
