package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one numbered file of the embedded migrations.
type migration struct {
	version    int
	name       string
	statements []string
}

// loadMigrations reads the embedded files in version order. A file's version
// is the number before its first underscore.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			return nil, fmt.Errorf("migration %q: name must be NNNN_name.sql", e.Name())
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %q: %w", e.Name(), err)
		}
		raw, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), statements: splitStatements(string(raw))})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// splitStatements cuts a migration into statements at semicolons that end a
// line, dropping "--" comment lines. Statements run one per Exec so that the
// DSN never needs multiStatements, which widens the blast radius of any SQL
// injection.
func splitStatements(src string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			stmt := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			out = append(out, stmt)
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// LatestVersion is the schema version this binary needs.
func LatestVersion() int {
	ms, err := loadMigrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INT NOT NULL,
  name VARCHAR(255) NOT NULL,
  applied_at DATETIME(6) NOT NULL,
  PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`

// Migrate applies every embedded migration the database has not recorded,
// in version order, and returns the versions it applied. It goes by the set
// of recorded versions rather than the newest one, so that a migration
// numbered below one applied already (branches that landed out of order) is
// still applied. MySQL commits DDL implicitly, so each
// migration is recorded right after its statements succeed; a migration that
// fails half-way must be repaired by hand, which is why each one stays small.
func (s *DB) Migrate(ctx context.Context) ([]int, error) {
	if _, err := s.db.ExecContext(ctx, createMigrationsTable); err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	done, err := s.appliedVersions(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := loadMigrations()
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	var applied []int
	for _, m := range ms {
		if done[m.version] {
			continue
		}
		for _, stmt := range m.statements {
			if _, err := s.db.ExecContext(ctx, stmt); err != nil {
				return applied, fmt.Errorf("store: migrate %s: %w", m.name, err)
			}
		}
		if _, err := s.db.ExecContext(ctx,
			`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.version, m.name, s.utcNow()); err != nil {
			return applied, fmt.Errorf("store: record migration %s: %w", m.name, err)
		}
		applied = append(applied, m.version)
	}
	return applied, nil
}

// CheckSchema returns ErrSchemaOutdated unless the database has every
// migration this binary was built with. Migrations the binary does not know
// are accepted, so that a rolling deploy can run the old binary against the
// migrated schema for a while.
func (s *DB) CheckSchema(ctx context.Context) error {
	done, err := s.appliedVersions(ctx)
	if err != nil {
		return err
	}
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("store: check schema: %w", err)
	}
	var missing []string
	for _, m := range ms {
		if !done[m.version] {
			missing = append(missing, strconv.Itoa(m.version))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w (database lacks migrations %s)", ErrSchemaOutdated, strings.Join(missing, ", "))
	}
	return nil
}

// appliedVersions returns the recorded migrations, none on an empty
// database.
func (s *DB) appliedVersions(ctx context.Context) (map[int]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1146 {
		// An empty database has no schema_migrations table at all.
		return map[int]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: applied migrations: %w", err)
	}
	defer rows.Close()
	done := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("store: applied migrations: %w", err)
		}
		done[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: applied migrations: %w", err)
	}
	return done, nil
}
