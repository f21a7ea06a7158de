package jobs

import "context"

// Metrics is told what the importer settles, for the process's metrics;
// cmd/hs2cc exports it to Prometheus.
type Metrics interface {
	// ImportSettled is told that an import's rows were settled as
	// imported; it reads whatever it measures from the store itself, so
	// that the importer loads nothing for it.
	ImportSettled(ctx context.Context, importID int64)
}

// WithMetrics tells m about every import settled clean.
func WithMetrics(m Metrics) Option { return func(im *Importer) { im.metrics = m } }
