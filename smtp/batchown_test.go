package smtp

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"sockmail/internal/testenv"
)

// TestPostfixBatchOwnTranscripts sends a pipelined batch to the loopback
// Postfix where each message has its own BeforeEnd hook and transcript
// (a queue marks each message's end sent and keeps each attempt's
// transcript): each hook runs once, for its own message, in order; each
// transcript holds its own envelope, end and verdict (queue id) and no
// other message's recipient; the client's transcript holds none of them.
// With CHUNKING (one message in flight) and without (DATA, the next
// envelope after each ".").
func TestPostfixBatchOwnTranscripts(t *testing.T) {
	p := testenv.Postfix(t)
	for _, tc := range []struct {
		name    string
		noChunk bool
		end     string // the client line that ends a message
	}{
		{name: "BDAT", end: " LAST"},
		{name: "DATA", noChunk: true, end: "."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 4
			ctx := context.Background()
			base := NewTranscript()
			c, err := Open(ctx, Config{Addr: p.SMTPAddr, Transcript: base, DisableChunking: tc.noChunk})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			msgs := make([]BatchMessage, n)
			rcpts := make([]string, n)
			tokens := make([]string, n)
			var hooks []int
			for i := range msgs {
				i := i
				rcpts[i], tokens[i] = testenv.UniqueAddress(), testenv.UniqueToken()
				tr := NewTranscript()
				msgs[i] = BatchMessage{
					Envelope:   Envelope{From: "sender@elsewhere.test", To: []string{rcpts[i]}},
					Message:    strings.NewReader(realMessage(tokens[i], "", fmt.Sprintf("message %d\n", i))),
					Transcript: tr,
					BeforeEnd: func(context.Context) error {
						hooks = append(hooks, i)
						// Its own end is not on the wire yet.
						if got := countEnds(clientLines(tr), tc.end); got != 0 {
							t.Errorf("message %d: its hook ran with %d ends in its transcript", i, got)
						}
						return nil
					},
				}
			}
			out, err := c.SendBatch(ctx, msgs, false)
			if err != nil {
				t.Fatalf("batch: %v", err)
			}
			if fmt.Sprint(hooks) != "[0 1 2 3]" {
				t.Errorf("hooks ran for messages %v, want each once in order", hooks)
			}
			for i, r := range out {
				tr := msgs[i].Transcript
				lines := strings.Join(eventLines(tr.Events(), DirClient), "\n")
				if st := StatusOf(r.Result, r.Err); st != StatusSent || r.Result.QueueID == "" {
					t.Errorf("message %d: %q, queue id %q: %v", i, st, r.Result.QueueID, r.Err)
				}
				if !strings.Contains(lines, "RCPT TO:<"+rcpts[i]+">") {
					t.Errorf("message %d: its transcript lacks its RCPT:\n%s", i, dumpTranscript(tr))
				}
				for j, o := range rcpts {
					if j != i && strings.Contains(lines, o) {
						t.Errorf("message %d: its transcript has message %d's recipient", i, j)
					}
				}
				if got := countEnds(clientLines(tr), tc.end); got != 1 {
					t.Errorf("message %d: %d ends in its transcript, want 1", i, got)
				}
				if !strings.Contains(strings.Join(eventLines(tr.Events(), DirInfo), "\n"), "queue id: "+r.Result.QueueID) {
					t.Errorf("message %d: its transcript lacks its verdict (queue id %s):\n%s", i, r.Result.QueueID, dumpTranscript(tr))
				}
			}
			if strings.Contains(strings.Join(clientLines(base), "\n"), "RCPT") {
				t.Errorf("the client's own transcript has a message's lines:\n%s", dumpTranscript(base))
			}
			for _, tok := range tokens {
				testenv.WaitForMessage(t, p.Maildir, tok, deliveryWait)
			}
		})
	}
}

// countEnds counts the client lines that end a message: "." or a BDAT
// ending with suffix.
func countEnds(lines []string, end string) int {
	n := 0
	for _, l := range lines {
		if (end == "." && l == ".") || (end != "." && strings.HasPrefix(l, "BDAT") && strings.HasSuffix(l, end)) {
			n++
		}
	}
	return n
}
