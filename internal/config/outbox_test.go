package config

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestOutboxSettings(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    [6]any // concurrency, lease, poll, max age, backoff base, backoff max
		wantErr string
	}{
		{name: "defaults", want: [6]any{4, 5 * time.Minute, 5 * time.Second, 72 * time.Hour, 30 * time.Second, time.Hour}},
		{
			name: "env",
			env: map[string]string{"SOCKMAIL_OUTBOX_CONCURRENCY": "8", "SOCKMAIL_OUTBOX_LEASE": "3s", "SOCKMAIL_OUTBOX_POLL": "100ms",
				"SOCKMAIL_OUTBOX_MAX_AGE": "24h", "SOCKMAIL_OUTBOX_BACKOFF_BASE": "50ms", "SOCKMAIL_OUTBOX_BACKOFF_MAX": "2s"},
			want: [6]any{8, 3 * time.Second, 100 * time.Millisecond, 24 * time.Hour, 50 * time.Millisecond, 2 * time.Second},
		},
		{name: "no worker here", env: map[string]string{"SOCKMAIL_OUTBOX_CONCURRENCY": "0"},
			want: [6]any{0, 5 * time.Minute, 5 * time.Second, 72 * time.Hour, 30 * time.Second, time.Hour}},
		{name: "flag wins", args: []string{"-outbox-concurrency", "2", "-outbox-lease", "1m"}, env: map[string]string{"SOCKMAIL_OUTBOX_CONCURRENCY": "9"},
			want: [6]any{2, time.Minute, 5 * time.Second, 72 * time.Hour, 30 * time.Second, time.Hour}},
		{name: "concurrency", env: map[string]string{"SOCKMAIL_OUTBOX_CONCURRENCY": "65"}, wantErr: "outbox concurrency 65"},
		{name: "negative concurrency", args: []string{"-outbox-concurrency", "-1"}, wantErr: "outbox concurrency -1"},
		{name: "not a number", env: map[string]string{"SOCKMAIL_OUTBOX_CONCURRENCY": "many"}, wantErr: "SOCKMAIL_OUTBOX_CONCURRENCY"},
		{name: "lease", env: map[string]string{"SOCKMAIL_OUTBOX_LEASE": "1s"}, wantErr: "outbox lease 1s"},
		{name: "poll", env: map[string]string{"SOCKMAIL_OUTBOX_POLL": "1ms"}, wantErr: "outbox poll"},
		{name: "max age", env: map[string]string{"SOCKMAIL_OUTBOX_MAX_AGE": "1000h"}, wantErr: "outbox max age"},
		{name: "backoff", env: map[string]string{"SOCKMAIL_OUTBOX_BACKOFF_BASE": "2m", "SOCKMAIL_OUTBOX_BACKOFF_MAX": "1m"}, wantErr: "outbox backoff max 1m0s: want at least the base (2m0s)"},
		{name: "not a duration", env: map[string]string{"SOCKMAIL_OUTBOX_LEASE": "5"}, wantErr: "SOCKMAIL_OUTBOX_LEASE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := [6]any{c.OutboxConcurrency, c.OutboxLease, c.OutboxPoll, c.OutboxMaxAge, c.OutboxBackoffBase, c.OutboxBackoffMax}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
