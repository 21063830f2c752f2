package outbox

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// hangServer is a scripted SMTP server (no extensions) that stops
// answering at one point of the conversation: after the RCPT command
// (hangAt "RCPT": the client is waiting, the message not sent yet), or
// after the end of the message (hangAt "."): it has the whole message
// and never answers, like a server whose client died just after sending
// the end.
type hangServer struct {
	ln     net.Listener
	hangAt string
	mu     sync.Mutex
	ends   int // messages received up to their final "."
	hung   chan struct{}
	once   sync.Once
}

func newHangServer(t *testing.T, hangAt string) *hangServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &hangServer{ln: ln, hangAt: hangAt, hung: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *hangServer) addr() string { return s.ln.Addr().String() }

func (s *hangServer) endsReceived() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ends
}

// hang stops answering: it reads until the client closes the connection.
func (s *hangServer) hang(c net.Conn, r *bufio.Reader) {
	s.once.Do(func() { close(s.hung) })
	for {
		if _, err := r.ReadString('\n'); err != nil {
			c.Close()
			return
		}
	}
}

func (s *hangServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(line string) { c.Write([]byte(line + "\r\n")) }
	say("220 hang.test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimRight(line, "\r\n"))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250 hang.test")
		case strings.HasPrefix(cmd, "MAIL"):
			say("250 2.1.0 Ok")
		case strings.HasPrefix(cmd, "RCPT"):
			if s.hangAt == "RCPT" {
				s.hang(c, r)
				return
			}
			say("250 2.1.5 Ok")
		case cmd == "DATA":
			say("354 End data with <CR><LF>.<CR><LF>")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			s.mu.Lock()
			s.ends++
			s.mu.Unlock()
			if s.hangAt == "." {
				s.hang(c, r)
				return
			}
			say("250 2.0.0 Ok: queued as HANG")
		case cmd == "QUIT":
			say("221 2.0.0 Bye")
			return
		default:
			say("250 Ok")
		}
	}
}

// dyingStore is the store of a process that dies during its attempt: the
// claim and the mark are written, the outcome never is.
type dyingStore struct{ *store.Store }

var errDied = errors.New("the process died before recording the outcome")

func (d dyingStore) FinishAttemptSend(context.Context, int64, string, store.OutboxStatus, time.Time, string, *store.Send) error {
	return errDied
}

func (d dyingStore) CreateSend(context.Context, *store.Send) error { return errDied }

// crashDuring makes a worker over dyingStore attempt the one queued item
// against a server that hangs at hangAt, then stops it (the attempt is
// aborted, its outcome not written: as if the process had died), and
// returns the item as the crash left it.
func crashDuring(t *testing.T, h *harness, hangAt string, lease time.Duration) (*hangServer, *store.OutboxItem) {
	t.Helper()
	srv := newHangServer(t, hangAt)
	profile := func(context.Context, int64) (smtp.Config, error) {
		return smtp.Config{Addr: srv.addr(), TLS: smtp.TLSNone, LocalName: "sockmail.test"}, nil
	}
	items := h.enqueue(t, 1, "crash")
	w, _ := New(Deps{Store: dyingStore{h.s}, Profiles: profile, Owner: "dead", Lease: lease,
		PollInterval: 10 * time.Millisecond, ShutdownGrace: 50 * time.Millisecond})
	stop := run(t, w)
	testenv.WaitUntil(t, "the attempt to reach the server's hang", func() bool {
		select {
		case <-srv.hung:
			return true
		default:
			return false
		}
	})
	stop()
	it, err := h.s.OutboxItem(context.Background(), items[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if it.Status != store.OutboxSending || it.LeaseOwner != "dead" {
		t.Fatalf("after the crash: %+v", it)
	}
	return srv, it
}

// rescue runs a second worker once the crashed one's lease has expired
// (its clock runs a lease ahead) until ok holds for the counts.
func rescue(t *testing.T, h *harness, lease time.Duration, ok func(map[store.OutboxStatus]int) bool) {
	t.Helper()
	polls := &claimCounter{Store: h.s}
	w, _ := New(Deps{Store: polls, Send: h.deliver, Profiles: noProfiles, Owner: "alive", Lease: lease,
		PollInterval: 10 * time.Millisecond, Now: func() time.Time { return time.Now().Add(lease) }})
	stop := run(t, w)
	waitCounts(t, h.s, ok)
	polls.waitPolls(t, 5) // several polls: nothing more happens
	stop()
}

// TestWorkerCrashAfterEndMarked: the process dies after the end of the
// message went out (the server has the message, the outcome is not
// recorded). The next worker does not send it again: it becomes unknown.
func TestWorkerCrashAfterEndMarked(t *testing.T) {
	h := newHarness(t)
	lease := 2 * time.Second
	srv, it := crashDuring(t, h, ".", lease)
	if it.DataSentAt.IsZero() {
		t.Fatalf("the end of the message went out without the mark: %+v", it)
	}
	if n := srv.endsReceived(); n != 1 {
		t.Fatalf("server received %d messages, want 1", n)
	}
	rescue(t, h, lease, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxUnknown] == 1 })
	got, _ := h.s.OutboxItem(context.Background(), it.ID)
	if got.Status != store.OutboxUnknown || got.LastError != store.DataSentLostError || got.TakenOverFrom != "dead" || got.Attempts != 1 {
		t.Errorf("after the rescue: %+v", got)
	}
	if n := h.sent[it.MessageID]; n != 0 {
		t.Errorf("sent again %d times after the end of the message had gone out", n)
	}
	sub, _ := h.s.Submission(context.Background(), *it.SubmissionID)
	if sub.Status != store.SubmissionUnknown {
		t.Errorf("submission %s, want unknown", sub.Status)
	}
}

// TestWorkerCrashBeforeEnd: the process dies before the end of the
// message (the server discards what it had): the next worker sends it.
func TestWorkerCrashBeforeEnd(t *testing.T) {
	h := newHarness(t)
	lease := 2 * time.Second
	srv, it := crashDuring(t, h, "RCPT", lease)
	if !it.DataSentAt.IsZero() || srv.endsReceived() != 0 {
		t.Fatalf("marked (%v) or received (%d) before the end of the message", it.DataSentAt, srv.endsReceived())
	}
	rescue(t, h, lease, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == 1 })
	got, _ := h.s.OutboxItem(context.Background(), it.ID)
	if got.Status != store.OutboxSent || got.Attempts != 2 || !got.DataSentAt.IsZero() {
		t.Errorf("after the rescue: %+v", got)
	}
	if n := h.sent[it.MessageID]; n != 1 {
		t.Errorf("sent %d times by the rescuer, want 1", n)
	}
}

// lostLeaseStore refuses the mark as if another worker had taken the item.
type lostLeaseStore struct{ *store.Store }

func (l lostLeaseStore) MarkDataSent(context.Context, int64, string, time.Time) error {
	return store.ErrLeaseLost
}

// TestWorkerLeaseLostBeforeEnd: when the mark finds the lease gone, the
// end of the message is not sent (the new owner sends the message).
func TestWorkerLeaseLostBeforeEnd(t *testing.T) {
	h := newHarness(t)
	srv := newHangServer(t, "")
	profile := func(context.Context, int64) (smtp.Config, error) {
		return smtp.Config{Addr: srv.addr(), TLS: smtp.TLSNone, LocalName: "sockmail.test"}, nil
	}
	items := h.enqueue(t, 1, "lost")
	w, _ := New(Deps{Store: lostLeaseStore{h.s}, Profiles: profile, PollInterval: 10 * time.Millisecond,
		Backoff: Backoff{Base: time.Hour}})
	stop := run(t, w)
	var it *store.OutboxItem
	testenv.WaitUntil(t, "the attempt to be recorded", func() bool {
		it, _ = h.s.OutboxItem(context.Background(), items[0].ID)
		return it != nil && it.LastSendID != nil
	})
	stop()
	if n := srv.endsReceived(); n != 0 {
		t.Errorf("the server received the end of %d messages after the lease was lost", n)
	}
	snd, err := h.s.Send(context.Background(), *it.LastSendID)
	if err != nil || !strings.Contains(eventsText(snd.Events), "the lease on this item was lost") {
		t.Errorf("attempt's transcript: %v %v", err, snd)
	}
}
