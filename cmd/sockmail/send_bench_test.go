package main

import (
	"io"
	"os"
	"testing"
)

// BenchmarkSendCompose measures what "sockmail send --count" does for
// each message before the SMTP client sees it: compose message i (its own
// subject, Date and Message-ID), take its envelope and size, and write it
// out (here to io.Discard). Whole-process throughput is measured by
// internal/procbench; this isolates the per-message CPU of composition.
func BenchmarkSendCompose(b *testing.B) {
	plan, err := parseSend([]string{"--server", "127.0.0.1:25", "--from", "Ada <ada@example.org>",
		"--to", "bob@example.net", "--count", "10000", "--quiet"}, os.Getenv)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 1
	for b.Loop() {
		i++
		msg, err := plan.compose(i%10000 + 1)
		if err != nil {
			b.Fatal(err)
		}
		env := envelopeOf(msg)
		if env.Size <= 0 {
			b.Fatalf("size %d", env.Size)
		}
		if _, err := msg.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
