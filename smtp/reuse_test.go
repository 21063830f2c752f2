package smtp

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

// Connection reuse after failures, BDAT with several chunks, Open's
// manners, and a context deadline.

// TestNoSendOnBrokenConnection: after the server said 421 (or the
// connection broke), a further Send on the same Client says nothing and
// its transcript shows nothing said.
func TestNoSendOnBrokenConnection(t *testing.T) {
	tests := []struct{ name, script string }{
		{"421 after the body", ehloPipelining + "250 Ok\n250 Ok\n354 go\n421 4.3.2 bye\n"},
		{"drop after the body", ehloPipelining + "250 Ok\n250 Ok\n354 go\n"},
		{"421 at MAIL", ehloPipelining + "421 4.3.2 bye\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaker(tt.script)
			cfg := fakeConfig(f)
			ctx := context.Background()
			c, err := Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Send(ctx, envelope1, strings.NewReader("x\n")); err == nil {
				t.Fatal("first send succeeded")
			}
			wire := f.wire()
			n := len(cfg.Transcript.Events())
			_, err = c.Send(ctx, envelope1, strings.NewReader("y\n"))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("second send: err = %v, want *Error", err)
			}
			if f.wire() != wire {
				t.Errorf("second send wrote %q", strings.TrimPrefix(f.wire(), wire))
			}
			for _, ev := range cfg.Transcript.Events()[n:] {
				if ev.Dir == DirClient {
					t.Errorf("transcript shows %q for the second send", ev.Line)
				}
			}
			if err := c.Quit(ctx); err == nil {
				t.Errorf("Quit on a broken connection succeeded")
			}
			if f.wire() != wire {
				t.Errorf("Quit wrote %q", strings.TrimPrefix(f.wire(), wire))
			}
		})
	}
}

// TestOpenSaysQuitAfterRefusal: Open that fails on a refusal (the
// connection still in step) ends with QUIT rather than hanging up.
func TestOpenSaysQuitAfterRefusal(t *testing.T) {
	f := newFaker(ehloAuth + "535 5.7.8 no\n221 Bye\n")
	cfg := fakeConfig(f)
	cfg.Auth = &Auth{Username: "u", Password: "p"}
	cfg.AllowInsecureAuth = true
	_, err := Open(context.Background(), cfg)
	var e *Error
	if !errors.As(err, &e) || e.Code != 535 {
		t.Fatalf("err = %v", err)
	}
	want := lf("EHLO client.test\n") + "|" + lf("AUTH PLAIN AHUAcA==\n") + "|" + lf("QUIT\n")
	if got := f.client(); got != want {
		t.Errorf("client wrote:\n%q\nwant:\n%q", got, want)
	}
	if !f.closed {
		t.Errorf("not closed")
	}
}

// TestContextDeadline: a context deadline ends a blocked read at the
// deadline; the failure is a temporary timeout, not an abort.
func TestContextDeadline(t *testing.T) {
	got, stop := make(chan struct{}), make(chan struct{})
	addr := serve(t, blockAfterEHLO(got, stop))
	t.Cleanup(func() { close(stop) })
	// start before the context: its deadline is 300 ms after its own
	// creation, which a loaded machine may delay past a later start.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err := SendMail(ctx, Config{Addr: addr}, envelope1, strings.NewReader("x"), SendOptions{})
	// Not before the deadline; a slow machine may take longer. Without
	// it the read would wait for the 5-minute command timeout.
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("returned after %v, before the 300ms deadline", d)
	}
	var e *Error
	if !errors.As(err, &e) || e.Phase != PhaseEHLO || !e.Temporary() || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a temporary ehlo error wrapping context.DeadlineExceeded", err)
	}
	if st := StatusOf(res, err); st != StatusTempFail {
		t.Errorf("status %q, want temporary failure", st)
	}
}

// bigMessage returns a message of about n bytes with numbered lines.
func bigMessage(token string, n int) string {
	var b strings.Builder
	b.WriteString(realMessage(token, "", ""))
	for i := 0; b.Len() < n; i++ {
		b.WriteString("line " + strconv.Itoa(i) + " " + strings.Repeat("x", 60) + "\n")
		if i%1000 == 0 {
			b.WriteString(".dot line " + strconv.Itoa(i) + "\n")
		}
	}
	return b.String()
}

// TestBDATChunks: a message larger than one chunk waits for the envelope
// replies before the first chunk, then sends every chunk; without
// PIPELINING it waits for each chunk's reply.
func TestBDATChunks(t *testing.T) {
	msg := bigMessage("tok-chunks", chunkSize+chunkSize/2)
	wire := normalised(msg, "\r\n")
	first, last := chunkSize, len(wire)-chunkSize
	tests := []struct {
		name   string
		ehlo   string
		script string
		client []string // the segments, each shortened to its first line
	}{
		{"pipelined", ehloFull, "250 Ok\n250 Ok\n250 Ok\n250 Ok: queued as B2\n221 Bye\n",
			[]string{"EHLO client.test", "MAIL FROM:<a@example.org>", "BDAT " + strconv.Itoa(first)}},
		{"not pipelined", ehloChunking, "250 Ok\n250 Ok\n250 Ok\n250 Ok: queued as B2\n221 Bye\n",
			[]string{"EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "BDAT " + strconv.Itoa(first), "BDAT " + strconv.Itoa(last) + " LAST", "QUIT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaker(tt.ehlo + tt.script)
			cfg := fakeConfig(f)
			res, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader(msg), SendOptions{})
			if err != nil || res.QueueID != "B2" {
				t.Fatalf("err %v\n%s", err, dumpTranscript(cfg.Transcript))
			}
			f.mu.Lock()
			writes := append([]string(nil), f.writes...)
			f.mu.Unlock()
			// Joined, the bytes are exactly the commands and the chunks.
			var want string
			if tt.name == "pipelined" {
				want = lf("EHLO client.test\n") + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\n") +
					"BDAT " + strconv.Itoa(first) + "\r\n" + wire[:first] + "BDAT " + strconv.Itoa(last) + " LAST\r\n" + wire[first:] + "QUIT\r\n"
			} else {
				want = lf("EHLO client.test\n") + lf("MAIL FROM:<a@example.org>\n") + lf("RCPT TO:<b@example.net>\n") +
					"BDAT " + strconv.Itoa(first) + "\r\n" + wire[:first] + "BDAT " + strconv.Itoa(last) + " LAST\r\n" + wire[first:] + "QUIT\r\n"
			}
			if got := strings.Join(writes, ""); got != want {
				t.Errorf("client bytes differ (got %d bytes, want %d)", len(got), len(want))
			}
			// The envelope went out (and was answered) before any chunk.
			var starts []string
			for _, w := range writes {
				if strings.HasPrefix(w, "BDAT") || strings.HasPrefix(w, "EHLO") || strings.HasPrefix(w, "MAIL") || strings.HasPrefix(w, "RCPT") || w == "QUIT\r\n" {
					starts = append(starts, strings.SplitN(w, "\r\n", 2)[0])
				}
			}
			for i, s := range tt.client {
				if i >= len(starts) || starts[i] != s {
					t.Errorf("write starts %q, want %q first", starts, tt.client)
					break
				}
			}
			// The transcript shows each BDAT before the lines it carries.
			lines := clientLines(cfg.Transcript)
			bdat := -1
			for i, l := range lines {
				if strings.HasPrefix(l, "BDAT "+strconv.Itoa(first)) {
					bdat = i
				}
			}
			if bdat < 0 || bdat+1 >= len(lines) || lines[bdat+1] != "From: tester@example.test" {
				t.Errorf("transcript does not show BDAT before its lines: %q", lines[:min(len(lines), 12)])
			}
		})
	}
}

// TestBDATEnvelopeRefusedBeforeChunks: a large message whose recipients
// are all refused costs no upload, and the connection goes on with RSET.
func TestBDATEnvelopeRefusedBeforeChunks(t *testing.T) {
	msg := bigMessage("tok-refused", chunkSize+10)
	f := newFaker(ehloFull + "250 Ok\n550 5.1.1 unknown\n250 Ok\n250 Ok\n250 Ok\n250 Ok: queued as R9\n221 Bye\n")
	cfg := fakeConfig(f)
	ctx := context.Background()
	c, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Send(ctx, envelope1, strings.NewReader(msg))
	var e *Error
	if !errors.As(err, &e) || e.Phase != PhaseRcpt || e.Code != 550 {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(f.wire(), "BDAT") {
		t.Errorf("chunks sent after the envelope was refused")
	}
	res, err := c.SendAndQuit(ctx, envelope1, strings.NewReader("small\n"))
	if err != nil || res.QueueID != "R9" {
		t.Fatalf("second send: %v\n%s", err, dumpTranscript(cfg.Transcript))
	}
	if !strings.Contains(f.wire(), lf("RSET\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nBDAT 7 LAST\nsmall\nQUIT\n")) {
		t.Errorf("second transaction not RSET + envelope + chunk in one write: %q", f.client()[strings.LastIndex(f.client(), "|"):])
	}
}

// TestPostfixLargeMessages: a message of a few chunks through BDAT and
// through DATA arrives whole.
func TestPostfixLargeMessages(t *testing.T) {
	p := testenv.Postfix(t)
	for _, chunk := range []bool{true, false} {
		name := "DATA"
		if chunk {
			name = "BDAT"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			token := testenv.UniqueToken()
			msg := bigMessage(token, 3*chunkSize+12345)
			tr := NewTranscript()
			res, err := SendMail(context.Background(), Config{Addr: p.SMTPAddr, Transcript: tr, DisableChunking: !chunk},
				Envelope{From: "sender@elsewhere.test", To: []string{testenv.UniqueAddress()}}, strings.NewReader(msg), SendOptions{})
			if err != nil || StatusOf(res, err) != StatusSent {
				t.Fatalf("send: %v\n%s", err, dumpTranscript(tr))
			}
			got := string(testenv.WaitForMessage(t, p.Maildir, token, deliveryWait))
			if want := normalised(msg, "\n"); !strings.HasSuffix(got, want) {
				t.Errorf("stored %d bytes, want them to end with the %d bytes sent", len(got), len(want))
			}
			if n := countPrefix(clientLines(tr), "BDAT "); chunk && n != 4 {
				t.Errorf("%d BDAT commands, want 4", n)
			}
		})
	}
}

func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// failingMessage writes part of a message and then fails, like a file
// that cannot be read to the end.
type failingMessage struct{ part string }

func (m failingMessage) WriteTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, m.part)
	if err != nil {
		return int64(n), err
	}
	return int64(n), errors.New("read attachment: input/output error")
}

// TestMessageSourceFails: when the message cannot be read to its end, the
// partial message must not be delivered: no terminator, the connection is
// closed, and the error says what failed.
func TestMessageSourceFails(t *testing.T) {
	tests := []struct{ name, ehlo, script, client string }{
		{"DATA", ehloPipelining, "250 Ok\n250 Ok\n354 go\n",
			lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n")},
		{"BDAT", ehloChunking, "250 Ok\n250 Ok\n",
			lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaker(tt.ehlo + tt.script)
			cfg := fakeConfig(f)
			res, err := SendMail(context.Background(), cfg, envelope1, failingMessage{"Subject: x\n\npartial body\n"}, SendOptions{})
			var e *Error
			if !errors.As(err, &e) || e.Phase != PhaseBody || e.Temporary() || e.OutcomeUnknown || !strings.Contains(err.Error(), "input/output error") {
				t.Fatalf("err = %v, want a permanent body error naming the cause", err)
			}
			if StatusOf(res, err) != StatusPermFail {
				t.Errorf("status %q", StatusOf(res, err))
			}
			if got := f.client(); got != tt.client {
				t.Errorf("client wrote:\n%q\nwant:\n%q", got, tt.client)
			}
			if !f.closed {
				t.Errorf("connection left open with a partial message")
			}
			if !hasEvent(cfg.Transcript.Events(), DirInfo, "reading the message failed") {
				t.Errorf("transcript does not say why:\n%s", dumpTranscript(cfg.Transcript))
			}
		})
	}
}

// TestProbeBytes: stopping after MAIL or RCPT resets the transaction and
// quits, pipelined or not, and sends no message.
func TestProbeBytes(t *testing.T) {
	tests := []struct {
		name, script string
		stop         Phase
		client       string
	}{
		{"after mail, pipelined", ehloPipelining + "250 Ok\n250 Ok\n221 Bye\n", PhaseMail,
			lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RSET\n") + "|" + lf("QUIT\n")},
		{"after rcpt, pipelined", ehloPipelining + "250 Ok\n250 Ok\n250 Ok\n221 Bye\n", PhaseRcpt,
			lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\n") + "|" + lf("RSET\n") + "|" + lf("QUIT\n")},
		{"after rcpt", ehloPlain + "250 Ok\n250 Ok\n250 Ok\n221 Bye\n", PhaseRcpt,
			lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") + "|" + lf("RSET\n") + "|" + lf("QUIT\n")},
		{"after ehlo", ehloPlain + "221 Bye\n", PhaseEHLO, lf("EHLO client.test\n") + "|" + lf("QUIT\n")},
		{"after greeting", "220 mx.test\n221 Bye\n", PhaseGreeting, lf("QUIT\n")},
		{"after connect", "", PhaseConnect, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaker(tt.script)
			cfg := fakeConfig(f)
			res, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x\n"), SendOptions{StopAfter: tt.stop})
			if err != nil || StatusOf(res, err) != StatusStopped {
				t.Fatalf("err %v status %q", err, StatusOf(res, err))
			}
			if got := f.client(); got != tt.client {
				t.Errorf("client wrote:\n%q\nwant:\n%q", got, tt.client)
			}
			if !f.closed {
				t.Errorf("not closed")
			}
		})
	}
}

// TestDialThenSendKeepsTLSRule: a Client from Dial says EHLO, STARTTLS
// and AUTH as its configuration asks before the first message, and never
// sends in clear text when the mode requires STARTTLS.
func TestDialThenSendKeepsTLSRule(t *testing.T) {
	ctx := context.Background()
	t.Run("lazy hello does STARTTLS", func(t *testing.T) {
		f := newFaker(ehloPlain + "221 Bye\n")
		cfg := fakeConfig(f)
		cfg.TLS = TLSStartTLS
		c, err := Dial(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Send(ctx, envelope1, strings.NewReader("x\n"))
		var e *Error
		if !errors.As(err, &e) || e.Phase != PhaseStartTLS {
			t.Fatalf("err = %v, want a starttls error", err)
		}
		if strings.Contains(f.wire(), "MAIL") {
			t.Errorf("sent in clear text: %q", f.wire())
		}
	})
	t.Run("Hello called by hand, then Send", func(t *testing.T) {
		f := newFaker(ehloStartTLS + "221 Bye\n")
		cfg := fakeConfig(f)
		cfg.TLS = TLSStartTLS
		c, err := Dial(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Hello(ctx); err != nil {
			t.Fatal(err)
		}
		_, err = c.Send(ctx, envelope1, strings.NewReader("x\n"))
		var e *Error
		if !errors.As(err, &e) || e.Phase != PhaseStartTLS || !strings.Contains(e.Message, "requires STARTTLS") {
			t.Fatalf("err = %v, want a starttls error", err)
		}
		if got := f.client(); got != lf("EHLO client.test\n") {
			t.Errorf("client wrote %q", got)
		}
	})
	t.Run("lazy hello authenticates", func(t *testing.T) {
		f := newFaker(ehloAuth + "235 ok\n250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n")
		cfg := fakeConfig(f)
		cfg.Auth = &Auth{Username: "u", Password: "p"}
		cfg.AllowInsecureAuth = true
		c, err := Dial(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.SendAndQuit(ctx, envelope1, strings.NewReader("x\n")); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(f.client(), "|"+lf("AUTH PLAIN AHUAcA==\n")+"|") {
			t.Errorf("no AUTH before the message: %q", f.client())
		}
	})
}

// TestIdleAndUseTranscript: a kept connection reports whether it can take
// another message (not after the server's unsolicited 421 or its close),
// and each message can have its own transcript.
func TestIdleAndUseTranscript(t *testing.T) {
	for _, end := range []string{"421", "close"} {
		t.Run(end, func(t *testing.T) {
			hangUp := make(chan struct{})
			addr := serve(t, func(s *serverConn) error {
				if err := s.send("220 mx.test\n"); err != nil {
					return err
				}
				if _, err := s.expect("EHLO"); err != nil {
					return err
				}
				if err := s.send("250-mx.test\n250 PIPELINING\n"); err != nil {
					return err
				}
				for range 2 { // two messages, the second after RSET
					if _, err := s.expect("MAIL FROM:"); err != nil {
						return err
					}
					if _, err := s.expect("RCPT TO:"); err != nil {
						return err
					}
					if _, err := s.expect("DATA"); err != nil {
						return err
					}
					if err := s.send("250 2.1.0 Ok\n250 2.1.5 Ok\n354 go\n"); err != nil {
						return err
					}
					if _, err := s.readData(); err != nil {
						return err
					}
					if err := s.send("250 2.0.0 Ok: queued as Q1\n"); err != nil {
						return err
					}
				}
				<-hangUp
				if end == "421" {
					return s.send("421 4.4.2 mx.test Error: timeout exceeded\n")
				}
				return nil // serve closes the connection
			})
			first := NewTranscript()
			ctx := context.Background()
			c, err := Open(ctx, Config{Addr: addr, Transcript: first})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Send(ctx, envelope1, strings.NewReader("one\n")); err != nil {
				t.Fatal(err)
			}
			if !c.Idle() {
				t.Fatal("not idle after a clean transaction")
			}
			second := NewTranscript()
			c.UseTranscript(second)
			if _, err := c.Send(ctx, envelope1, strings.NewReader("two\n")); err != nil {
				t.Fatalf("second message: %v\n%s", err, dumpTranscript(second))
			}
			if hasEvent(first.Events(), DirClient, "RSET") || !hasEvent(second.Events(), DirClient, "MAIL FROM:") ||
				hasEvent(second.Events(), DirClient, "EHLO") || !hasEvent(second.Events(), DirServer, "queued as Q1") {
				t.Errorf("transcripts not split per message:\nfirst:\n%s\nsecond:\n%s", dumpTranscript(first), dumpTranscript(second))
			}
			if !c.Idle() {
				t.Fatal("not idle after the second message")
			}
			close(hangUp)
			testenv.WaitUntil(t, "the connection to stop being idle after the server's "+end, func() bool { return !c.Idle() })
		})
	}
}
