-- 0005_quarantine keeps the webhook requests refused for their signature
-- (answered 401), which HubSpot never retries, so that they can be checked
-- and replayed once the configuration is fixed. Only what re-verification
-- needs is kept: the request line, the signature headers (JSON), and the
-- body up to 64 KiB; body_bytes is what is stored of it (the caps count it)
-- and body_length what arrived. The index on body_bytes lets the cap check
-- count rows and sum their bytes from the index alone, never from the blobs.

CREATE TABLE quarantine (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  received_at DATETIME(6) NOT NULL,
  method VARCHAR(16) NOT NULL,
  scheme VARCHAR(8) NOT NULL,
  host VARCHAR(255) NOT NULL,
  request_uri TEXT NOT NULL,
  headers TEXT NOT NULL,
  body MEDIUMBLOB NOT NULL,
  body_bytes INT UNSIGNED NOT NULL,
  body_length INT UNSIGNED NOT NULL,
  body_truncated TINYINT(1) NOT NULL,
  reason VARCHAR(32) NOT NULL,
  detail VARCHAR(512) NOT NULL,
  signature_version VARCHAR(16) NOT NULL,
  replayed_at DATETIME(6) NULL,
  replay_outcome VARCHAR(16) NOT NULL,
  replay_detail VARCHAR(512) NOT NULL,
  PRIMARY KEY (id),
  KEY quarantine_body_bytes (body_bytes),
  KEY quarantine_replay (replay_outcome, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
