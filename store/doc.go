// Package store owns every byte hs2cc keeps: the MySQL tables (deliveries,
// enrollments, CC imports, the CC token) with hand-written SQL, the embedded
// migrations, and the Redis-side token cache.
//
// MySQL is the source of truth. Everything in Redis can be rebuilt from it,
// which is why nothing here keeps state that only Redis knows.
//
// The SQL must run unchanged on MySQL 8.0 (RDS), MariaDB 10.11 (CI) and the
// embedded go-mysql-server that `hs2cc dev` uses, so it avoids row aliases in
// ON DUPLICATE KEY UPDATE, JSON column types and expression defaults.
package store
