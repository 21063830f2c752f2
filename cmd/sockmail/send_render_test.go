package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestComposeRendered: a small message without files or DKIM is rendered
// once when composed, and its bytes and size are exactly what the message
// itself writes; a message with an attachment or a large body is not
// rendered (it is streamed while sending).
func TestComposeRendered(t *testing.T) {
	dir := t.TempDir()
	att := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(att, []byte("attached\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.txt")
	if err := os.WriteFile(big, []byte(strings.Repeat("a line of the body\n", maxRenderedBody/19+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--server", "127.0.0.1:25", "--from", "Ada <ada@example.org>", "--to", "bob@example.net", "--count", "3"}
	tests := []struct {
		name     string
		args     []string
		rendered bool
	}{
		{"plain text", nil, true},
		{"HTML and a header", []string{"--html", "<p>hé</p>", "--header", "X-Test: 1"}, true},
		{"attachment", []string{"--attach", att}, false},
		{"body over the limit", []string{"--body-file", big}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := parseSend(append(base, tt.args...), noEnv)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := plan.compose(2)
			if err != nil {
				t.Fatal(err)
			}
			r, ok := msg.(*rendered)
			if ok != tt.rendered {
				t.Fatalf("rendered %v, want %v", ok, tt.rendered)
			}
			if !ok {
				return
			}
			var again bytes.Buffer
			if _, err := r.Content.WriteTo(&again); err != nil {
				t.Fatal(err)
			}
			var wire bytes.Buffer
			n, err := r.WriteTo(&wire)
			if err != nil || n != int64(wire.Len()) {
				t.Fatalf("WriteTo: %d, %v", n, err)
			}
			if wire.String() != again.String() {
				t.Errorf("rendered\n%s\nthe message writes\n%s", wire.String(), again.String())
			}
			if size, _ := r.Size(); size != int64(wire.Len()) {
				t.Errorf("Size %d, wrote %d", size, wire.Len())
			}
			if !strings.Contains(wire.String(), "[2/3]") {
				t.Errorf("subject of message 2 of 3 missing: %s", wire.String())
			}
		})
	}
}
