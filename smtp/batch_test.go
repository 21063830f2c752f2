package smtp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"sockmail/internal/delayproxy"
	"sockmail/internal/testenv"
)

// batchMessages returns n messages "m1".."mn" to b1@example.net.. with
// the bodies "body1".. .
func batchMessages(n int) []BatchMessage {
	msgs := make([]BatchMessage, n)
	for i := range msgs {
		msgs[i] = BatchMessage{
			Envelope: Envelope{From: "a@example.org", To: []string{fmt.Sprintf("b%d@example.net", i+1)}},
			Message:  strings.NewReader(fmt.Sprintf("Subject: m%d\n\nbody%d\n", i+1, i+1)),
		}
	}
	return msgs
}

// Segments of the client's writes in the batch scripts, CRLF added.
func envSeg(i int) string {
	return fmt.Sprintf("MAIL FROM:<a@example.org>\nRCPT TO:<b%d@example.net>\nDATA\n", i)
}
func bodySeg(i int) string { return fmt.Sprintf("Subject: m%d\n\nbody%d\n.\n", i, i) }
func bdatSeg(i int) string {
	return fmt.Sprintf("MAIL FROM:<a@example.org>\nRCPT TO:<b%d@example.net>\nBDAT 22 LAST\nSubject: m%d\n\nbody%d\n", i, i, i)
}

// segs joins readable segments into the faker's form.
func segs(s ...string) string {
	for i := range s {
		s[i] = lf(s[i])
	}
	return strings.Join(s, "|")
}

// Server replies of the batch scripts.
const (
	envOK   = "250 2.1.0 Ok\n250 2.1.5 Ok\n354 go\n"
	rsetEnv = "250 2.0.0 Ok\n" + envOK
)

func queued(id string) string { return "250 2.0.0 Ok: queued as " + id + "\n" }

// TestSendBatchScripted checks the writes of a batch exactly (each
// envelope in the same write as the end of the message before it) and
// that each message's outcome is its own.
func TestSendBatchScripted(t *testing.T) {
	tests := []struct {
		name     string
		server   string
		n        int
		edit     func([]BatchMessage)
		client   string
		status   []Status
		codes    []int // the error code of each message, 0 for none
		queueIDs []string
		batchErr bool
	}{
		{
			name:   "three messages: one wait each, QUIT with the last",
			server: ehloPipelining + envOK + queued("Q1") + envOK + queued("Q2") + envOK + queued("Q3") + "221 Bye\n",
			n:      3,
			client: segs("EHLO client.test\n", envSeg(1), bodySeg(1)+envSeg(2), bodySeg(2)+envSeg(3), bodySeg(3)+"QUIT\n"),
			status: []Status{StatusSent, StatusSent, StatusSent}, codes: []int{0, 0, 0},
			queueIDs: []string{"Q1", "Q2", "Q3"},
		},
		{
			name: "message 2's RCPT refused: its DATA refused, no body, message 3 after RSET",
			server: ehloPipelining + envOK + queued("Q1") + "250 Ok\n550 5.1.1 unknown\n554 5.5.1 no valid recipients\n" +
				rsetEnv + queued("Q3") + "221 Bye\n",
			n:      3,
			client: segs("EHLO client.test\n", envSeg(1), bodySeg(1)+envSeg(2), "RSET\n"+envSeg(3), bodySeg(3)+"QUIT\n"),
			status: []Status{StatusSent, StatusPermFail, StatusSent}, codes: []int{0, 550, 0},
			queueIDs: []string{"Q1", "", "Q3"},
		},
		{
			name:   "message 2 refused after its dot: message 3 goes on without RSET",
			server: ehloPipelining + envOK + queued("Q1") + envOK + "554 5.7.1 content rejected\n" + envOK + queued("Q3") + "221 Bye\n",
			n:      3,
			client: segs("EHLO client.test\n", envSeg(1), bodySeg(1)+envSeg(2), bodySeg(2)+envSeg(3), bodySeg(3)+"QUIT\n"),
			status: []Status{StatusSent, StatusPermFail, StatusSent}, codes: []int{0, 554, 0},
			queueIDs: []string{"Q1", "", "Q3"},
		},
		{
			name:   "connection lost after message 2's dot: 2 unknown, 3 not sent",
			server: ehloPipelining + envOK + queued("Q1") + envOK,
			n:      3,
			client: segs("EHLO client.test\n", envSeg(1), bodySeg(1)+envSeg(2), bodySeg(2)+envSeg(3)),
			status: []Status{StatusSent, StatusUnknown, StatusTempFail}, codes: []int{0, 0, 0},
			queueIDs: []string{"Q1", "", ""},
			batchErr: true,
		},
		{
			name: "354 after message 2's envelope failed: an empty message ends it, message 3 follows the dot",
			server: ehloPipelining + envOK + queued("Q1") + "250 Ok\n450 4.2.0 try later\n354 go\n554 no valid recipients\n" +
				rsetEnv + queued("Q3") + "221 Bye\n",
			n:      3,
			client: segs("EHLO client.test\n", envSeg(1), bodySeg(1)+envSeg(2), ".\nRSET\n"+envSeg(3), bodySeg(3)+"QUIT\n"),
			status: []Status{StatusSent, StatusTempFail, StatusSent}, codes: []int{0, 450, 0},
			queueIDs: []string{"Q1", "", "Q3"},
		},
		{
			name:   "last message's DATA refused: QUIT alone",
			server: ehloPipelining + envOK + queued("Q1") + "250 Ok\n550 5.1.1 unknown\n554 5.5.1 no valid recipients\n221 Bye\n",
			n:      2,
			client: segs("EHLO client.test\n", envSeg(1), bodySeg(1)+envSeg(2), "QUIT\n"),
			status: []Status{StatusSent, StatusPermFail}, codes: []int{0, 550},
			queueIDs: []string{"Q1", ""},
		},
		{
			name:   "message 2 refused before sending: nothing of it on the wire",
			server: ehloPipelining + envOK + queued("Q1") + envOK + queued("Q3") + "221 Bye\n",
			n:      3,
			edit:   func(m []BatchMessage) { m[1].Envelope.To = nil },
			client: segs("EHLO client.test\n", envSeg(1), bodySeg(1)+envSeg(3), bodySeg(3)+"QUIT\n"),
			status: []Status{StatusSent, StatusPermFail, StatusSent}, codes: []int{0, 0, 0},
			queueIDs: []string{"Q1", "", "Q3"},
		},
		{
			name:   "421 after message 1's dot: 2 and 3 not sent",
			server: ehloPipelining + envOK + "421 4.3.2 shutting down\n",
			n:      3,
			client: segs("EHLO client.test\n", envSeg(1), bodySeg(1)+envSeg(2)),
			status: []Status{StatusTempFail, StatusTempFail, StatusTempFail}, codes: []int{421, 0, 0},
			queueIDs: []string{"", "", ""},
			batchErr: true,
		},
		{
			name:   "message 2's source fails: no end of it on the wire, 3 not sent",
			server: ehloPipelining + envOK + queued("Q1") + envOK,
			n:      3,
			edit:   func(m []BatchMessage) { m[1].Message = failingMessage{"Subject: m2\n\npartial\n"} },
			client: segs("EHLO client.test\n", envSeg(1), bodySeg(1)+envSeg(2)),
			status: []Status{StatusSent, StatusPermFail, StatusTempFail}, codes: []int{0, 0, 0},
			queueIDs: []string{"Q1", "", ""},
			batchErr: true,
		},
		{
			name:   "connection lost during the first envelope: all temporary",
			server: ehloPipelining + "250 Ok\n",
			n:      2,
			client: segs("EHLO client.test\n", envSeg(1)),
			status: []Status{StatusTempFail, StatusTempFail}, codes: []int{0, 0},
			queueIDs: []string{"", ""},
			batchErr: true,
		},
		{
			name:   "CHUNKING: envelope and BDAT LAST in one write per message",
			server: ehloFull + "250 Ok\n250 Ok\n" + queued("C1") + "250 Ok\n250 Ok\n250 Ok\n" + queued("C2") + "221 Bye\n",
			n:      2,
			client: segs("EHLO client.test\n", bdatSeg(1), "RSET\n"+bdatSeg(2)+"QUIT\n"),
			status: []Status{StatusSent, StatusSent}, codes: []int{0, 0},
			queueIDs: []string{"C1", "C2"},
		},
		{
			name:   "no PIPELINING: one command a wait, as Send",
			server: ehloPlain + "250 Ok\n250 Ok\n354 go\n" + queued("P1") + "250 Ok\n250 Ok\n354 go\n" + queued("P2") + "221 Bye\n",
			n:      2,
			client: segs("EHLO client.test\n", "MAIL FROM:<a@example.org>\n", "RCPT TO:<b1@example.net>\n", "DATA\n", bodySeg(1),
				"MAIL FROM:<a@example.org>\n", "RCPT TO:<b2@example.net>\n", "DATA\n", bodySeg(2), "QUIT\n"),
			status: []Status{StatusSent, StatusSent}, codes: []int{0, 0},
			queueIDs: []string{"P1", "P2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaker(tt.server)
			cfg := fakeConfig(f)
			ctx := context.Background()
			c, err := Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			msgs := batchMessages(tt.n)
			if tt.edit != nil {
				tt.edit(msgs)
			}
			out, err := c.SendBatch(ctx, msgs, true)
			if got := f.client(); got != tt.client {
				t.Errorf("client wrote:\n%q\nwant:\n%q", got, tt.client)
			}
			if (err != nil) != tt.batchErr {
				t.Errorf("batch error = %v, want error: %v", err, tt.batchErr)
			}
			if len(out) != tt.n {
				t.Fatalf("%d results for %d messages", len(out), tt.n)
			}
			checkBatchOutcomes(t, out, tt.status, tt.codes, tt.queueIDs)
			if !f.closed {
				t.Errorf("connection not closed")
			}
			checkTranscriptOnWire(t, cfg.Transcript.Events(), f.wire())
		})
	}
}

// TestSendBatchKeepsConnection: without quit the connection stays open
// for Send, which needs no RSET after a batch that ended cleanly.
func TestSendBatchKeepsConnection(t *testing.T) {
	f := newFaker(ehloPipelining + envOK + queued("Q1") + envOK + queued("Q2") + envOK + queued("Q3") + "221 Bye\n")
	ctx := context.Background()
	c, err := Open(ctx, fakeConfig(f))
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.SendBatch(ctx, batchMessages(2), false)
	if err != nil || out[0].Err != nil || out[1].Err != nil {
		t.Fatalf("batch: %v %+v", err, out)
	}
	if f.closed {
		t.Fatal("connection closed without quit")
	}
	res, err := c.SendAndQuit(ctx, Envelope{From: "a@example.org", To: []string{"b3@example.net"}}, strings.NewReader("Subject: m3\n\nbody3\n"))
	if err != nil || res.QueueID != "Q3" {
		t.Fatalf("send after the batch: %v", err)
	}
	want := segs("EHLO client.test\n", envSeg(1), bodySeg(1)+envSeg(2), bodySeg(2), envSeg(3), bodySeg(3)+"QUIT\n")
	if got := f.client(); got != want {
		t.Errorf("client wrote:\n%q\nwant:\n%q", got, want)
	}
}

// TestPostfixBatch delivers 20 messages in one batch to the loopback
// Postfix through a delay proxy, with DATA and with BDAT, reads each back,
// and counts the client's waits: EHLO, the first envelope and one per
// message with DATA; with BDAT at most EHLO and one per message (each
// message goes before the reply to the one before it is read, so replies
// to two messages often come in one burst: fewer waits), and an RSET
// before each message after the first.
func TestPostfixBatch(t *testing.T) {
	p := testenv.Postfix(t)
	const n = 20
	for _, chunking := range []bool{false, true} {
		name, wantWaits := "DATA", n+2
		if chunking {
			name, wantWaits = "BDAT", n+1
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			proxy, err := delayproxy.Start(p.SMTPAddr, 2*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()
			tr := NewTranscript()
			ctx := context.Background()
			c, err := Open(ctx, Config{Addr: proxy.Addr(), Transcript: tr, DisableChunking: !chunking})
			if err != nil {
				t.Fatal(err)
			}
			msgs := make([]BatchMessage, n)
			tokens := make([]string, n)
			for i := range msgs {
				tokens[i] = testenv.UniqueToken()
				msgs[i] = BatchMessage{
					Envelope: Envelope{From: "sender@elsewhere.test", To: []string{testenv.UniqueAddress()}},
					Message:  strings.NewReader(realMessage(tokens[i], "", fmt.Sprintf("message %d of the batch\n.leading dot\n", i))),
				}
			}
			out, err := c.SendBatch(ctx, msgs, true)
			if err != nil {
				t.Fatalf("batch: %v\n%s", err, dumpTranscript(tr))
			}
			for i, r := range out {
				if st := StatusOf(r.Result, r.Err); st != StatusSent || r.Result.QueueID == "" {
					t.Errorf("message %d: %q, queue id %q: %v", i, st, r.Result.QueueID, r.Err)
				}
			}
			wantRsets := 0
			if chunking {
				wantRsets = n - 1
			}
			if got := countPrefix(clientLines(tr), "RSET"); got != wantRsets {
				t.Errorf("%d RSETs in a clean batch, want %d", got, wantRsets)
			}
			// The proxy has counted every reply once the connection is done.
			testenv.WaitUntil(t, "the proxy's one connection to be done", func() bool {
				conns := proxy.Conns()
				return len(conns) == 1 && conns[0].Done
			})
			if got := proxy.Waits(); got != wantWaits && !(chunking && got < wantWaits) {
				t.Errorf("%d client waits for %d messages, want %d", got, n, wantWaits)
			}
			for i, tok := range tokens {
				got := string(testenv.WaitForMessage(t, p.Maildir, tok, deliveryWait))
				if want := fmt.Sprintf("message %d of the batch\n.leading dot\n", i); !strings.HasSuffix(got, want) {
					t.Errorf("message %d stored as %q", i, got)
				}
			}
		})
	}
}

// checkBatchOutcomes checks each message's status, reply code (0 for none)
// and queue id in a batch's outcomes.
func checkBatchOutcomes(t *testing.T, out []BatchResult, status []Status, codes []int, queueIDs []string) {
	t.Helper()
	for i, r := range out {
		if r.Result == nil {
			t.Fatalf("message %d: nil Result", i+1)
		}
		if st := StatusOf(r.Result, r.Err); st != status[i] {
			t.Errorf("message %d: status %q (err %v), want %q", i+1, st, r.Err, status[i])
		}
		var e *Error
		if r.Err != nil && !errors.As(r.Err, &e) {
			t.Errorf("message %d: err %v is not *Error", i+1, r.Err)
		}
		if e != nil && e.Code != codes[i] {
			t.Errorf("message %d: code %d, want %d (%v)", i+1, e.Code, codes[i], e)
		}
		if r.Result.QueueID != queueIDs[i] {
			t.Errorf("message %d: queue id %q, want %q", i+1, r.Result.QueueID, queueIDs[i])
		}
	}
}
