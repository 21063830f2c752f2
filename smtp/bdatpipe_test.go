package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

// TestSendBatchBDATPipelined checks a batch to a server with CHUNKING and
// PIPELINING, speaking in turns (stepFaker): the RSET, envelope and BDAT
// LAST of each message go out before the replies to the message before it
// are read (a client that waited for them first would read the end of
// the connection), the replies are matched to their messages in order,
// and no message is reported sent unless its own BDAT LAST was answered
// 250 in step.
func TestSendBatchBDATPipelined(t *testing.T) {
	const greet = "220 mx.test ESMTP\n|250-mx.test\n250-PIPELINING\n250-ENHANCEDSTATUSCODES\n250 CHUNKING\n|"
	accepted := func(id string) string { return "250 2.1.0 Ok\n250 2.1.5 Ok\n" + queued(id) }
	reset := "250 2.0.0 Ok\n"
	rsetBdat := func(i int) string { return "RSET\n" + bdatSeg(i) }
	tests := []struct {
		name      string
		server    string // flights, "|" between them: one per client write
		n         int
		edit      func([]BatchMessage)
		beforeEnd func(call int) error
		client    string
		status    []Status
		codes     []int // the error code of each message, 0 for none
		queueIDs  []string
		batchErr  bool
	}{
		{
			name:   "all accepted: each message written before the reply to the one before",
			server: greet + accepted("C1") + "|" + reset + accepted("C2") + "|" + reset + accepted("C3") + "221 Bye\n",
			n:      3,
			client: segs("EHLO client.test\n", bdatSeg(1), rsetBdat(2), rsetBdat(3)+"QUIT\n"),
			status: []Status{StatusSent, StatusSent, StatusSent}, codes: []int{0, 0, 0},
			queueIDs: []string{"C1", "C2", "C3"},
		},
		{
			name: "message 1's BDAT LAST refused while message 2 is in flight: the RSET before 2 clears it, 2 and 3 sent",
			server: greet + "250 2.1.0 Ok\n250 2.1.5 Ok\n554 5.7.1 content rejected\n|" + reset + accepted("C2") + "|" +
				reset + accepted("C3") + "221 Bye\n",
			n:      3,
			client: segs("EHLO client.test\n", bdatSeg(1), rsetBdat(2), rsetBdat(3)+"QUIT\n"),
			status: []Status{StatusPermFail, StatusSent, StatusSent}, codes: []int{554, 0, 0},
			queueIDs: []string{"", "C2", "C3"},
		},
		{
			name: "message 2's RCPT refused: its BDAT answered too, 1 and 3 sent",
			server: greet + accepted("C1") + "|" + reset + "250 2.1.0 Ok\n550 5.1.1 unknown user\n554 5.5.1 no valid recipients\n|" +
				reset + accepted("C3") + "221 Bye\n",
			n:      3,
			client: segs("EHLO client.test\n", bdatSeg(1), rsetBdat(2), rsetBdat(3)+"QUIT\n"),
			status: []Status{StatusSent, StatusPermFail, StatusSent}, codes: []int{0, 550, 0},
			queueIDs: []string{"C1", "", "C3"},
		},
		{
			name: "a stray 250 after message 1's verdict: 2's refusal shifts to 3's RSET, and neither 2 nor 3 is sent",
			server: greet + accepted("C1") + "250 2.0.0 stray\n|" + reset + "250 2.1.0 Ok\n250 2.1.5 Ok\n554 5.7.1 rejected\n|" +
				reset + accepted("C3") + "221 Bye\n",
			n:      3,
			client: segs("EHLO client.test\n", bdatSeg(1), rsetBdat(2), rsetBdat(3)+"QUIT\n"),
			status: []Status{StatusSent, StatusUnknown, StatusUnknown}, codes: []int{0, 0, 0},
			queueIDs: []string{"C1", "", ""},
			batchErr: true,
		},
		{
			name:   "a stray 250 before the last message's verdict: QUIT's reply shows it, the last is not sent",
			server: greet + accepted("C1") + "|" + "250 2.0.0 stray\n" + reset + "250 2.1.0 Ok\n250 2.1.5 Ok\n554 5.7.1 rejected\n221 Bye\n",
			n:      2,
			client: segs("EHLO client.test\n", bdatSeg(1), rsetBdat(2)+"QUIT\n"),
			status: []Status{StatusSent, StatusUnknown}, codes: []int{0, 0},
			queueIDs: []string{"C1", ""},
			batchErr: true,
		},
		{
			name:   "a 354 to a BDAT LAST: out of step, that message and the one in flight are not sent",
			server: greet + "250 2.1.0 Ok\n250 2.1.5 Ok\n354 go ahead\n|" + reset + accepted("C2") + "|" + reset + accepted("C3") + "221 Bye\n",
			n:      3,
			client: segs("EHLO client.test\n", bdatSeg(1), rsetBdat(2)),
			status: []Status{StatusUnknown, StatusUnknown, StatusTempFail}, codes: []int{0, 0, 0},
			queueIDs: []string{"", "", ""},
			batchErr: true,
		},
		{
			name: "BeforeEnd fails for message 2: its end withheld after 1's verdict is read, 3 not sent",
			server: greet + "250 2.1.0 Ok\n250 2.1.5 Ok\n|250 2.0.0 chunk Ok\n|" + queued("C1") + "|" +
				reset + "250 2.1.0 Ok\n250 2.1.5 Ok\n|",
			n: 3,
			beforeEnd: func(call int) error {
				if call == 2 {
					return errors.New("the queue cannot record the end")
				}
				return nil
			},
			client: segs("EHLO client.test\n", "MAIL FROM:<a@example.org>\nRCPT TO:<b1@example.net>\n",
				"BDAT 22\nSubject: m1\n\nbody1\n", "BDAT 0 LAST\n",
				"RSET\nMAIL FROM:<a@example.org>\nRCPT TO:<b2@example.net>\n", "BDAT 22\nSubject: m2\n\nbody2\n"),
			status: []Status{StatusSent, StatusTempFail, StatusTempFail}, codes: []int{0, 0, 0},
			queueIDs: []string{"C1", "", ""},
			batchErr: true,
		},
		{
			name:   "421 to message 2's BDAT LAST: message 3, in flight, was not taken",
			server: greet + accepted("C1") + "|" + reset + "250 2.1.0 Ok\n250 2.1.5 Ok\n421 4.3.2 shutting down\n|",
			n:      3,
			client: segs("EHLO client.test\n", bdatSeg(1), rsetBdat(2), rsetBdat(3)+"QUIT\n"),
			status: []Status{StatusSent, StatusTempFail, StatusTempFail}, codes: []int{0, 421, 0},
			queueIDs: []string{"C1", "", ""},
			batchErr: true,
		},
		{
			name:   "connection lost after message 2's end: 2 and 3, in flight, unknown",
			server: greet + accepted("C1") + "|",
			n:      3,
			client: segs("EHLO client.test\n", bdatSeg(1), rsetBdat(2), rsetBdat(3)+"QUIT\n"),
			status: []Status{StatusSent, StatusUnknown, StatusUnknown}, codes: []int{0, 0, 0},
			queueIDs: []string{"C1", "", ""},
			batchErr: true,
		},
		{
			name: "503 to the RSET after an end (anti-smuggling): 2 set aside, 3 answered on its own, 2 again alone",
			server: greet + accepted("C1") + "|" + strings.Repeat(refusedAfterEnd+"\n", 4) + "|" + reset + accepted("C3") +
				"|" + reset + "|" + accepted("C2") + "|" + accepted("C4") + "|221 Bye\n",
			n: 4,
			client: segs("EHLO client.test\n", bdatSeg(1), rsetBdat(2), rsetBdat(3), "RSET\n", bdatSeg(2),
				bdatSeg(4), "QUIT\n"),
			status: []Status{StatusSent, StatusSent, StatusSent, StatusSent}, codes: []int{0, 0, 0, 0},
			queueIDs: []string{"C1", "C2", "C3", "C4"},
		},
		{
			name: "503 to the RSET after an end, the refused message Repeatable (not a Seeker): sent again",
			server: greet + accepted("C1") + "|" + strings.Repeat(refusedAfterEnd+"\n", 4) + "|" + reset + accepted("C3") +
				"|" + reset + "|" + accepted("C2") + "|" + accepted("C4") + "|221 Bye\n",
			n:    4,
			edit: func(m []BatchMessage) { m[1].Message = repeatableMessage("Subject: m2\n\nbody2\n") },
			client: segs("EHLO client.test\n", bdatSeg(1), rsetBdat(2), rsetBdat(3), "RSET\n", bdatSeg(2),
				bdatSeg(4), "QUIT\n"),
			status: []Status{StatusSent, StatusSent, StatusSent, StatusSent}, codes: []int{0, 0, 0, 0},
			queueIDs: []string{"C1", "C2", "C3", "C4"},
		},
		{
			name: "503 to the RSET after an end, the refused message cannot be read again: it fails temporarily, nothing lost",
			server: greet + accepted("C1") + "|" + strings.Repeat(refusedAfterEnd+"\n", 4) + "|" + reset + accepted("C3") +
				"|" + reset + "|" + accepted("C4") + "|221 Bye\n",
			n:      4,
			edit:   func(m []BatchMessage) { m[1].Message = onlyWriterTo{m[1].Message} },
			client: segs("EHLO client.test\n", bdatSeg(1), rsetBdat(2), rsetBdat(3), "RSET\n", bdatSeg(4), "QUIT\n"),
			status: []Status{StatusSent, StatusTempFail, StatusSent, StatusSent}, codes: []int{0, 0, 0, 0},
			queueIDs: []string{"C1", "", "C3", "C4"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newStepFaker(tt.server)
			cfg := fakeConfig(f.faker)
			cfg.Dialer = connDialer{f}
			calls := 0
			if tt.beforeEnd != nil {
				cfg.BeforeEnd = func(context.Context) error {
					calls++
					return tt.beforeEnd(calls)
				}
			}
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
			if t.Failed() {
				t.Logf("transcript:\n%s", dumpTranscript(cfg.Transcript))
			}
		})
	}
}

// TestSendBatchBDATKept: a batch without QUIT keeps the connection; its
// last message's verdict is checked for company (a second reply with it
// makes the outcome unknown), and after a clean batch the connection is
// idle for the next one, which needs no RSET.
func TestSendBatchBDATKept(t *testing.T) {
	const greet = "220 mx.test ESMTP\n|250-mx.test\n250-PIPELINING\n250 CHUNKING\n|"
	accepted := func(id string) string { return "250 2.1.0 Ok\n250 2.1.5 Ok\n" + queued(id) }
	for _, stray := range []bool{false, true} {
		t.Run(fmt.Sprintf("stray=%v", stray), func(t *testing.T) {
			last := "250 2.0.0 Ok\n" + accepted("C2")
			if stray {
				last += "250 2.0.0 stray\n"
			}
			f := newStepFaker(greet + accepted("C1") + "|" + last + "|" + accepted("C3") + "221 Bye\n")
			cfg := fakeConfig(f.faker)
			cfg.Dialer = connDialer{f}
			ctx := context.Background()
			c, err := Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.SendBatch(ctx, batchMessages(2), false)
			if stray {
				if st := StatusOf(out[1].Result, out[1].Err); st != StatusUnknown || out[0].Err != nil {
					t.Errorf("with a stray reply: %v, %q; want sent, unknown", out[0].Err, st)
				}
				if c.broken == nil {
					t.Errorf("the connection is still usable after a stray reply")
				}
				return
			}
			if err != nil || out[0].Err != nil || out[1].Err != nil {
				t.Fatalf("batch: %v %+v", err, out)
			}
			if c.broken != nil || c.needRset || c.quitSent {
				t.Fatalf("after a clean batch: broken %v, needRset %v, quitSent %v", c.broken, c.needRset, c.quitSent)
			}
			res, err := c.SendAndQuit(ctx, Envelope{From: "a@example.org", To: []string{"b3@example.net"}}, strings.NewReader("Subject: m3\n\nbody3\n"))
			if err != nil || res.QueueID != "C3" {
				t.Fatalf("send after the batch: %v", err)
			}
			want := segs("EHLO client.test\n", bdatSeg(1), "RSET\n"+bdatSeg(2), bdatSeg(3)+"QUIT\n")
			if got := f.client(); got != want {
				t.Errorf("client wrote:\n%q\nwant:\n%q", got, want)
			}
		})
	}
}

// onlyWriterTo hides every method of a message but WriteTo: it cannot be
// rewound.
type onlyWriterTo struct{ io.WriterTo }

// TestPostfixBatchBDATMixed sends a batch of small messages and messages
// of several chunks to the loopback Postfix with CHUNKING, with a
// BeforeEnd hook, on a connection kept (Idle) after it, and reads every
// message back: a message larger than a
// chunk reads the verdict on the one before (in flight) before it waits
// for its own envelope replies, and the hook runs once for each message,
// before its end goes out (the end of the message before it has gone, the
// hook has not yet run for it when its own end is written).
func TestPostfixBatchBDATMixed(t *testing.T) {
	p := testenv.Postfix(t)
	sizes := []int{0, 2*chunkSize + 999, 0, chunkSize + 1, 0}
	msgs := make([]BatchMessage, len(sizes))
	tokens := make([]string, len(sizes))
	bodies := make([]string, len(sizes))
	for i, n := range sizes {
		tokens[i] = testenv.UniqueToken()
		bodies[i] = realMessage(tokens[i], "", fmt.Sprintf("message %d\n", i))
		if n > 0 {
			bodies[i] = bigMessage(tokens[i], n)
		}
		msgs[i] = BatchMessage{
			Envelope: Envelope{From: "sender@elsewhere.test", To: []string{testenv.UniqueAddress()}},
			Message:  strings.NewReader(bodies[i]),
		}
	}
	tr := NewTranscript()
	ctx := context.Background()
	var ends []int // the number of BDAT ... LAST lines on the wire at each call
	cfg := Config{Addr: p.SMTPAddr, Transcript: tr, BeforeEnd: func(context.Context) error {
		ends = append(ends, countSuffix(clientLines(tr), " LAST"))
		return nil
	}}
	c, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The connection is kept: idle after the batch, nothing in flight.
	out, err := c.SendBatch(ctx, msgs, false)
	if err != nil {
		t.Fatalf("batch: %v\n%s", err, dumpTranscript(tr))
	}
	for i, r := range out {
		if st := StatusOf(r.Result, r.Err); st != StatusSent || r.Result.QueueID == "" {
			t.Errorf("message %d: %q, queue id %q: %v", i, st, r.Result.QueueID, r.Err)
		}
	}
	if !c.Idle() {
		t.Errorf("the kept connection is not idle after the batch")
	}
	if err := c.Quit(ctx); err != nil {
		t.Errorf("QUIT after the batch: %v", err)
	}
	for i, n := range ends {
		if n != i {
			t.Errorf("BeforeEnd call %d came with %d ends of messages on the wire, want %d", i+1, n, i)
		}
	}
	if len(ends) != len(msgs) {
		t.Errorf("BeforeEnd ran %d times for %d messages", len(ends), len(msgs))
	}
	if n := countPrefix(clientLines(tr), "RSET"); n != len(msgs)-1 {
		t.Errorf("%d RSETs, want one before each message after the first (%d)", n, len(msgs)-1)
	}
	for i, tok := range tokens {
		got := string(testenv.WaitForMessage(t, p.Maildir, tok, deliveryWait))
		if want := normalised(bodies[i], "\n"); !strings.HasSuffix(got, want) {
			t.Errorf("message %d: stored %d bytes, want them to end with the %d bytes sent", i, len(got), len(want))
		}
	}
}

// countSuffix counts the lines that end with suffix.
func countSuffix(lines []string, suffix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasSuffix(l, suffix) {
			n++
		}
	}
	return n
}

// repeatableMessage writes itself whole each time: Repeatable.
type repeatableMessage string

func (m repeatableMessage) WriteTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, string(m))
	return int64(n), err
}

func (m repeatableMessage) Repeatable() bool { return true }

// TestCancelAbortsBDATBatch: cancelling the context ends a pipelined BDAT
// batch blocked on a server that never answers the messages, at once (one
// guard watches the context for the whole batch): both messages whose end
// went out have an unknown outcome, the rest were not sent.
func TestCancelAbortsBDATBatch(t *testing.T) {
	got, stop := make(chan struct{}), make(chan struct{})
	addr := serve(t, func(s *serverConn) error {
		if err := s.send("220 mx.test\n"); err != nil {
			return err
		}
		if _, err := s.expect("EHLO"); err != nil {
			return err
		}
		if err := s.send("250-mx.test\n250-PIPELINING\n250 CHUNKING\n"); err != nil {
			return err
		}
		// The second message's RSET comes after the first one's chunk.
		for {
			line, err := s.readLine()
			if err != nil {
				return err
			}
			if strings.HasPrefix(line, "RSET") {
				break
			}
		}
		close(got)
		<-stop
		return nil
	})
	t.Cleanup(func() { close(stop) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := NewTranscript()
	defer func() {
		if t.Failed() {
			t.Logf("%s", dumpTranscript(tr))
		}
	}()
	c, err := Open(ctx, Config{Addr: addr, Transcript: tr})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		out []BatchResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := c.SendBatch(ctx, batchMessages(3), true)
		done <- result{out, err}
	}()
	<-got // the client wrote message 2 and waits for message 1's replies
	cancel()
	// Without the cancel the read would wait for the 10-minute timeout of
	// the end of data: returning within the stall limit shows the cancel
	// ended it.
	var r result
	select {
	case r = <-done:
	case <-time.After(testenv.StallLimit):
		t.Fatal("SendBatch did not return after cancel")
	}
	if !errors.Is(r.err, context.Canceled) {
		t.Errorf("batch error %v, want it to wrap context.Canceled", r.err)
	}
	want := []Status{StatusUnknown, StatusUnknown, StatusAborted}
	for i, o := range r.out {
		if st := StatusOf(o.Result, o.Err); st != want[i] {
			t.Errorf("message %d: %q (%v), want %q", i+1, st, o.Err, want[i])
		}
	}
}
