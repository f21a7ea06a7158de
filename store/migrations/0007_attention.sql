-- attention holds what stops the bridge's work until a person acts: a CC
-- list the routing rules name that does not exist and may not be created,
-- and later a CC custom field the rules map to that CC would drop. Every
-- process writes what it finds and /ops, `hs2cc status`, /readyz and the
-- metrics read it, so a state found by a worker shows wherever ops look.
-- checked_at says when the subject was last checked against CC, so that
-- workers share one re-check per interval instead of each spending calls.
CREATE TABLE attention (
  kind VARCHAR(32) NOT NULL,
  subject VARCHAR(255) NOT NULL,
  detail VARCHAR(1024) NOT NULL,
  since DATETIME(6) NOT NULL,
  checked_at DATETIME(6) NOT NULL,
  PRIMARY KEY (kind, subject)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
