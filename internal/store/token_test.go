package store

import (
	"fmt"
	"sync"
	"testing"
)

// TestSubmissionTokenUsedOnce, on both backends: concurrent enqueues
// with the same token digest store one submission and one outbox item;
// the others get ErrExists; SubmissionByToken finds the one stored;
// submissions without a digest never collide.
func TestSubmissionTokenUsedOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		const n = 8
		errs := make([]error, n)
		ids := make([]int64, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				sub := &Submission{FormID: form, TokenHash: "digest-1"}
				item := &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage(fmt.Sprint("t", i))}
				errs[i] = s.EnqueueSubmission(ctx, sub, item)
				ids[i] = sub.ID
			})
		}
		wg.Wait()
		var stored int64
		for i, err := range errs {
			switch {
			case err == nil:
				if stored != 0 {
					t.Errorf("a second submission with the same token was stored: %d and %d", stored, ids[i])
				}
				stored = ids[i]
			default:
				wantErr(t, "enqueue with a used token", err, ErrExists)
			}
		}
		got, err := s.SubmissionByToken(ctx, "digest-1")
		if err != nil || got != stored || stored == 0 {
			t.Errorf("SubmissionByToken = %d, %v; want %d", got, err, stored)
		}
		_, err = s.SubmissionByToken(ctx, "digest-2")
		wantErr(t, "SubmissionByToken unknown", err, ErrNotFound)
		for i := range 2 {
			if err := s.EnqueueSubmission(ctx, &Submission{FormID: form},
				&OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage(fmt.Sprint("u", i))}); err != nil {
				t.Errorf("submission without a token %d: %v", i, err)
			}
		}
		counts, err := s.OutboxCounts(ctx)
		if err != nil || counts[OutboxQueued] != 3 {
			t.Errorf("outbox %v, %v; want 3 queued", counts, err)
		}
	})
}
