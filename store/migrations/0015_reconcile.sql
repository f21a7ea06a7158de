-- 0015_reconcile keeps each comparison of the bridge's imports with what CC
-- holds now (`hs2cc reconcile` and the periodic cc:reconcile), so that /ops
-- and status.json show the last one and its figures. outcome is done,
-- planned (a dry run that only counted the calls), refused (over the budget
-- it was given) or failed (detail says why); the figures are those of the
-- lists read so far. cc_calls is what the run spent, announced_calls what it
-- said beforehand it would spend.
CREATE TABLE reconcile_runs (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  started_at DATETIME(6) NOT NULL,
  finished_at DATETIME(6) NOT NULL,
  source VARCHAR(16) NOT NULL,
  lists TEXT NOT NULL,
  since DATETIME(6) NULL,
  outcome VARCHAR(16) NOT NULL,
  detail VARCHAR(1024) NOT NULL,
  missing INT NOT NULL,
  unsubscribed INT NOT NULL,
  unknown INT NOT NULL,
  repaired INT NOT NULL,
  cc_calls INT NOT NULL,
  announced_calls INT NOT NULL,
  PRIMARY KEY (id),
  KEY reconcile_runs_started (started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
