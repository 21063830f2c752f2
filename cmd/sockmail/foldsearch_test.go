//go:build !sendonly

package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// scriptedFolder answers FoldSearchText from a script, one step a call.
type scriptedFolder struct {
	steps []foldStep
	calls int
}

type foldStep struct {
	changed int
	more    bool
	err     error
}

func (f *scriptedFolder) FoldSearchText(ctx context.Context, batch int) (int, bool, error) {
	if batch != foldBatch {
		return 0, false, errors.New("unexpected batch size")
	}
	s := f.steps[min(f.calls, len(f.steps)-1)]
	f.calls++
	return s.changed, s.more, s.err
}

// TestFoldSearch: serve's background fold goes on while rows remain,
// retries a failed batch, stops when none is left, and logs the start and
// the total once.
func TestFoldSearch(t *testing.T) {
	tests := []struct {
		name      string
		steps     []foldStep
		calls     int
		logs      []string
		wantTotal string
	}{
		{"nothing to fold", []foldStep{{0, false, nil}}, 1, nil, ""},
		{"three batches", []foldStep{{2000, true, nil}, {2000, true, nil}, {7, false, nil}}, 3,
			[]string{"lowercasing the searchable text", "older sends lowercased"}, "rows=4007"},
		{"a failed batch is retried", []foldStep{{2000, true, nil}, {0, false, errors.New("connection reset")}, {5, false, nil}}, 3,
			[]string{"lowercasing the searchable text", "connection reset", "older sends lowercased"}, "rows=2005"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			f := &scriptedFolder{steps: tt.steps}
			foldSearch(context.Background(), f, slog.New(slog.NewTextHandler(&out, nil)), 0)
			if f.calls != tt.calls {
				t.Errorf("%d calls, want %d", f.calls, tt.calls)
			}
			logs := out.String()
			for _, want := range tt.logs {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %q:\n%s", want, logs)
				}
			}
			if len(tt.logs) == 0 && logs != "" {
				t.Errorf("logged with nothing to fold:\n%s", logs)
			}
			if tt.wantTotal != "" && !strings.Contains(logs, tt.wantTotal) {
				t.Errorf("log lacks the total %q:\n%s", tt.wantTotal, logs)
			}
		})
	}
	t.Run("stops with its context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		f := &scriptedFolder{steps: []foldStep{{0, true, errors.New("down")}}}
		foldSearch(ctx, f, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)), 0)
		if f.calls != 0 {
			t.Errorf("%d calls after the context was done, want 0", f.calls)
		}
	})
}
