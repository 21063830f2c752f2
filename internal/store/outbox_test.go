package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"
)

// t0 is the clock of the outbox tests.
var t0 = time.Date(2025, 7, 1, 9, 0, 0, 0, time.UTC)

// newForm stores a form and returns its id.
func newForm(t *testing.T, s *Store) int64 {
	t.Helper()
	f := testForm("Contact")
	if err := s.SaveForm(ctxT(t), f); err != nil {
		t.Fatal(err)
	}
	return f.ID
}

// testMessage returns a small RFC 5322 message tagged with tag.
func testMessage(tag string) []byte {
	return []byte("From: forms@example.org\r\nTo: owner@example.org\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= " + tag +
		"\r\nMessage-ID: <" + tag + "@example.org>\r\n\r\nHello " + tag + "\r\n")
}

// enqueue stores a submission of form with its item, due at due.
func enqueue(t *testing.T, s *Store, form int64, tag string, status SubmissionStatus, due time.Time) (*Submission, *OutboxItem) {
	t.Helper()
	sub := &Submission{
		FormID: form, CreatedAt: t0, ClientAddr: "203.0.113.9", Origin: "https://www.example.org",
		UserAgent: "test", Fields: []FieldValue{{"name", "Ann " + tag}, {"message", "hi\r\nthere"}},
		ReplyTo: "ann@example.net", Status: status,
	}
	if status == SubmissionBlocked {
		sub.BlockReason = "honeypot"
	}
	item := &OutboxItem{MailFrom: "forms@example.org", Rcpts: []string{"owner@example.org"}, Message: testMessage(tag), NextAttemptAt: due}
	if err := s.EnqueueSubmission(ctxT(t), sub, item); err != nil {
		t.Fatalf("EnqueueSubmission %s: %v", tag, err)
	}
	return sub, item
}

func TestEnqueueSubmission(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		sub := &Submission{
			FormID: form, ClientAddr: "2001:db8::1", Origin: "https://www.example.org", UserAgent: "Mozilla/5.0 \x00",
			Fields:  []FieldValue{{"name", "Ann"}, {"email", "ann@example.net"}, {"message", "line1\r\nline2\x00\xff"}, {"name", "dup"}},
			Files:   []SubmissionFile{{Name: "cv.pdf", ContentType: "application/pdf", Data: []byte("%PDF-1.4\x00\xff")}, {Name: "empty.txt", ContentType: "text/plain", Data: []byte{}}},
			ReplyTo: "ann@example.net",
		}
		msg := testMessage("enq1")
		item := &OutboxItem{ProfileID: 7, MailFrom: "forms@example.org", Rcpts: []string{"owner@example.org", "b@example.org"}, Message: msg}
		before := time.Now().Add(-time.Second)
		wantErr(t, "EnqueueSubmission", s.EnqueueSubmission(ctx, sub, item), nil)
		if sub.ID == 0 || sub.Status != SubmissionQueued || sub.CreatedAt.Before(before) || sub.Files[0].Size != 10 {
			t.Errorf("submission after enqueue: %+v", sub)
		}
		if item.ID == 0 || item.Status != OutboxQueued || *item.SubmissionID != sub.ID || *item.FormID != form ||
			!item.CreatedAt.Equal(sub.CreatedAt) || !item.NextAttemptAt.Equal(item.CreatedAt) || !item.QueuedAt.Equal(item.CreatedAt) {
			t.Errorf("item after enqueue: %+v", item)
		}
		if item.Subject != "Grüße enq1" || item.MessageID != "enq1@example.org" {
			t.Errorf("Subject %q, MessageID %q: not taken from the message", item.Subject, item.MessageID)
		}
		gotSub, err := s.Submission(ctx, sub.ID)
		wantErr(t, "Submission", err, nil)
		if !reflect.DeepEqual(gotSub, sub) {
			t.Errorf("Submission:\n got %+v\nwant %+v", gotSub, sub)
		}
		gotItem, err := s.OutboxItem(ctx, item.ID)
		wantErr(t, "OutboxItem", err, nil)
		if !reflect.DeepEqual(gotItem, item) {
			t.Errorf("OutboxItem:\n got %+v\nwant %+v", gotItem, item)
		}

		// Blocked: the item is held.
		bsub, bitem := enqueue(t, s, form, "blocked", SubmissionBlocked, time.Time{})
		if bsub.Status != SubmissionBlocked || bitem.Status != OutboxHeld {
			t.Errorf("blocked submission %q, item %q", bsub.Status, bitem.Status)
		}

		checkEnqueueRefusals(t, s, form, msg)
	})
}

// checkEnqueueRefusals: refusals leave the caller's structs and the
// database as they were (one queued and one held item, two submissions).
func checkEnqueueRefusals(t *testing.T, s *Store, form int64, msg []byte) {
	t.Helper()
	ctx := ctxT(t)
	want := map[OutboxStatus]int{OutboxQueued: 1, OutboxHeld: 1}
	for _, tt := range []struct {
		name string
		sub  Submission
		item OutboxItem
		err  error
	}{
		{"missing form", Submission{FormID: 999999}, OutboxItem{Rcpts: []string{"a@example.org"}, Message: msg}, ErrNotFound},
		{"bad status", Submission{FormID: form, Status: SubmissionSent}, OutboxItem{Rcpts: []string{"a@example.org"}, Message: msg}, nil},
		{"no message", Submission{FormID: form}, OutboxItem{Rcpts: []string{"a@example.org"}}, nil},
		{"no recipients", Submission{FormID: form}, OutboxItem{Message: msg}, nil},
	} {
		sub, item := tt.sub, tt.item
		err := s.EnqueueSubmission(ctx, &sub, &item)
		if err == nil || tt.err != nil && !errors.Is(err, tt.err) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.err)
		}
		if !reflect.DeepEqual(sub, tt.sub) || !reflect.DeepEqual(item, tt.item) {
			t.Errorf("%s: the arguments changed on error", tt.name)
		}
	}
	if got, err := s.OutboxCounts(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("OutboxCounts = %v, %v; want %v", got, err, want)
	}
	subs, err := s.ListSubmissions(ctx, SubmissionFilter{FormID: form})
	wantErr(t, "ListSubmissions", err, nil)
	if len(subs) != 2 {
		t.Errorf("%d submissions stored, want 2", len(subs))
	}
}

// claimIDs returns the ids of items.
func claimIDs(items []OutboxItem) []int64 {
	var ids []int64
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	return ids
}

func TestClaimAndFinish(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		_, a := enqueue(t, s, form, "a", "", t0)
		_, b := enqueue(t, s, form, "b", "", t0.Add(-time.Minute)) // due first
		_, c := enqueue(t, s, form, "c", "", t0.Add(time.Hour))    // not due yet
		enqueue(t, s, form, "held", SubmissionBlocked, t0)         // never claimed

		lease := 5 * time.Minute
		got, err := s.ClaimDue(ctx, "w1", t0, lease, 10)
		wantErr(t, "ClaimDue", err, nil)
		if ids := claimIDs(got); !reflect.DeepEqual(ids, []int64{b.ID, a.ID}) {
			t.Fatalf("claimed %v, want [%d %d] (oldest due first)", ids, b.ID, a.ID)
		}
		for _, it := range got {
			if it.Status != OutboxSending || it.LeaseOwner != "w1" || !it.LeaseUntil.Equal(t0.Add(lease)) ||
				it.Attempts != 1 || it.TakenOverFrom != "" || len(it.Message) == 0 {
				t.Errorf("claimed item: %+v", it)
			}
		}
		if got, _ := s.ClaimDue(ctx, "w2", t0.Add(time.Minute), lease, 10); len(got) != 0 {
			t.Errorf("claimed items under a live lease: %v", claimIDs(got))
		}
		if got, _ := s.ClaimDue(ctx, "w2", t0, lease, 0); got != nil {
			t.Errorf("limit 0 claimed %v", claimIDs(got))
		}

		checkFinishRefused(t, s, a)
		checkRetry(t, s, a, lease)
		checkOutcomes(t, s, a, b, c, lease)
	})
}

// checkFinishRefused: another owner cannot finish; a bad status is
// refused; nothing reaches the history.
func checkFinishRefused(t *testing.T, s *Store, a *OutboxItem) {
	t.Helper()
	ctx := ctxT(t)
	wantErr(t, "FinishAttempt by w2", s.FinishAttempt(ctx, a.ID, "w2", OutboxSent, time.Time{}, "", nil), ErrLeaseLost)
	wantErr(t, "FinishAttemptSend by w2", s.FinishAttemptSend(ctx, a.ID, "w2", OutboxSent, time.Time{}, "", &Send{Source: "contact"}), ErrLeaseLost)
	wantErr(t, "FinishAttempt missing", s.FinishAttempt(ctx, 999999, "w1", OutboxSent, time.Time{}, "", nil), ErrNotFound)
	if err := s.FinishAttempt(ctx, a.ID, "w1", OutboxSending, time.Time{}, "", nil); err == nil {
		t.Error("FinishAttempt accepted status sending")
	}
	p, err := s.ListSends(ctx, SendFilter{Source: "contact"})
	if err != nil || p.Total != 0 {
		t.Fatalf("refused finishes stored %d sends (%v)", p.Total, err)
	}
}

// checkRetry: a's attempt is recorded in the history, then retried at
// its retry time and not before.
func checkRetry(t *testing.T, s *Store, a *OutboxItem, lease time.Duration) {
	t.Helper()
	ctx := ctxT(t)
	retryAt := t0.Add(30 * time.Second)
	snd := &Send{Source: "contact", FormID: a.FormID, Server: "mx:25", MailFrom: a.MailFrom, Rcpts: a.Rcpts,
		Status: "temporary failure", Error: "451 later", Events: transcript(3, "T1")}
	wantErr(t, "FinishAttemptSend queued", s.FinishAttemptSend(ctx, a.ID, "w1", OutboxQueued, retryAt, "451 later", snd), nil)
	if got, err := s.Send(ctx, snd.ID); err != nil || got.Status != "temporary failure" || len(got.Events) != 3 || *got.FormID != *a.FormID {
		t.Errorf("the attempt's send: %+v, %v", got, err)
	}
	wantErr(t, "FinishAttempt twice", s.FinishAttempt(ctx, a.ID, "w1", OutboxSent, time.Time{}, "", nil), ErrLeaseLost)
	it, _ := s.OutboxItem(ctx, a.ID)
	if it.Status != OutboxQueued || it.LeaseOwner != "" || !it.LeaseUntil.IsZero() || !it.NextAttemptAt.Equal(retryAt) ||
		it.LastError != "451 later" || *it.LastSendID != snd.ID || it.Attempts != 1 {
		t.Errorf("after retry: %+v", it)
	}
	if got, _ := s.ClaimDue(ctx, "w1", retryAt.Add(-time.Microsecond), lease, 10); len(got) != 0 {
		t.Errorf("claimed before its retry time: %v", claimIDs(got))
	}
	got, _ := s.ClaimDue(ctx, "w1", retryAt, lease, 10)
	if len(got) != 1 || got[0].ID != a.ID || got[0].Attempts != 2 {
		t.Fatalf("claim at retry time: %+v", got)
	}
}

// checkOutcomes: outcomes reach the submission; c is claimed once due.
func checkOutcomes(t *testing.T, s *Store, a, b, c *OutboxItem, lease time.Duration) {
	t.Helper()
	ctx := ctxT(t)
	// Outcomes reach the submission.
	for _, tt := range []struct {
		item   *OutboxItem
		status OutboxStatus
	}{{a, OutboxSent}, {b, OutboxFailed}} {
		wantErr(t, "FinishAttempt "+string(tt.status), s.FinishAttempt(ctx, tt.item.ID, "w1", tt.status, time.Time{}, "", nil), nil)
		it, _ := s.OutboxItem(ctx, tt.item.ID)
		sub, _ := s.Submission(ctx, *tt.item.SubmissionID)
		if it.Status != tt.status || string(sub.Status) != string(tt.status) {
			t.Errorf("after %s: item %q, submission %q", tt.status, it.Status, sub.Status)
		}
	}
	got, _ := s.ClaimDue(ctx, "w1", t0.Add(2*time.Hour), lease, 10)
	if ids := claimIDs(got); !reflect.DeepEqual(ids, []int64{c.ID}) {
		t.Errorf("later claim %v, want [%d]", ids, c.ID)
	}
	wantErr(t, "FinishAttempt unknown", s.FinishAttempt(ctx, c.ID, "w1", OutboxUnknown, time.Time{}, "lost after DATA", nil), nil)
	counts, _ := s.OutboxCounts(ctx)
	if want := map[OutboxStatus]int{OutboxSent: 1, OutboxFailed: 1, OutboxUnknown: 1, OutboxHeld: 1}; !reflect.DeepEqual(counts, want) {
		t.Errorf("OutboxCounts = %v, want %v", counts, want)
	}
}

func TestLeaseExpiryTakeover(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		_, a := enqueue(t, s, form, "a", "", t0)
		lease := time.Minute
		got, _ := s.ClaimDue(ctx, "crashed", t0, lease, 1)
		if len(got) != 1 {
			t.Fatalf("claimed %d", len(got))
		}
		for _, tt := range []struct {
			at   time.Duration
			want int
		}{{30 * time.Second, 0}, {lease - time.Microsecond, 0}, {lease, 1}} {
			got, err := s.ClaimDue(ctx, "rescuer", t0.Add(tt.at), lease, 10)
			wantErr(t, "ClaimDue", err, nil)
			if len(got) != tt.want {
				t.Fatalf("at +%v claimed %d, want %d", tt.at, len(got), tt.want)
			}
			if tt.want == 1 {
				it := got[0]
				if it.TakenOverFrom != "crashed" || it.LeaseOwner != "rescuer" || it.Attempts != 2 || it.LastSendID != nil {
					t.Errorf("taken-over item: %+v", it)
				}
			}
		}
		wantErr(t, "FinishAttempt by the old owner", s.FinishAttempt(ctx, a.ID, "crashed", OutboxSent, time.Time{}, "", nil), ErrLeaseLost)
		// FinishAttemptSend writes both or, without the lease, neither.
		old := &Send{Source: "contact", Status: "sent", QueueID: "Q1"}
		wantErr(t, "FinishAttemptSend by the old owner", s.FinishAttemptSend(ctx, a.ID, "crashed", OutboxSent, time.Time{}, "", old), ErrLeaseLost)
		if old.ID != 0 {
			t.Errorf("a refused FinishAttemptSend set the send's id")
		}
		if p, _ := s.ListSends(ctx, SendFilter{}); p.Total != 0 {
			t.Errorf("a refused FinishAttemptSend stored a send")
		}
		second := &Send{Source: "contact", Status: "sent", QueueID: "Q2"}
		wantErr(t, "FinishAttemptSend by the new owner", s.FinishAttemptSend(ctx, a.ID, "rescuer", OutboxSent, time.Time{}, "", second), nil)
		if it, _ := s.OutboxItem(ctx, a.ID); it.TakenOverFrom != "" || it.Status != OutboxSent || *it.LastSendID != second.ID {
			t.Errorf("after finish: %+v", it)
		}
		if snd, _ := s.Send(ctx, second.ID); snd.Status != "sent" || snd.QueueID != "Q2" {
			t.Errorf("send after FinishAttemptSend: %+v", snd)
		}
	})
}

func TestAdminActions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		// put makes an item in the given status.
		put := func(status OutboxStatus) *OutboxItem {
			t.Helper()
			var subStatus SubmissionStatus
			if status == OutboxHeld {
				subStatus = SubmissionBlocked
			}
			_, it := enqueue(t, s, form, string(status), subStatus, t0)
			if status == OutboxQueued || status == OutboxHeld {
				return it
			}
			if status == OutboxCancelled {
				wantErr(t, "CancelOutbox", s.CancelOutbox(ctx, it.ID), nil)
				return it
			}
			// Claim just this one: the others are due later or finished.
			got, err := s.ClaimDue(ctx, "w", t0, time.Minute, 1)
			if err != nil || len(got) != 1 || got[0].ID != it.ID {
				t.Fatalf("claim for %s: %v %v", status, claimIDs(got), err)
			}
			if status != OutboxSending {
				wantErr(t, "FinishAttempt", s.FinishAttempt(ctx, it.ID, "w", status, time.Time{}, "x", nil), nil)
			}
			return it
		}
		now := t0.Add(time.Hour)
		tests := []struct {
			action string
			from   OutboxStatus
			err    error
			to     OutboxStatus
			subTo  SubmissionStatus
		}{
			{"retry", OutboxFailed, nil, OutboxQueued, SubmissionQueued},
			{"retry", OutboxUnknown, nil, OutboxQueued, SubmissionQueued},
			{"retry", OutboxCancelled, nil, OutboxQueued, SubmissionQueued},
			{"retry", OutboxQueued, ErrWrongState, OutboxQueued, SubmissionQueued},
			{"retry", OutboxSending, ErrWrongState, OutboxSending, SubmissionQueued},
			{"retry", OutboxSent, ErrWrongState, OutboxSent, SubmissionSent},
			{"retry", OutboxHeld, ErrWrongState, OutboxHeld, SubmissionBlocked},
			{"cancel", OutboxQueued, nil, OutboxCancelled, SubmissionCancelled},
			{"cancel", OutboxHeld, nil, OutboxCancelled, SubmissionCancelled},
			{"cancel", OutboxSending, ErrWrongState, OutboxSending, SubmissionQueued},
			{"cancel", OutboxSent, ErrWrongState, OutboxSent, SubmissionSent},
			{"cancel", OutboxFailed, ErrWrongState, OutboxFailed, SubmissionFailed},
			{"release", OutboxHeld, nil, OutboxQueued, SubmissionReleased},
			{"release", OutboxQueued, ErrWrongState, OutboxQueued, SubmissionQueued},
			{"release", OutboxCancelled, ErrWrongState, OutboxCancelled, SubmissionCancelled},
		}
		for _, tt := range tests {
			it := put(tt.from)
			var err error
			switch tt.action {
			case "retry":
				err = s.RetryOutbox(ctx, it.ID, now)
			case "cancel":
				err = s.CancelOutbox(ctx, it.ID)
			case "release":
				err = s.ReleaseSubmission(ctx, *it.SubmissionID, now)
			}
			name := tt.action + " " + string(tt.from)
			wantErr(t, name, err, tt.err)
			got, _ := s.OutboxItem(ctx, it.ID)
			sub, _ := s.Submission(ctx, *it.SubmissionID)
			if got.Status != tt.to || sub.Status != tt.subTo {
				t.Errorf("%s: item %q, submission %q; want %q, %q", name, got.Status, sub.Status, tt.to, tt.subTo)
			}
			if tt.err == nil && tt.to == OutboxQueued {
				if !got.NextAttemptAt.Equal(now) || !got.QueuedAt.Equal(now) || got.Attempts != 0 || got.LeaseOwner != "" {
					t.Errorf("%s: requeued item %+v", name, got)
				}
			}
			// Leave nothing due for the next put's claim.
			if got.Status == OutboxQueued {
				wantErr(t, "cleanup cancel", s.CancelOutbox(ctx, it.ID), nil)
			}
		}
		wantErr(t, "retry missing", s.RetryOutbox(ctx, 999999, now), ErrNotFound)
		wantErr(t, "cancel missing", s.CancelOutbox(ctx, 999999), ErrNotFound)
		wantErr(t, "release missing", s.ReleaseSubmission(ctx, 999999, now), ErrNotFound)
	})
}

func TestRetryKeepsExplicitExpiryWindow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		sub := &Submission{FormID: form, CreatedAt: t0}
		item := &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage("x"), ExpiresAt: t0.Add(2 * time.Hour)}
		wantErr(t, "enqueue", s.EnqueueSubmission(ctx, sub, item), nil)
		got, _ := s.ClaimDue(ctx, "w", t0, time.Minute, 1)
		if len(got) != 1 {
			t.Fatal("not claimed")
		}
		wantErr(t, "finish", s.FinishAttempt(ctx, item.ID, "w", OutboxFailed, time.Time{}, "", nil), nil)
		later := t0.Add(24 * time.Hour)
		wantErr(t, "retry", s.RetryOutbox(ctx, item.ID, later), nil)
		it, _ := s.OutboxItem(ctx, item.ID)
		if !it.ExpiresAt.Equal(later.Add(2*time.Hour)) || !it.QueuedAt.Equal(later) {
			t.Errorf("after retry: ExpiresAt %v, QueuedAt %v; want %v, %v", it.ExpiresAt, it.QueuedAt, later.Add(2*time.Hour), later)
		}
	})
}

func TestDeleteFormKeepsQueuedMail(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		_, queued := enqueue(t, s, form, "q", "", t0)
		_, held := enqueue(t, s, form, "h", SubmissionBlocked, t0)
		wantErr(t, "DeleteForm", s.DeleteForm(ctx, form), nil)
		q, err := s.OutboxItem(ctx, queued.ID)
		wantErr(t, "queued item", err, nil)
		if q.Status != OutboxQueued || q.SubmissionID != nil {
			t.Errorf("queued item after form deletion: %+v", q)
		}
		h, _ := s.OutboxItem(ctx, held.ID)
		if h.Status != OutboxCancelled {
			t.Errorf("held item after form deletion: %q", h.Status)
		}
		_, err = s.Submission(ctx, *queued.SubmissionID)
		wantErr(t, "submission", err, ErrNotFound)
		if got, _ := s.ClaimDue(ctx, "w", t0, time.Minute, 10); len(got) != 1 || got[0].ID != queued.ID {
			t.Errorf("the orphaned item is not delivered: %v", claimIDs(got))
		}
	})
}

func TestListOutboxAndSubmissions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		f1, f2 := newForm(t, s), newForm(t, s)
		var ids1 []int64
		for i := range 7 {
			form, status := f1, SubmissionStatus("")
			if i%3 == 2 {
				form = f2
			}
			if i == 4 {
				status = SubmissionBlocked
			}
			sub, it := enqueue(t, s, form, fmt.Sprint("m", i), status, t0)
			if form == f1 {
				ids1 = append(ids1, it.ID)
			}
			_ = sub
		}
		// Newest first, paged by Before.
		page1, err := s.ListOutbox(ctx, OutboxFilter{FormID: f1, Limit: 3})
		wantErr(t, "ListOutbox", err, nil)
		page2, _ := s.ListOutbox(ctx, OutboxFilter{FormID: f1, Limit: 3, Before: page1[len(page1)-1].ID})
		var got []int64
		for _, it := range append(page1, page2...) {
			if it.Message != nil {
				t.Errorf("ListOutbox returned a message")
			}
			got = append(got, it.ID)
		}
		sort.Slice(ids1, func(i, j int) bool { return ids1[i] > ids1[j] })
		if !reflect.DeepEqual(got, ids1) {
			t.Errorf("ListOutbox pages %v, want %v", got, ids1)
		}
		held, _ := s.ListOutbox(ctx, OutboxFilter{Status: OutboxHeld})
		if len(held) != 1 {
			t.Errorf("%d held items listed", len(held))
		}
		for _, bad := range []string{"\x00", "\xff"} {
			if got, err := s.ListOutbox(ctx, OutboxFilter{Status: OutboxStatus(bad)}); err != nil || len(got) != 0 {
				t.Errorf("ListOutbox status %q: %v %v", bad, got, err)
			}
			if got, err := s.ListSubmissions(ctx, SubmissionFilter{Status: SubmissionStatus(bad)}); err != nil || len(got) != 0 {
				t.Errorf("ListSubmissions status %q: %v %v", bad, got, err)
			}
		}
		blocked, err := s.ListSubmissions(ctx, SubmissionFilter{Status: SubmissionBlocked})
		wantErr(t, "ListSubmissions", err, nil)
		if len(blocked) != 1 || blocked[0].BlockReason != "honeypot" || len(blocked[0].Fields) != 2 {
			t.Errorf("blocked submissions: %+v", blocked)
		}
		all, _ := s.ListSubmissions(ctx, SubmissionFilter{Limit: 100})
		if len(all) != 7 || all[0].ID < all[6].ID {
			t.Errorf("ListSubmissions: %d, not newest first", len(all))
		}
		two, _ := s.ListSubmissions(ctx, SubmissionFilter{FormID: f2})
		if len(two) != 2 {
			t.Errorf("form 2 has %d submissions, want 2", len(two))
		}
	})
}

func TestListSubmissionsFileSizes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		sub := &Submission{FormID: form, Files: []SubmissionFile{{Name: "a.txt", ContentType: "text/plain", Data: []byte("hello")}}}
		item := &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage("f")}
		wantErr(t, "enqueue", s.EnqueueSubmission(ctx, sub, item), nil)
		list, err := s.ListSubmissions(ctx, SubmissionFilter{})
		wantErr(t, "ListSubmissions", err, nil)
		if len(list) != 1 || len(list[0].Files) != 1 || list[0].Files[0].Data != nil || list[0].Files[0].Size != 5 || list[0].Files[0].Name != "a.txt" {
			t.Errorf("listed files: %+v", list)
		}
	})
}

// TestConcurrentClaims: four workers claim from 200 items until none is
// left; every item is claimed exactly once.
func TestConcurrentClaims(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		const n = 200
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { enqueue(t, s, form, fmt.Sprint("c", i), "", t0) })
		}
		wg.Wait()
		var mu sync.Mutex
		claims := map[int64][]string{}
		for w := range 4 {
			owner := fmt.Sprint("worker-", w)
			wg.Go(func() {
				for {
					got, err := s.ClaimDue(ctx, owner, t0, time.Hour, 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, it := range got {
						claims[it.ID] = append(claims[it.ID], owner)
					}
					mu.Unlock()
					for _, it := range got {
						if err := s.FinishAttempt(ctx, it.ID, owner, OutboxSent, time.Time{}, "", nil); err != nil {
							t.Error(err)
						}
					}
				}
			})
		}
		wg.Wait()
		perOwner := map[string]int{}
		for id, owners := range claims {
			if len(owners) != 1 {
				t.Errorf("item %d claimed %d times: %v", id, len(owners), owners)
			}
			perOwner[owners[0]]++
		}
		if len(claims) != n {
			t.Errorf("%d items claimed, want %d", len(claims), n)
		}
		counts, _ := s.OutboxCounts(ctx)
		if counts[OutboxSent] != n {
			t.Errorf("OutboxCounts = %v", counts)
		}
		t.Logf("%d items, claims per worker: %v", len(claims), perOwner)
	})
}

// TestGroupCommit: concurrent enqueues on SQLite share commits; one
// failing insert fails alone; the writer goes back to synchronous=NORMAL.
func TestGroupCommit(t *testing.T) {
	s := openSQLiteStore(t)
	ctx := ctxT(t)
	form := newForm(t, s)
	const n = 300
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			formID := form
			if i == 150 {
				formID = 999999 // fails alone
			}
			sub := &Submission{FormID: formID}
			item := &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage(fmt.Sprint("g", i))}
			errs[i] = s.EnqueueSubmission(ctx, sub, item)
			if errs[i] == nil && (sub.ID == 0 || item.ID == 0 || *item.SubmissionID != sub.ID) {
				t.Errorf("request %d: ids not set: %+v %+v", i, sub, item)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == 150 {
			wantErr(t, "enqueue for a missing form", err, ErrNotFound)
		} else if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	counts, _ := s.OutboxCounts(ctx)
	subs, _ := s.ListSubmissions(ctx, SubmissionFilter{Limit: MaxListLimit})
	if counts[OutboxQueued] != n-1 || len(subs) != n-1 {
		t.Errorf("stored %d items and %d submissions, want %d", counts[OutboxQueued], len(subs), n-1)
	}
	var sync string
	if err := s.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil || sync != "1" {
		t.Errorf("writer PRAGMA synchronous = %q (%v), want 1 (NORMAL) between enqueues", sync, err)
	}

	// A cancelled context: refused, nothing stored.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err := s.EnqueueSubmission(cctx, &Submission{FormID: form}, &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage("x")})
	wantErr(t, "cancelled enqueue", err, context.Canceled)
	if c, _ := s.OutboxCounts(ctx); c[OutboxQueued] != n-1 {
		t.Errorf("a cancelled enqueue stored something: %v", c)
	}
}

func TestPurgeOutboxAndSubmissions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		items, subs := map[OutboxStatus]int64{}, map[OutboxStatus]int64{}
		for _, st := range []OutboxStatus{OutboxSent, OutboxFailed, OutboxUnknown, OutboxCancelled, OutboxQueued, OutboxHeld} {
			var subStatus SubmissionStatus
			if st == OutboxHeld {
				subStatus = SubmissionBlocked
			}
			sub, it := enqueue(t, s, form, string(st), subStatus, t0)
			items[st], subs[st] = it.ID, sub.ID
			switch st {
			case OutboxSent, OutboxFailed, OutboxUnknown:
				if got, _ := s.ClaimDue(ctx, "w", t0, time.Minute, 1); len(got) != 1 || got[0].ID != it.ID {
					t.Fatalf("claim %s", st)
				}
				wantErr(t, "finish", s.FinishAttempt(ctx, it.ID, "w", st, time.Time{}, "", nil), nil)
			case OutboxCancelled:
				wantErr(t, "cancel", s.CancelOutbox(ctx, it.ID), nil)
			}
		}
		recentSub, recent := enqueue(t, s, form, "recent", "", t0.Add(time.Hour))
		s.CancelOutbox(ctx, recent.ID)
		if _, err := s.w.ExecContext(ctx, s.q(`UPDATE outbox SET queued_at = ? WHERE id = ?`), micros(t0.Add(2*time.Hour)), recent.ID); err != nil {
			t.Fatal(err)
		}
		// Submissions go only after their outbox items.
		if n, err := s.PurgeSubmissions(ctx, t0.Add(time.Hour)); err != nil || n != 0 {
			t.Errorf("PurgeSubmissions before PurgeOutbox: %d, %v; want 0", n, err)
		}
		n, err := s.PurgeOutbox(ctx, t0.Add(time.Hour))
		wantErr(t, "PurgeOutbox", err, nil)
		if n != 3 {
			t.Errorf("purged %d items, want 3 (the old sent, cancelled and held ones)", n)
		}
		n, err = s.PurgeSubmissions(ctx, t0.Add(time.Hour))
		wantErr(t, "PurgeSubmissions", err, nil)
		if n != 3 {
			t.Errorf("purged %d submissions, want 3 (those of the purged items)", n)
		}
		gone := func(st OutboxStatus) bool { return st == OutboxSent || st == OutboxCancelled || st == OutboxHeld }
		for st, id := range items {
			if _, err := s.OutboxItem(ctx, id); errors.Is(err, ErrNotFound) != gone(st) {
				t.Errorf("%s item: %v after the purge", st, err)
			}
			if _, err := s.Submission(ctx, subs[st]); errors.Is(err, ErrNotFound) != gone(st) {
				t.Errorf("submission of the %s item: %v after the purge", st, err)
			}
		}
		if _, err := s.OutboxItem(ctx, recent.ID); err != nil {
			t.Errorf("a recent cancelled item was purged: %v", err)
		}
		if _, err := s.Submission(ctx, recentSub.ID); err != nil {
			t.Errorf("the recent item's submission was purged: %v", err)
		}
	})
}
