package store

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"sockmail/internal/delayproxy"
	"sockmail/internal/testenv"
)

// TestEnqueueLimitedRepeatedToken: a post whose token a stored submission
// already has is refused with ErrExists and counted nowhere, even when its
// limit is reached by then (the visitor is told "already received", not
// "too many"); a new post is then refused by the limit; a refused post
// leaves the connection usable for the next one. On SQLite the record is
// written before the count in the same transaction; on PostgreSQL
// sockmail_take_rate checks the token before it counts.
func TestEnqueueLimitedRepeatedToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		limit := Limit{Key: fmt.Sprint("contact:form:", form), Max: 1, Window: time.Hour}
		post := func(token string, limits ...Limit) (*Limit, error) {
			sub := &Submission{FormID: form, TokenHash: token}
			item := &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage(token)}
			return s.EnqueueLimited(ctx, sub, item, limits, t0)
		}
		counts := func(want int) {
			t.Helper()
			got, err := s.RateCounts(ctx, []string{limit.Key, "contact:addr:other"}, t0, time.Hour)
			if err != nil || got[0] != want || got[1] != 0 {
				t.Fatalf("RateCounts = %v, %v; want [%d 0]", got, err, want)
			}
		}
		if over, err := post("digest-a", limit); over != nil || err != nil {
			t.Fatalf("first post: over %v, err %v", over, err)
		}
		counts(1)
		over, err := post("digest-a", limit)
		if over != nil {
			t.Errorf("the repeated post was refused by %q; want ErrExists", over.Key)
		}
		wantErr(t, "repeated post", err, ErrExists)
		counts(1)
		over, err = post("digest-b", Limit{Key: "contact:addr:other", Max: 5, Window: time.Hour}, limit)
		if err != nil || over == nil || over.Key != limit.Key || over.RetryAfter != time.Hour {
			t.Fatalf("post over the limit: over %+v, err %v; want refused by %q, retry after 1h", over, err, limit.Key)
		}
		counts(1) // the other key, which passed, is not counted either
		if over, err := post("digest-c"); over != nil || err != nil {
			t.Fatalf("post without limits after a refusal: over %v, err %v", over, err)
		}
		if n, _ := s.ListSubmissions(ctx, SubmissionFilter{FormID: form, Limit: MaxListLimit}); len(n) != 2 {
			t.Errorf("%d submissions stored, want 2", len(n))
		}
	})
}

// TestEnqueueOneRoundTrip: on PostgreSQL a contact post under two rate
// limits is counted and stored in one round trip to the server (a
// pipelined batch), counted by a proxy in front of it: twelve posts, at
// most one wait each (and a little slack for a connection check). Counted
// and stored in separate transactions from the client, as before, it took
// nine.
func TestEnqueueOneRoundTrip(t *testing.T) {
	s, p := proxiedPostgres(t)
	ctx := ctxT(t)
	form := newForm(t, s)
	post := func(i int) {
		t.Helper()
		limits := []Limit{{Key: "contact:addr:192.0.2.1", Max: 1000, Window: time.Hour},
			{Key: fmt.Sprint("contact:form:", form), Max: 1000, Window: time.Hour}}
		sub := &Submission{FormID: form, TokenHash: fmt.Sprint("digest-", i)}
		item := &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage(fmt.Sprint(i))}
		if over, err := s.EnqueueLimited(ctx, sub, item, limits, t0); over != nil || err != nil {
			t.Fatalf("post %d: over %v, err %v", i, over, err)
		}
	}
	post(0) // the connection's statements are prepared
	before := p.Waits()
	const n = 12
	for i := 1; i <= n; i++ {
		post(i)
	}
	t.Logf("%d posts, %d waits", n, p.Waits()-before)
	if w := p.Waits() - before; w > n+2 {
		t.Errorf("%d posts waited %d times for the server, want at most one wait each", n, w)
	}
}

// proxiedPostgres opens a store on a fresh PostgreSQL database through a
// proxy that counts the client's waits for the server.
func proxiedPostgres(t *testing.T) (*Store, *delayproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	p, err := delayproxy.Start(u.Host, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	u.Host = p.Addr()
	s, err := Open(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, p
}

// TestClaimDueOneRoundTrip: on PostgreSQL a claim (the settling of
// expired marked attempts, then the claim itself, in one transaction) is
// one wait for the server: the worker claims before every batch, and
// while contact posts come in one message at a time. It was four (BEGIN,
// two statements, COMMIT). The claims still take the oldest due items,
// once each.
func TestClaimDueOneRoundTrip(t *testing.T) {
	s, p := proxiedPostgres(t)
	ctx := ctxT(t)
	form := newForm(t, s)
	const n = 12
	var ids []int64
	for i := range n + 1 {
		item := &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage(fmt.Sprint(i)),
			NextAttemptAt: t0.Add(time.Duration(i) * time.Second)}
		if err := s.EnqueueSubmission(ctx, &Submission{FormID: form}, item); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, item.ID)
	}
	now := t0.Add(time.Hour)
	claim := func(i int) {
		t.Helper()
		items, err := s.ClaimDue(ctx, "w1", now, time.Minute, 1)
		if err != nil || len(items) != 1 {
			t.Fatalf("claim %d: %d items, %v", i, len(items), err)
		}
		if items[0].ID != ids[i] || items[0].Status != OutboxSending || items[0].LeaseOwner != "w1" {
			t.Fatalf("claim %d took item %d (%s, %q), want %d, sending, w1", i, items[0].ID, items[0].Status, items[0].LeaseOwner, ids[i])
		}
	}
	claim(0) // the session's statements are prepared
	before := p.Waits()
	for i := 1; i <= n; i++ {
		claim(i)
	}
	t.Logf("%d claims, %d waits", n, p.Waits()-before)
	if w := p.Waits() - before; w > n+2 {
		t.Errorf("%d claims waited %d times for the server, want one wait each", n, w)
	}
	if items, err := s.ClaimDue(ctx, "w1", now, time.Minute, 1); err != nil || len(items) != 0 {
		t.Errorf("a claim with nothing due: %d items, %v", len(items), err)
	}
}

// TestMarkDataSentOneRoundTrip: on PostgreSQL the worker's end-of-message
// mark, which the end of every message waits for, is one statement on a
// session that commits with synchronous_commit off: one wait for the
// server (it was four: BEGIN, SET LOCAL, UPDATE, COMMIT). A mark whose
// lease is gone still says so.
func TestMarkDataSentOneRoundTrip(t *testing.T) {
	s, p := proxiedPostgres(t)
	ctx := ctxT(t)
	form := newForm(t, s)
	const n = 12
	for i := range n + 1 {
		item := &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage(fmt.Sprint(i))}
		if err := s.EnqueueSubmission(ctx, &Submission{FormID: form}, item); err != nil {
			t.Fatal(err)
		}
	}
	items, err := s.ClaimDue(ctx, "w1", time.Now(), time.Minute, n+1)
	if err != nil || len(items) != n+1 {
		t.Fatalf("claimed %d, %v", len(items), err)
	}
	if err := s.MarkDataSent(ctx, items[0].ID, "w1", time.Now()); err != nil {
		t.Fatal(err) // the session's statement is prepared
	}
	before := p.Waits()
	for _, it := range items[1:] {
		if err := s.MarkDataSent(ctx, it.ID, "w1", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d marks, %d waits", n, p.Waits()-before)
	if w := p.Waits() - before; w > n+2 {
		t.Errorf("%d marks waited %d times for the server, want one wait each", n, w)
	}
	wantErr(t, "mark by another owner", s.MarkDataSent(ctx, items[0].ID, "w2", time.Now()), ErrLeaseLost)
	wantErr(t, "mark of a missing item", s.MarkDataSent(ctx, 999999, "w1", time.Now()), ErrNotFound)
}

// TestFinishAttemptsOneRoundTrip: on PostgreSQL the outcomes of a
// pipelined batch of 8 attempts, with their history records, are stored
// in one round trip (one statement each, sent together): at most two
// waits for the server (it was about 30: BEGIN, three statements an
// outcome, the bodies, COMMIT), and every outcome is stored.
func TestFinishAttemptsOneRoundTrip(t *testing.T) {
	s, p := proxiedPostgres(t)
	ctx := ctxT(t)
	form := newForm(t, s)
	const n = 8
	for i := range 2 * n {
		item := &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage(fmt.Sprint(i))}
		if err := s.EnqueueSubmission(ctx, &Submission{FormID: form}, item); err != nil {
			t.Fatal(err)
		}
	}
	items, err := s.ClaimDue(ctx, "w1", time.Now(), time.Minute, 2*n)
	if err != nil || len(items) != 2*n {
		t.Fatalf("claimed %d, %v", len(items), err)
	}
	finish := func(items []OutboxItem) []AttemptOutcome {
		t.Helper()
		outs := make([]AttemptOutcome, len(items))
		for i, it := range items {
			snd := fullSend(nil)
			snd.Subject = fmt.Sprint("batch ", it.ID)
			outs[i] = AttemptOutcome{ItemID: it.ID, Status: OutboxSent, Send: snd}
		}
		if err := s.FinishAttempts(ctx, "w1", outs); err != nil {
			t.Fatal(err)
		}
		return outs
	}
	finish(items[:n]) // the session's statement is prepared
	before := p.Waits()
	outs := finish(items[n:])
	t.Logf("%d outcomes, %d waits", n, p.Waits()-before)
	if w := p.Waits() - before; w > 2 {
		t.Errorf("a batch of %d outcomes waited %d times for the server, want one wait", n, w)
	}
	for _, o := range outs {
		it, err := s.OutboxItem(ctx, o.ItemID)
		if err != nil || o.Err != nil || it.Status != OutboxSent || it.LastSendID == nil || *it.LastSendID != o.Send.ID || o.Send.ID == 0 {
			t.Errorf("item %d: %+v, %v (outcome err %v, send %d)", o.ItemID, it, err, o.Err, o.Send.ID)
		}
	}
}

// TestFinishAttemptSendTwoRoundTrips: on PostgreSQL a lone attempt's
// outcome with its history record waits twice for the server (the
// statement with its BEGIN, then COMMIT; it was six), and an outcome
// whose lease is gone stores nothing, not even the record, as
// FinishAttemptSend promises.
func TestFinishAttemptSendTwoRoundTrips(t *testing.T) {
	s, p := proxiedPostgres(t)
	ctx := ctxT(t)
	form := newForm(t, s)
	for i := range 3 {
		item := &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage(fmt.Sprint(i))}
		if err := s.EnqueueSubmission(ctx, &Submission{FormID: form}, item); err != nil {
			t.Fatal(err)
		}
	}
	items, err := s.ClaimDue(ctx, "w1", time.Now(), time.Minute, 3)
	if err != nil || len(items) != 3 {
		t.Fatalf("claimed %d, %v", len(items), err)
	}
	finish := func(id int64, owner string) (*Send, error) {
		snd := fullSend(nil)
		snd.Subject = fmt.Sprintf("lonetoken%dz", id)
		return snd, s.FinishAttemptSend(ctx, id, owner, OutboxSent, time.Time{}, "", snd)
	}
	if _, err := finish(items[0].ID, "w1"); err != nil {
		t.Fatal(err) // the session's statements are prepared
	}
	before := p.Waits()
	snd, err := finish(items[1].ID, "w1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one outcome, %d waits", p.Waits()-before)
	if w := p.Waits() - before; w > 3 {
		t.Errorf("a lone outcome waited %d times for the server, want two", w)
	}
	if it, err := s.OutboxItem(ctx, items[1].ID); err != nil || it.Status != OutboxSent || it.LastSendID == nil || *it.LastSendID != snd.ID || snd.ID == 0 {
		t.Errorf("item after its outcome: %+v, %v (send %d)", it, err, snd.ID)
	}
	lost, err := finish(items[2].ID, "w2")
	wantErr(t, "outcome of another owner", err, ErrLeaseLost)
	if lost.ID != 0 {
		t.Errorf("a refused outcome set the send's id %d", lost.ID)
	}
	for i, want := range map[int]int{1: 1, 2: 0} {
		page, err := s.ListSends(ctx, SendFilter{Query: fmt.Sprintf("lonetoken%dz", items[i].ID), Limit: 10})
		if err != nil || len(page.Sends) != want {
			t.Errorf("item %d: %d history records (%v), want %d (a refused outcome stores none)", i, len(page.Sends), err, want)
		}
	}
	if it, _ := s.OutboxItem(ctx, items[2].ID); it.Status != OutboxSending || it.LeaseOwner != "w1" {
		t.Errorf("a refused outcome changed the item: %s, lease %q", it.Status, it.LeaseOwner)
	}
	_, err = finish(999999, "w1")
	wantErr(t, "outcome of a missing item", err, ErrNotFound)
}
