package config

import (
	"io"
	"strings"
	"testing"
)

// TestOutboxParallelSettings: connections per server and messages per
// pipelined batch of the outbox worker, from defaults, the environment
// and flags, and their limits.
func TestOutboxParallelSettings(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		conns   int
		pipe    int
		wantErr string
	}{
		{name: "defaults", conns: 4, pipe: 8},
		{name: "env", env: map[string]string{"SOCKMAIL_OUTBOX_CONNECTIONS": "1", "SOCKMAIL_OUTBOX_PIPELINE": "1"}, conns: 1, pipe: 1},
		{name: "flag wins", args: []string{"-outbox-connections", "8", "-outbox-pipeline", "20"}, env: map[string]string{"SOCKMAIL_OUTBOX_CONNECTIONS": "2"}, conns: 8, pipe: 20},
		{name: "no connection", env: map[string]string{"SOCKMAIL_OUTBOX_CONNECTIONS": "0"}, wantErr: "outbox connections 0"},
		{name: "too many connections", env: map[string]string{"SOCKMAIL_OUTBOX_CONNECTIONS": "65"}, wantErr: "outbox connections 65"},
		{name: "pipeline 0", env: map[string]string{"SOCKMAIL_OUTBOX_PIPELINE": "0"}, wantErr: "outbox pipeline 0"},
		{name: "pipeline too deep", args: []string{"-outbox-pipeline", "101"}, wantErr: "outbox pipeline 101"},
		{name: "not a number", env: map[string]string{"SOCKMAIL_OUTBOX_PIPELINE": "deep"}, wantErr: "SOCKMAIL_OUTBOX_PIPELINE"},
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
			if c.OutboxConnections != tt.conns || c.OutboxPipeline != tt.pipe {
				t.Errorf("connections %d, pipeline %d; want %d, %d", c.OutboxConnections, c.OutboxPipeline, tt.conns, tt.pipe)
			}
		})
	}
}
