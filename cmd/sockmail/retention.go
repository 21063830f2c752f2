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

// foldBatch is how many history rows foldSearch lowercases per
// transaction.
const foldBatch = 2000

// folder lowercases the history's searchable text left from before
// migration 0019 (store.FoldSearchText). *store.Store is one.
type folder interface {
	FoldSearchText(ctx context.Context, batch int) (changed int, more bool, err error)
}

// foldSearch folds the searchable text of the sends stored before
// migration 0019, newest first, until none is left or ctx is done; the
// history stays searchable meanwhile (unfolded rows are matched with
// ILIKE). A failed batch is retried after retry. Instances sharing a
// database may all run it.
func foldSearch(ctx context.Context, f folder, log *slog.Logger, retry time.Duration) {
	total, logged := 0, false
	for ctx.Err() == nil {
		changed, more, err := f.FoldSearchText(ctx, foldBatch)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("history search: lowercasing older rows", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(retry):
				}
			}
			continue
		}
		total += changed
		if more && !logged {
			log.Info("history search: lowercasing the searchable text of older sends in the background (migration 0019)")
			logged = true
		}
		if !more {
			if logged {
				log.Info("history search: older sends lowercased", "rows", total)
			}
			return
		}
	}
}
