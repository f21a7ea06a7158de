-- 0014_ops_charts lets /ops chart the last 48 hours from indexes alone.
--
-- version_received_at is when the version of the row that waits (or was
-- imported) was received: received_at keeps the first version's receipt, so
-- a changed contact's wait could otherwise only be told by joining its
-- deliveries. It stays NULL-able so that adding it is instant on a large
-- table; every write of a version sets it.
ALTER TABLE enrollments ADD COLUMN version_received_at DATETIME(6) NULL;
-- Rows from before this migration take the receipt of their latest accepted
-- delivery (the one that made their current version), else their own.
UPDATE enrollments SET version_received_at = COALESCE(
  (SELECT MAX(d.received_at) FROM deliveries d WHERE d.enrollment_id = enrollments.id AND d.verdict = 'accepted'),
  received_at);
-- Enrollments received per hour: a range of this index, read alone.
CREATE INDEX enrollments_version_received ON enrollments (version_received_at);
-- Enrollments imported per hour, and the earliest receipt among each hour's
-- imports (from which the age of the oldest waiting enrollment at each hour
-- follows): a range of this index, read alone.
CREATE INDEX enrollments_imported ON enrollments (imported_at, version_received_at);
-- The oldest waiting enrollment: one index dive per waiting status.
CREATE INDEX enrollments_waiting ON enrollments (status, version_received_at, id);
