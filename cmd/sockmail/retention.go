//go:build !sendonly

package main

import (
	"context"
	"log/slog"
	"time"
)

// retentionInterval is how often serve applies the history retention
// policy (SOCKMAIL_RETENTION_DAYS, SOCKMAIL_RETENTION_MAX).
const retentionInterval = time.Hour

// retainer applies the retention policy. *handlers.Handler is one.
type retainer interface {
	ApplyRetention(ctx context.Context) (int, error)
}

// runRetention applies the retention policy at once, then every interval,
// until ctx is done. Instances sharing a database may all run it: a
// delete that finds nothing to delete is harmless.
func runRetention(ctx context.Context, r retainer, log *slog.Logger, every time.Duration) {
	repeat(ctx, every, func() {
		if _, err := r.ApplyRetention(ctx); err != nil && ctx.Err() == nil {
			log.Error("retention", "err", err)
		}
	})
}

// repeat runs fn at once, then every interval, until ctx is done.
func repeat(ctx context.Context, interval time.Duration, fn func()) {
	fn()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
