-- 0004_source_order lets a late delivery be told from a newer one, and a
-- Webhooks API event HubSpot retries from the first attempt.
--
-- source_updated_at is how recent HubSpot's data was in the workflow body
-- the row was last written from (NULL when the body did not say). A body
-- older than the row's data is recorded as stale and changes nothing.
ALTER TABLE enrollments ADD COLUMN source_updated_at DATETIME(6) NULL;
-- property_times holds, as a JSON object of property name to epoch
-- milliseconds, when each property that a Webhooks API event changed since
-- that body was changed in HubSpot (NULL when none was). Events are ordered
-- per property, since HubSpot does not keep their order and an older change
-- of one property must not be lost behind a newer change of another.
ALTER TABLE enrollments ADD COLUMN property_times MEDIUMTEXT NULL;
-- webhook_events remembers each Webhooks API event once, by
-- hubspot.Event.Key, so that HubSpot's retry of a batch applies nothing
-- twice; delivery_id is the delivery that first recorded it.
CREATE TABLE webhook_events (
  event_key CHAR(64) NOT NULL,
  delivery_id BIGINT UNSIGNED NULL,
  received_at DATETIME(6) NOT NULL,
  PRIMARY KEY (event_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
