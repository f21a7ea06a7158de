-- An import claims every pending row bound for its lists (ExtendImport), so
-- the lookup by status and list key must be an index range: without it the
-- UPDATE would scan, and lock, every enrollment.
CREATE INDEX enrollments_pending_lists ON enrollments (status, list_key, id);
