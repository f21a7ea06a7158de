-- 0011_replays tells a replayed request from a new one, and orders
-- deliveries that carry no HubSpot data time by when HubSpot signed them.
--
-- body_sha256 is the SHA-256 of a delivery's body (NULL for too_large
-- deliveries, whose body is only a head, and for rows from before this
-- migration). The same body about the same contact again is an exact
-- repeat: it is counted on the delivery that stored it first (repeats,
-- last_repeat_at) instead of being stored again, so that replaying one
-- captured request a thousand times adds no row.
-- signed_at is the time a v3 signature says HubSpot signed the request;
-- NULL for v1 and v2, which carry none.
-- The columns are nullable or defaulted, so that MySQL 8 and MariaDB 10.11
-- add them in place without copying the table and its bodies.
ALTER TABLE deliveries ADD COLUMN body_sha256 BINARY(32) NULL;
ALTER TABLE deliveries ADD COLUMN signed_at DATETIME(6) NULL;
ALTER TABLE deliveries ADD COLUMN repeats INT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN last_repeat_at DATETIME(6) NULL;
-- An exact repeat is looked up by this index alone.
CREATE INDEX deliveries_body ON deliveries (body_sha256, enrollment_id);
-- sent_at is the signing time of the delivery the row was last written
-- from (NULL when it was v1 or v2). A delivery whose data carries no
-- HubSpot time, or a row whose data does not, is ordered by this instead:
-- one signed before it is stale. A data time is never compared with it.
ALTER TABLE enrollments ADD COLUMN sent_at DATETIME(6) NULL;
