-- 0001_init creates the tables the bridge needs from its first version.
-- Every statement must run on MySQL 8.0 (RDS), MariaDB 10.11 and the embedded
-- go-mysql-server used by `hs2cc dev`, so it sticks to plain types.
-- Text that HubSpot sends is stored whole (TEXT), however long: a value too
-- long for CC is rejected visibly at import time, never lost at ingest.

CREATE TABLE deliveries (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  received_at DATETIME(6) NOT NULL,
  kind VARCHAR(16) NOT NULL,
  signature_version VARCHAR(4) NOT NULL,
  verdict VARCHAR(16) NOT NULL,
  reason VARCHAR(512) NOT NULL,
  enrollment_id BIGINT UNSIGNED NULL,
  body MEDIUMBLOB NOT NULL,
  PRIMARY KEY (id),
  KEY deliveries_received (received_at),
  KEY deliveries_enrollment (enrollment_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE enrollments (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  portal_id BIGINT NOT NULL,
  object_key VARCHAR(191) NOT NULL,
  email VARCHAR(254) NOT NULL,
  first_name TEXT NOT NULL,
  last_name TEXT NOT NULL,
  country TEXT NOT NULL,
  enrolled_at DATETIME(6) NULL,
  properties MEDIUMTEXT NOT NULL,
  lists TEXT NOT NULL,
  list_key VARCHAR(191) NOT NULL,
  content_hash CHAR(64) NOT NULL,
  version INT UNSIGNED NOT NULL,
  status VARCHAR(16) NOT NULL,
  status_reason VARCHAR(1024) NOT NULL,
  import_id BIGINT UNSIGNED NULL,
  received_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  imported_at DATETIME(6) NULL,
  PRIMARY KEY (id),
  UNIQUE KEY enrollments_object (portal_id, object_key),
  KEY enrollments_status (status, updated_at),
  KEY enrollments_import (import_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE cc_imports (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  task_id VARCHAR(128) NOT NULL,
  lists TEXT NOT NULL,
  list_ids TEXT NOT NULL,
  activity_id VARCHAR(64) NULL,
  state VARCHAR(16) NOT NULL,
  contact_count INT NOT NULL,
  items_total_count INT NOT NULL,
  person_count INT NOT NULL,
  error_count INT NOT NULL,
  correctable_count INT NOT NULL,
  cannot_add_to_list_count INT NOT NULL,
  activity_errors MEDIUMTEXT NOT NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  completed_at DATETIME(6) NULL,
  PRIMARY KEY (id),
  UNIQUE KEY cc_imports_task (task_id),
  KEY cc_imports_state (state, updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE cc_tokens (
  id TINYINT UNSIGNED NOT NULL,
  access_token TEXT NOT NULL,
  refresh_token TEXT NOT NULL,
  expires_at DATETIME(6) NOT NULL,
  version BIGINT UNSIGNED NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
