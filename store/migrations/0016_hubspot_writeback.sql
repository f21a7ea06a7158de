-- 0016_hubspot_writeback is the outbox of what CC did with each enrollment,
-- to be written back onto its HubSpot contact (issue 17). A row is queued in
-- the same transaction that settles the enrollment, so that a lost Redis or
-- a crash between the settle and the task loses no write-back: the periodic
-- hubspot:writeback task drains whatever is pending. The HubSpot object id
-- is the enrollment's object_key when that is all digits (the webhook
-- carried one); the value written is worked out when it is sent, from the
-- enrollment as it is then.
--
-- state is pending (to be written), written, missing (HubSpot no longer has
-- the contact), no_id (the webhook carried no object id) or failed (HubSpot
-- refused it several times; last_error says why). claim and claimed_until
-- mark a batch being sent; a row queued again meanwhile loses its claim, so
-- the older answer cannot mark it written. unsubscribed_at is when the
-- bridge learned that CC has the contact unsubscribed; removed_at when a
-- reconcile found it taken off removed_from ("; "-separated list names)
-- in CC. written_status and written_at are the last value written and when.
CREATE TABLE hubspot_writeback (
  enrollment_id BIGINT UNSIGNED NOT NULL,
  state VARCHAR(16) NOT NULL,
  queued_at DATETIME(6) NOT NULL,
  claim VARCHAR(64) NULL,
  claimed_until DATETIME(6) NULL,
  attempts INT NOT NULL,
  last_error VARCHAR(1024) NOT NULL,
  unsubscribed_at DATETIME(6) NULL,
  removed_at DATETIME(6) NULL,
  removed_from VARCHAR(1024) NOT NULL DEFAULT '',
  written_status VARCHAR(16) NOT NULL,
  written_at DATETIME(6) NULL,
  updated_at DATETIME(6) NOT NULL,
  PRIMARY KEY (enrollment_id),
  KEY hubspot_writeback_state (state, queued_at),
  KEY hubspot_writeback_claim (claim)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- hubspot_unsubscribe_sync keeps the one cursor of hubspot:unsubscribes:
-- the CC contacts unsubscribed since synced_to are read on its next run.
-- The other columns describe the last run for /ops and status.json.
CREATE TABLE hubspot_unsubscribe_sync (
  id TINYINT UNSIGNED NOT NULL,
  synced_to DATETIME(6) NULL,
  ran_at DATETIME(6) NOT NULL,
  outcome VARCHAR(16) NOT NULL,
  detail VARCHAR(1024) NOT NULL,
  found INT NOT NULL,
  marked INT NOT NULL,
  cc_pages INT NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
