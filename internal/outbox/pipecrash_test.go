package outbox

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// pipeServer is a scripted SMTP server offering PIPELINING (not
// CHUNKING) that answers each command as it reads it, so a client may
// pipeline; it records the Message-ID of every message whose end it
// read. With dropAfter > 0 it closes the connection, without a reply,
// once it has read the end of its dropAfter-th message.
type pipeServer struct {
	ln        net.Listener
	dropAfter int

	mu    sync.Mutex
	ended []string // Message-IDs, in order, of the messages whose end came
	acked []string // those answered 250
}

func newPipeServer(t *testing.T, dropAfter int) *pipeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &pipeServer{ln: ln, dropAfter: dropAfter}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(c) })
		}
	})
	return s
}

func (s *pipeServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	messageIDLine := regexp.MustCompile(`(?i)^Message-ID: <([^>]+)>`)
	say := func(l string) bool { _, err := c.Write([]byte(l + "\r\n")); return err == nil }
	if !say("220 pipe.test ESMTP") {
		return
	}
	inData, id := false, ""
	for {
		_ = c.SetReadDeadline(time.Now().Add(testenv.StallLimit))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if inData {
			if m := messageIDLine.FindStringSubmatch(line); m != nil && id == "" {
				id = m[1]
			}
			if line != "." {
				continue
			}
			inData = false
			s.mu.Lock()
			s.ended = append(s.ended, id)
			drop := len(s.ended) == s.dropAfter
			if !drop {
				s.acked = append(s.acked, id)
			}
			s.mu.Unlock()
			if drop {
				return
			}
			if !say("250 2.0.0 Ok: queued as Q" + fmt.Sprint(len(s.acked))) {
				return
			}
			continue
		}
		cmd := strings.ToUpper(line)
		var ok bool
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			ok = say("250-pipe.test\r\n250-PIPELINING\r\n250 8BITMIME")
		case strings.HasPrefix(cmd, "DATA"):
			inData, id = true, ""
			ok = say("354 go ahead")
		case strings.HasPrefix(cmd, "QUIT"):
			say("221 bye")
			return
		default: // MAIL, RCPT, RSET, NOOP
			ok = say("250 2.0.0 Ok")
		}
		if !ok {
			return
		}
	}
}

func (s *pipeServer) result() (ended, acked []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ended...), append([]string(nil), s.acked...)
}

// freezingStore is a Store whose MarkDataSent for one item writes the
// mark and then blocks, as a process frozen or killed between the mark's
// commit and the end of the message leaving; released, it reports the
// lease lost (another worker has taken the items over meanwhile).
type freezingStore struct {
	Store
	item    int64
	frozen  chan struct{}
	release chan struct{}
}

func (f *freezingStore) MarkDataSent(ctx context.Context, id int64, owner string, at time.Time) error {
	if id != f.item {
		return f.Store.MarkDataSent(ctx, id, owner, at)
	}
	if err := f.Store.MarkDataSent(ctx, id, owner, at); err != nil {
		return err
	}
	close(f.frozen)
	<-f.release
	return fmt.Errorf("frozen process woke up: %w", store.ErrLeaseLost)
}

// statusOf returns each item's status.
func statusesOf(t *testing.T, s *store.Store, ids []int64) []store.OutboxStatus {
	t.Helper()
	out := make([]store.OutboxStatus, len(ids))
	for i, id := range ids {
		it, err := s.OutboxItem(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = it.Status
	}
	return out
}

// TestPipelineCrash: crashes in the middle of a pipelined batch, against
// a scripted server, on both backends. No message is sent twice, none is
// recorded sent that the server did not acknowledge, and each item gets
// the outcome of its own message.
//
//   - The connection is lost after the end of the third of six messages:
//     the first two are sent, the third unknown (its end went, no reply),
//     the last three queued again (never sent).
//   - The process stops (frozen) right after marking the third message's
//     end sent, before that end left; another worker takes the items
//     over once their leases expire: the three with a mark (the first two
//     acknowledged, the third never ended) become unknown and are not
//     sent again; the three without are sent by the other worker. The
//     frozen worker, woken, finds its lease gone at the third message: it
//     withholds that end; the outcomes it knows then replace the unknown
//     ones (the first two sent, the third queued again, as its end never
//     left), and the third is sent once.
func TestPipelineCrash(t *testing.T) {
	for name, mk := range backendHarnesses(t) {
		t.Run(name+"/connection lost after the third end", func(t *testing.T) {
			h := mk(t)
			srv := newPipeServer(t, 3)
			tok := testenv.UniqueToken()
			ids := enqueueTo(t, h, 6, tok, "owner@example.org")
			profiles := func(context.Context, int64) (smtp.Config, error) {
				return smtp.Config{Addr: srv.ln.Addr().String(), LocalName: "sockmail.test"}, nil
			}
			w, err := New(Deps{Store: h.s, Profiles: profiles, Concurrency: 1, Pipeline: 6, PollInterval: time.Hour,
				Backoff: Backoff{Base: time.Hour}})
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, w)
			testenv.WaitFor(t, "the batch's outcomes", func() (string, bool) {
				st := fmt.Sprint(statusesOf(t, h.s, ids))
				return st, st == "[sent sent unknown queued queued queued]"
			})
			stop()
			ended, acked := srv.result()
			if want := ids2msg(tok, 0, 1, 2); fmt.Sprint(ended) != want {
				t.Errorf("the server read the end of %v, want %s", ended, want)
			}
			if want := ids2msg(tok, 0, 1); fmt.Sprint(acked) != want {
				t.Errorf("the server acknowledged %v, want %s", acked, want)
			}
			it, err := h.s.OutboxItem(context.Background(), ids[3])
			if err != nil {
				t.Fatal(err)
			}
			if it.Attempts != 0 && !strings.Contains(it.LastError, "not sent") {
				t.Errorf("item 4: last error %q, want a message not sent", it.LastError)
			}
			if all := eventText(transcriptOf(t, h.s, ids[2])); !strings.Contains(all, "UNKNOWN") {
				t.Errorf("item 3: its transcript does not say the outcome is unknown:\n%s", all)
			}
		})
		t.Run(name+"/process stopped after the third mark", func(t *testing.T) {
			h := mk(t)
			srv := newPipeServer(t, 0)
			tok := testenv.UniqueToken()
			ids := enqueueTo(t, h, 6, tok, "owner@example.org")
			profiles := func(context.Context, int64) (smtp.Config, error) {
				return smtp.Config{Addr: srv.ln.Addr().String(), LocalName: "sockmail.test"}, nil
			}
			fz := &freezingStore{Store: h.s, item: ids[2], frozen: make(chan struct{}), release: make(chan struct{})}
			a, err := New(Deps{Store: fz, Profiles: profiles, Owner: "frozen", Concurrency: 1, Pipeline: 6, PollInterval: time.Hour, Lease: 10 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			stopA := run(t, a)
			<-fz.frozen
			// The other worker's clock is past the frozen one's leases.
			later := func() time.Time { return time.Now().Add(time.Hour) }
			b, err := New(Deps{Store: h.s, Profiles: profiles, Owner: "other", Concurrency: 1, Pipeline: 6, PollInterval: 50 * time.Millisecond, Now: later})
			if err != nil {
				t.Fatal(err)
			}
			stopB := run(t, b)
			want := "[unknown unknown unknown sent sent sent]"
			testenv.WaitFor(t, "the take-over", func() (string, bool) {
				st := fmt.Sprint(statusesOf(t, h.s, ids))
				return st, st == want
			})
			stopB()
			for _, i := range []int{0, 1, 2} {
				it, err := h.s.OutboxItem(context.Background(), ids[i])
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(it.LastError, store.DataSentLostError) {
					t.Errorf("item %d: last error %q, want the lost-mark error", i+1, it.LastError)
				}
			}
			ended, acked := srv.result()
			if w := ids2msg(tok, 0, 1, 3, 4, 5); fmt.Sprint(ended) != w || fmt.Sprint(acked) != w {
				t.Errorf("the server read the end of %v and acknowledged %v, want %s each once", ended, acked, w)
			}
			// The frozen worker wakes: the third message's end is withheld,
			// and the outcomes it knows replace the unknown ones (the first
			// two were acknowledged; the third never ended: queued again).
			close(fz.release)
			stopA()
			if st, w := fmt.Sprint(statusesOf(t, h.s, ids)), "[sent sent queued sent sent sent]"; st != w {
				t.Errorf("after the frozen worker woke: %s, want %s", st, w)
			}
			if ended, _ := srv.result(); len(ended) != 5 {
				t.Errorf("the server read %d ends after the frozen worker woke, want still 5: %v", len(ended), ended)
			}
			// The third message goes once more, and arrives once.
			b2, err := New(Deps{Store: h.s, Profiles: profiles, Owner: "other", Concurrency: 1, Pipeline: 6, PollInterval: 50 * time.Millisecond, Now: later})
			if err != nil {
				t.Fatal(err)
			}
			stopB2 := run(t, b2)
			waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == 6 })
			stopB2()
			ended, acked = srv.result()
			if w := ids2msg(tok, 0, 1, 3, 4, 5, 2); fmt.Sprint(ended) != w || fmt.Sprint(acked) != w {
				t.Errorf("the server read the end of %v and acknowledged %v, want %s each once", ended, acked, w)
			}
		})
	}
}

// ids2msg returns the Message-IDs of enqueueTo's messages at indexes, as
// fmt prints a []string.
func ids2msg(tok string, idx ...int) string {
	var out []string
	for _, i := range idx {
		out = append(out, fmt.Sprintf("%s-%d@example.org", tok, i))
	}
	return fmt.Sprint(out)
}
