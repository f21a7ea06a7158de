-- 0012_quarantine_unshaped counts the webhook requests refused for their
-- signature that are not shaped like HubSpot's (no signature header, a
-- malformed one, a timestamp outside the window). Such a request can never
-- verify, so it is not kept in quarantine, where a flood of it would crowd
-- out the genuine requests signed with a secret not yet configured; it is
-- only counted here, one row per reason. The reasons are a fixed few, so
-- the table cannot grow with the flood, and serve adds to it from memory at
-- most once a second.
CREATE TABLE quarantine_unshaped (
  reason VARCHAR(32) NOT NULL,
  count BIGINT UNSIGNED NOT NULL,
  first_seen DATETIME(6) NOT NULL,
  last_seen DATETIME(6) NOT NULL,
  PRIMARY KEY (reason)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
