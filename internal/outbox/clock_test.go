package outbox

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"sockmail/internal/store"
	"sockmail/smtp"
)

// TestSkewedInstancesShareLeases: two workers on one PostgreSQL outbox,
// one instance's clock ten minutes fast. Each times its leases by the
// database's clock (store.SharedClock, as serve does), so neither takes
// the other's live claims for expired ones and no message goes twice.
// With the skewed clock used as it is, the fast instance takes over
// everything the other is sending.
func TestSkewedInstancesShareLeases(t *testing.T) {
	stores := twoInstances(t)
	ctx := context.Background()
	f := &store.Form{Name: "Skew", Recipients: []string{"owner@example.org"}, FromAddr: "forms@example.org", Enabled: true}
	if err := stores[0].SaveForm(ctx, f); err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		msg := fmt.Sprintf("From: forms@example.org\r\nTo: owner@example.org\r\nSubject: skew %d\r\nMessage-ID: <skew-%d@example.org>\r\n\r\nbody\r\n", i, i)
		item := &store.OutboxItem{MailFrom: "forms@example.org", Rcpts: []string{"owner@example.org"}, Message: []byte(msg)}
		if err := stores[0].EnqueueSubmission(ctx, &store.Submission{FormID: f.ID}, item); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	sent := map[string]int{}
	slow := func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error) {
		var b strings.Builder
		if _, err := msg.WriteTo(&b); err != nil {
			return nil, err
		}
		_, rest, _ := strings.Cut(b.String(), "Message-ID: <")
		id, _, _ := strings.Cut(rest, ">")
		time.Sleep(150 * time.Millisecond) // a send in flight while the other instance polls
		mu.Lock()
		sent[id]++
		mu.Unlock()
		return &smtp.Result{Recipients: []smtp.RecipientResult{{Address: env.To[0], Accepted: true, Code: 250}},
			Final: &smtp.Reply{Code: 250, Lines: []string{"2.0.0 Ok"}}}, nil
	}
	for i, skew := range []time.Duration{0, 10 * time.Minute} {
		clock := store.NewSharedClock(func() time.Time { return time.Now().Add(skew) })
		if _, err := clock.Sync(ctx, stores[i]); err != nil {
			t.Fatal(err)
		}
		w, err := New(Deps{Store: stores[i], Send: slow, Profiles: noProfiles, Owner: fmt.Sprint("skew-", i), Lease: 5 * time.Second,
			Concurrency: 2, PollInterval: 20 * time.Millisecond, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		defer run(t, w)()
	}
	waitCounts(t, stores[0], func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == n })
	mu.Lock()
	defer mu.Unlock()
	var twice []string
	for id, k := range sent {
		if k > 1 {
			twice = append(twice, id)
		}
	}
	if len(sent) != n || len(twice) > 0 {
		t.Errorf("%d messages sent, %v more than once; want %d, each once", len(sent), twice, n)
	}
}
