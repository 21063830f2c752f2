package handlers

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sockmail/internal/delivery"
	"sockmail/internal/store"
	"sockmail/smtp"
)

// endingStore is a real store whose first Send read lets the send end
// (outcome stored, live state dropped, as run does) just after the row
// was read: the moment a page load and the end of a send meet.
type endingStore struct {
	*store.Store
	end func()
}

func (s *endingStore) Send(ctx context.Context, id int64) (*store.Send, error) {
	snd, err := s.Store.Send(ctx, id)
	if s.end != nil {
		s.end()
		s.end = nil
	}
	return snd, err
}

// TestReadSendAsTheSendEnds: a page read while the send ends shows the
// whole transcript (live), never an "interrupted" send with an empty one.
func TestReadSendAsTheSendEnds(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "sockmail.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	snd := &store.Send{Source: "web", Status: store.StatusRunning, CreatedAt: time.Now(), Server: "mx.example.test:25",
		TLSMode: "starttls", MailFrom: "a@example.test", Rcpts: []string{"b@example.test"}}
	if err := st.CreateSend(ctx, snd); err != nil {
		t.Fatal(err)
	}
	// A real send service whose send says one line and waits to be let
	// go; the store's first read lets it go and waits until its outcome
	// is stored and its live state dropped.
	release, started := make(chan struct{}), make(chan struct{})
	sends := delivery.New(delivery.Deps{Store: st, Send: func(ctx context.Context, cfg smtp.Config, _ smtp.Envelope, _ smtp.Message, _ smtp.SendOptions) (*smtp.Result, error) {
		cfg.Transcript.Info(smtp.PhaseConnect, "the whole story")
		close(started)
		<-release
		return &smtp.Result{Final: &smtp.Reply{Code: 250}}, nil
	}})
	t.Cleanup(func() { _ = sends.Shutdown(ctx) })
	if _, err := sends.Start(ctx, &delivery.Job{Send: snd, Config: smtp.Config{Transcript: smtp.NewTranscript()}}); err != nil {
		t.Fatal(err)
	}
	ls := sends.Live(snd.ID)
	<-started
	h := &Handler{sends: sends}
	h.history = &endingStore{Store: st, end: func() {
		close(release)
		<-ls.Done()
	}}

	got, gotLive, err := h.readSend(ctx, snd.ID)
	if err != nil {
		t.Fatal(err)
	}
	r := resultView(got, gotLive)
	if strings.HasPrefix(r.Status, "interrupted") {
		t.Errorf("status %q: a send ending during the read was shown as interrupted", r.Status)
	}
	var lines []string
	for _, ev := range r.Events {
		lines = append(lines, ev.Line)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "the whole story") {
		t.Errorf("transcript %q lacks the send's lines", lines)
	}

	// Read again after the end: the stored outcome.
	got, gotLive, err = h.readSend(ctx, snd.ID)
	if err != nil || gotLive != nil || got.Status != smtp.StatusSent {
		t.Errorf("after the end: %v, live %v, %v", got.Status, gotLive, err)
	}
}
