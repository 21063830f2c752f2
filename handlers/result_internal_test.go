package handlers

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	tr := smtp.NewTranscript()
	tr.Info(smtp.PhaseConnect, "the whole story")
	ls := &liveSend{tr: tr, done: make(chan struct{})}
	h := &Handler{live: map[int64]*liveSend{snd.ID: ls}}
	h.store = &endingStore{Store: st, end: func() {
		ended := *snd
		ended.Status, ended.Events = string(smtp.StatusSent), tr.Events()
		finished := time.Now()
		ended.FinishedAt = &finished
		if err := st.FinishSend(ctx, &ended); err != nil {
			t.Error(err)
		}
		h.mu.Lock()
		delete(h.live, snd.ID)
		h.mu.Unlock()
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
	if err != nil || gotLive != nil || got.Status != string(smtp.StatusSent) {
		t.Errorf("after the end: %v, live %v, %v", got.Status, gotLive, err)
	}
}
