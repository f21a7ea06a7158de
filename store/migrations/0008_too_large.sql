-- 0008_too_large keeps an account of the webhook bodies refused for their
-- size. HubSpot never retries the 413 they get, so each is stored as a
-- delivery with verdict too_large before it is answered: its first 64 KiB
-- in body, the headers the quarantine also keeps (JSON), the Content-Length
-- it declared (NULL when it declared none) and the bytes that arrived,
-- which are a lower bound when body_length_at_least is set (reading stopped
-- past four times the limit, or the connection broke). body_length is
-- written for every delivery from now on, so that a body's size outlives
-- the retention purge; rows from before this migration leave it NULL.
-- The columns are added last and are nullable or defaulted, so that MySQL 8
-- and MariaDB 10.11 add them without copying the table and its bodies.
ALTER TABLE deliveries ADD COLUMN headers TEXT NULL;
ALTER TABLE deliveries ADD COLUMN declared_length BIGINT UNSIGNED NULL;
ALTER TABLE deliveries ADD COLUMN body_length BIGINT UNSIGNED NULL;
ALTER TABLE deliveries ADD COLUMN body_length_at_least TINYINT(1) NOT NULL DEFAULT 0;
-- /ops counts the too_large deliveries of the last days from this index
-- alone and reads only the newest of their rows, never a range of bodies.
CREATE INDEX deliveries_verdict ON deliveries (verdict, received_at);
