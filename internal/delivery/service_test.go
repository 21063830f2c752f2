package delivery_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"sockmail/internal/delivery"
	"sockmail/internal/store"
	"sockmail/smtp"
)

// memStore keeps sends in memory.
type memStore struct {
	mu    sync.Mutex
	next  int64
	sends map[int64]store.Send
}

func (m *memStore) CreateSend(_ context.Context, s *store.Send) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	s.ID = m.next
	if m.sends == nil {
		m.sends = map[int64]store.Send{}
	}
	m.sends[s.ID] = *s
	return nil
}

func (m *memStore) FinishSend(_ context.Context, s *store.Send) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sends[s.ID] = *s
	return nil
}

func (m *memStore) get(id int64) store.Send {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sends[id]
}

// stepClock advances by step at every reading.
type stepClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

// blockingSend says it is connected, signals started, and then waits
// for release or for its context to end.
func blockingSend(started chan<- struct{}, release <-chan struct{}) delivery.SendFunc {
	return func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, _ smtp.Message, _ smtp.SendOptions) (*smtp.Result, error) {
		cfg.Transcript.Info(smtp.PhaseConnect, "connected")
		close(started)
		select {
		case <-ctx.Done():
			return &smtp.Result{Server: cfg.Addr}, ctx.Err()
		case <-release:
		}
		return &smtp.Result{Server: cfg.Addr, Final: &smtp.Reply{Code: 250}, QueueID: "Q1",
			Recipients: []smtp.RecipientResult{{Address: env.To[0], Accepted: true, Code: 250}}}, nil
	}
}

func newJob() *delivery.Job {
	snd := delivery.NewSend(time.Now(), delivery.Record{Source: delivery.SourceWeb, Server: "mx.test:25", From: "a@example.test",
		To: []string{"b@example.test"}, Message: []byte("Subject: hi\r\n\r\nhello\r\n")})
	return &delivery.Job{Send: snd, Config: smtp.Config{Addr: "mx.test:25", Transcript: smtp.NewTranscript()},
		Envelope: smtp.Envelope{From: "a@example.test", To: []string{"b@example.test"}}, Message: []byte("Subject: hi\r\n\r\nhello\r\n")}
}

func lines(evs []smtp.Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.Line + "\n")
	}
	return b.String()
}

// start starts a job on s with send and returns its id and live state
// once the send has begun.
func start(t *testing.T, s *delivery.Service, started <-chan struct{}) (int64, *delivery.Live) {
	t.Helper()
	id, l := startJob(t, s)
	<-started
	return id, l
}

// startJob starts a job on s and returns its id and live state, which
// must be there right after Start (the send cannot have ended yet).
func startJob(t *testing.T, s *delivery.Service) (int64, *delivery.Live) {
	t.Helper()
	id, err := s.Start(context.Background(), newJob())
	if err != nil {
		t.Fatal(err)
	}
	l := s.Live(id)
	if l == nil {
		t.Fatal("no live state right after Start")
	}
	return id, l
}

func TestServiceRunsAndRecords(t *testing.T) {
	st := &memStore{}
	started, release := make(chan struct{}), make(chan struct{})
	s := delivery.New(delivery.Deps{Store: st, Send: blockingSend(started, release)})
	id, l := start(t, s, started)
	if got := st.get(id).Status; got != store.StatusRunning {
		t.Errorf("stored status while running %q", got)
	}
	if !strings.Contains(lines(l.Transcript().Events()), "connected") {
		t.Error("live transcript lacks the first line")
	}
	close(release)
	<-l.Done()
	got := st.get(id)
	if got.Status != smtp.StatusSent || got.QueueID != "Q1" || got.FinishedAt == nil || len(got.Events) != 1 {
		t.Errorf("stored %+v", got)
	}
	if s.Live(id) != nil {
		t.Error("live state kept after the end")
	}
	if err := s.Cancel(id, "admin"); !errors.Is(err, delivery.ErrNotRunning) {
		t.Errorf("cancel after the end: %v", err)
	}
}

func TestServiceCancel(t *testing.T) {
	st := &memStore{}
	started := make(chan struct{})
	clock := &stepClock{t: time.Date(2026, 12, 6, 17, 0, 0, 0, time.UTC), step: 250 * time.Millisecond}
	s := delivery.New(delivery.Deps{Store: st, Send: blockingSend(started, nil), Now: clock.Now})
	id, l := start(t, s, started)
	if err := s.Cancel(id, "admin@example.test"); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	got := st.get(id)
	if got.Status != smtp.StatusAborted {
		t.Errorf("status %q, want aborted", got.Status)
	}
	tr := lines(got.Events)
	if !strings.Contains(tr, "connected\n") || !strings.Contains(tr, "cancelled by admin@example.test after 250 ms") {
		t.Errorf("transcript:\n%s", tr)
	}
	for _, e := range got.Events {
		if strings.HasPrefix(e.Line, "cancelled by") && e.Phase != smtp.PhaseConnect {
			t.Errorf("cancel note in phase %q, want the send's last phase (connect)", e.Phase)
		}
	}
	if err := s.Cancel(99, "x"); !errors.Is(err, delivery.ErrNotRunning) {
		t.Errorf("cancel of an unknown send: %v", err)
	}
}

func TestServiceTimeout(t *testing.T) {
	st := &memStore{}
	started := make(chan struct{})
	// The send holds on until the test has its live state: with a limit
	// of 1ns it would otherwise end (and drop that state) before the test
	// could ask for it.
	held := make(chan struct{})
	send := func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, m smtp.Message, o smtp.SendOptions) (*smtp.Result, error) {
		<-held
		return blockingSend(started, nil)(ctx, cfg, env, m, o)
	}
	s := delivery.New(delivery.Deps{Store: st, Send: send, Timeout: time.Nanosecond})
	id, l := startJob(t, s)
	close(held)
	<-started
	<-l.Done()
	got := st.get(id)
	if !strings.Contains(lines(got.Events), "longer than the limit of 1ns") || !strings.Contains(got.Error, "deadline exceeded") {
		t.Errorf("status %q error %q transcript:\n%s", got.Status, got.Error, lines(got.Events))
	}
}

func TestServicePanicIsRecorded(t *testing.T) {
	st := &memStore{}
	s := delivery.New(delivery.Deps{Store: st, Send: func(context.Context, smtp.Config, smtp.Envelope, smtp.Message, smtp.SendOptions) (*smtp.Result, error) {
		panic("boom")
	}})
	id, err := s.Start(context.Background(), newJob())
	if err != nil {
		t.Fatal(err)
	}
	if l := s.Live(id); l != nil {
		<-l.Done()
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := st.get(id)
	if got.Status != smtp.StatusPermFail || !strings.Contains(got.Error, "panicked: boom") {
		t.Errorf("status %q error %q", got.Status, got.Error)
	}
}

// TestServiceShutdownWaits: a send that ends by itself during Shutdown
// is stored as it ended, and Shutdown reports no abort.
func TestServiceShutdownWaits(t *testing.T) {
	st := &memStore{}
	started, release := make(chan struct{}), make(chan struct{})
	s := delivery.New(delivery.Deps{Store: st, Send: blockingSend(started, release)})
	id, _ := start(t, s, started)
	go close(release)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if got := st.get(id).Status; got != smtp.StatusSent {
		t.Errorf("status after shutdown %q", got)
	}
}

// TestServiceShutdownAborts: once the grace period is over, running
// sends are aborted and their partial transcripts stored before Shutdown
// returns; no new send starts.
func TestServiceShutdownAborts(t *testing.T) {
	st := &memStore{}
	started := make(chan struct{})
	s := delivery.New(delivery.Deps{Store: st, Send: blockingSend(started, nil)})
	id, _ := start(t, s, started)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the grace period is over at once
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("shutdown: %v, want the aborted sends reported", err)
	}
	got := st.get(id)
	if got.Status != smtp.StatusAborted || !strings.Contains(lines(got.Events), "connected") {
		t.Errorf("status %q transcript %q", got.Status, lines(got.Events))
	}
	select {
	case <-s.Closing():
	default:
		t.Error("Closing not closed")
	}
	if _, err := s.Start(context.Background(), newJob()); !errors.Is(err, delivery.ErrClosed) {
		t.Errorf("start after shutdown: %v", err)
	}
}
