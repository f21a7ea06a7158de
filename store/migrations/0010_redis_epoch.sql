-- redis_epoch remembers the marker of the Redis the bridge last saw. A
-- worker that finds Redis without its marker can then tell a Redis that
-- lost its data (an epoch is recorded here: queue again what MySQL knows to
-- be waiting) from the first Redis the bridge uses (nothing recorded:
-- nothing was queued in it, so there is nothing to recover).
CREATE TABLE redis_epoch (
  id TINYINT UNSIGNED NOT NULL,
  epoch VARCHAR(64) NOT NULL,
  seen_at DATETIME(6) NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
