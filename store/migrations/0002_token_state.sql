-- The token pair is sealed with AES-256-GCM from now on (key_id names the
-- HS2CC_TOKEN_KEY that sealed it; rows written before this migration hold
-- plain text and are sealed on their first read). status records that CC
-- refused the refresh token, so that every process stops using it and ops
-- can see it. refresh_owner / refresh_until fence a refresh in MySQL, so
-- that a lost Redis lock cannot let two processes spend one rotating
-- refresh token.
ALTER TABLE cc_tokens ADD COLUMN key_id VARCHAR(32) NOT NULL DEFAULT '';
ALTER TABLE cc_tokens ADD COLUMN status VARCHAR(32) NOT NULL DEFAULT 'connected';
ALTER TABLE cc_tokens ADD COLUMN status_reason VARCHAR(255) NOT NULL DEFAULT '';
ALTER TABLE cc_tokens ADD COLUMN status_at DATETIME(6) NULL;
ALTER TABLE cc_tokens ADD COLUMN refresh_owner VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE cc_tokens ADD COLUMN refresh_until DATETIME(6) NULL;
ALTER TABLE cc_tokens ADD COLUMN connected_at DATETIME(6) NULL;
ALTER TABLE cc_tokens ADD COLUMN refreshed_at DATETIME(6) NULL;
