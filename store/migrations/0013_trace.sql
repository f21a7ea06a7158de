-- 0013_trace keeps what `hs2cc trace` and /ops/trace need to tell one
-- contact's story without reading bodies: which version each delivery
-- produced or was compared with, the lists the rules chose and why, the
-- history of every version, and the links of replays to what they replayed.
--
-- deliveries.version is the enrollment version a delivery made (accepted)
-- or found (duplicate, stale); lists (JSON) and route are what the rules
-- chose for it and which of them matched. email is kept only for a
-- delivery linked to no enrollment (no_route), so that a trace by email
-- finds it; replay_of names the delivery that `hs2cc deliveries replay`
-- ran again. Every column is nullable and added last, so that MySQL 8 and
-- MariaDB 10.11 add them without copying the table and its bodies.
ALTER TABLE deliveries ADD COLUMN version INT UNSIGNED NULL;
ALTER TABLE deliveries ADD COLUMN lists TEXT NULL;
ALTER TABLE deliveries ADD COLUMN route VARCHAR(1024) NULL;
ALTER TABLE deliveries ADD COLUMN email VARCHAR(254) NULL;
ALTER TABLE deliveries ADD COLUMN replay_of BIGINT UNSIGNED NULL;
CREATE INDEX deliveries_email ON deliveries (email);
CREATE INDEX deliveries_replay_of ON deliveries (replay_of);
-- enrollment_history has one row per version of an enrollment: when it
-- arrived, the names of the fields it changed (JSON; names only, since the
-- values are personal data that the retention purge must be able to
-- forget), the lists and why the rules chose them.
CREATE TABLE enrollment_history (
  enrollment_id BIGINT UNSIGNED NOT NULL,
  version INT UNSIGNED NOT NULL,
  received_at DATETIME(6) NOT NULL,
  changed TEXT NOT NULL,
  lists TEXT NOT NULL,
  route VARCHAR(1024) NOT NULL,
  PRIMARY KEY (enrollment_id, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
-- enrollment_attempts keeps the outcome an enrollment reached (its import,
-- status and reason) when something is about to make the row forget it: a
-- newer version, or a replay that queues the same version again. The
-- current outcome stays on the enrollment row.
CREATE TABLE enrollment_attempts (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  enrollment_id BIGINT UNSIGNED NOT NULL,
  version INT UNSIGNED NOT NULL,
  import_id BIGINT UNSIGNED NULL,
  status VARCHAR(16) NOT NULL,
  status_reason VARCHAR(1024) NOT NULL,
  imported_at DATETIME(6) NULL,
  ended_at DATETIME(6) NOT NULL,
  ended_by VARCHAR(16) NOT NULL,
  PRIMARY KEY (id),
  KEY enrollment_attempts_enrollment (enrollment_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
-- A trace looks contacts up by email, and the closest matches by domain.
CREATE INDEX enrollments_email ON enrollments (email);
-- quarantine.delivery_id is the delivery a replayed request stored.
ALTER TABLE quarantine ADD COLUMN delivery_id BIGINT UNSIGNED NULL;
CREATE INDEX quarantine_delivery ON quarantine (delivery_id);
