package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// redisEpochRow is the one row of redis_epoch.
const redisEpochRow = 1

// SwapRedisEpoch records epoch as the marker of the Redis the bridge uses
// now and returns the one recorded before, "" when none was: the first
// Redis the bridge uses has nothing to recover, a later one lost its data.
func (s *DB) SwapRedisEpoch(ctx context.Context, epoch string) (string, error) {
	var prev string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		prev = ""
		err := tx.QueryRowContext(ctx, `SELECT epoch FROM redis_epoch WHERE id = ? FOR UPDATE`, redisEpochRow).Scan(&prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO redis_epoch (id, epoch, seen_at) VALUES (?, ?, ?)
			 ON DUPLICATE KEY UPDATE epoch = VALUES(epoch), seen_at = VALUES(seen_at)`,
			redisEpochRow, epoch, s.utcNow())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("store: swap redis epoch: %w", err)
	}
	return prev, nil
}
