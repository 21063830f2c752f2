package store

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"
)

// TestMarkDataSent: the "end of message sent" mark is set only by the
// lease owner, cleared by the outcome and by an admin retry, and turns an
// expired claim into unknown instead of a take-over.
func TestMarkDataSent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		subA, a := enqueue(t, s, form, "a", "", t0)
		_, b := enqueue(t, s, form, "b", "", t0)
		_, c := enqueue(t, s, form, "c", "", t0)
		lease := time.Minute
		got, err := s.ClaimDue(ctx, "crashed", t0, lease, 3)
		wantErr(t, "ClaimDue", err, nil)
		if len(got) != 3 {
			t.Fatalf("claimed %d", len(got))
		}
		for _, it := range got {
			if !it.DataSentAt.IsZero() {
				t.Errorf("claimed item %d has DataSentAt %v", it.ID, it.DataSentAt)
			}
		}

		// Only the owner may mark; a missing item is not found.
		wantErr(t, "MarkDataSent by another", s.MarkDataSent(ctx, a.ID, "other", t0.Add(time.Second)), ErrLeaseLost)
		wantErr(t, "MarkDataSent of a missing item", s.MarkDataSent(ctx, 99999, "crashed", t0), ErrNotFound)
		at := t0.Add(2 * time.Second)
		wantErr(t, "MarkDataSent a", s.MarkDataSent(ctx, a.ID, "crashed", at), nil)
		if it, _ := s.OutboxItem(ctx, a.ID); !it.DataSentAt.Equal(at) || it.Status != OutboxSending {
			t.Errorf("after MarkDataSent: DataSentAt %v status %s, want %v sending", it.DataSentAt, it.Status, at)
		}
		// An expired lease not yet taken over still belongs to its owner.
		wantErr(t, "MarkDataSent c after expiry", s.MarkDataSent(ctx, c.ID, "crashed", t0.Add(lease)), nil)
		// Finishing clears the mark.
		wantErr(t, "FinishAttempt c", s.FinishAttempt(ctx, c.ID, "crashed", OutboxQueued, t0.Add(2*lease), "4xx", nil), nil)
		if it, _ := s.OutboxItem(ctx, c.ID); !it.DataSentAt.IsZero() || it.Status != OutboxQueued {
			t.Errorf("after FinishAttempt: %+v", it)
		}

		checkExpiry(t, s, a, b, subA.ID, at, lease)
		checkOldOwnerLocked(t, s, a, b, at, lease)
		checkRetryClearsMark(t, s, a, subA.ID, lease)
	})
}

// checkExpiry: the lease expires: b (no mark) is taken over, a (marked at
// at) becomes unknown and is not returned.
func checkExpiry(t *testing.T, s *Store, a, b *OutboxItem, subA int64, at time.Time, lease time.Duration) {
	t.Helper()
	ctx := ctxT(t)
	got, err := s.ClaimDue(ctx, "rescuer", t0.Add(lease), lease, 10)
	wantErr(t, "ClaimDue after expiry", err, nil)
	if ids := claimIDs(got); len(ids) != 1 || ids[0] != b.ID {
		t.Fatalf("after expiry claimed %v, want only b %d", ids, b.ID)
	}
	if got[0].TakenOverFrom != "crashed" {
		t.Errorf("b not taken over: %+v", got[0])
	}
	ia, _ := s.OutboxItem(ctx, a.ID)
	if ia.Status != OutboxUnknown || ia.LastError != DataSentLostError || ia.LeaseOwner != "" || !ia.LeaseUntil.IsZero() ||
		ia.TakenOverFrom != "crashed" || ia.Attempts != 1 || !ia.DataSentAt.Equal(at) {
		t.Errorf("marked item after expiry: %+v", ia)
	}
	if sa, _ := s.Submission(ctx, subA); sa.Status != SubmissionUnknown {
		t.Errorf("submission of the marked item: %s, want unknown", sa.Status)
	}
}

// checkOldOwnerLocked: the old owner can mark neither any more, nobody
// else can finish a, and claiming again later changes nothing for a; b
// and c are sent.
func checkOldOwnerLocked(t *testing.T, s *Store, a, b *OutboxItem, at time.Time, lease time.Duration) {
	t.Helper()
	ctx := ctxT(t)
	wantErr(t, "MarkDataSent a by the old owner", s.MarkDataSent(ctx, a.ID, "crashed", at), ErrLeaseLost)
	// Only the old owner's known outcome may replace the guess
	// (TestKnownOutcomeReplacesUnknown).
	wantErr(t, "FinishAttempt a by another owner", s.FinishAttempt(ctx, a.ID, "rescuer", OutboxSent, time.Time{}, "", nil), ErrLeaseLost)
	wantErr(t, "MarkDataSent b by the old owner", s.MarkDataSent(ctx, b.ID, "crashed", at), ErrLeaseLost)
	// Claiming again later changes nothing for a.
	got, err := s.ClaimDue(ctx, "third", t0.Add(10*lease), lease, 10)
	wantErr(t, "ClaimDue later", err, nil)
	for _, it := range got {
		if it.ID == a.ID {
			t.Errorf("the unknown item was claimed again")
		}
	}
	if len(got) != 2 {
		t.Fatalf("later claimed %v, want b and c", claimIDs(got))
	}
	for _, it := range got {
		wantErr(t, "FinishAttempt", s.FinishAttempt(ctx, it.ID, "third", OutboxSent, time.Time{}, "", nil), nil)
	}
}

// checkRetryClearsMark: an admin retry clears the mark and queues a; its
// next attempt marks and sends it.
func checkRetryClearsMark(t *testing.T, s *Store, a *OutboxItem, subA int64, lease time.Duration) {
	t.Helper()
	ctx := ctxT(t)
	wantErr(t, "RetryOutbox a", s.RetryOutbox(ctx, a.ID, t0.Add(11*lease)), nil)
	if it, _ := s.OutboxItem(ctx, a.ID); it.Status != OutboxQueued || !it.DataSentAt.IsZero() || it.TakenOverFrom != "" {
		t.Errorf("after RetryOutbox: %+v", it)
	}
	got, err := s.ClaimDue(ctx, "fourth", t0.Add(11*lease), lease, 10)
	wantErr(t, "ClaimDue after retry", err, nil)
	if ids := claimIDs(got); len(ids) != 1 || ids[0] != a.ID || got[0].TakenOverFrom != "" || !got[0].DataSentAt.IsZero() {
		t.Errorf("after retry claimed %+v, want a %d", got, a.ID)
	}
	wantErr(t, "MarkDataSent a again", s.MarkDataSent(ctx, a.ID, "fourth", t0.Add(11*lease)), nil)
	wantErr(t, "FinishAttempt a sent", s.FinishAttempt(ctx, a.ID, "fourth", OutboxSent, time.Time{}, "", nil), nil)
	if it, _ := s.OutboxItem(ctx, a.ID); it.Status != OutboxSent || !it.DataSentAt.IsZero() {
		t.Errorf("after the sent outcome: %+v", it)
	}
	if sa, _ := s.Submission(ctx, subA); sa.Status != SubmissionSent {
		t.Errorf("submission after the sent outcome: %s", sa.Status)
	}
}

// TestKnownOutcomeReplacesUnknown: an item a claim settled as unknown
// because its owner's lease expired after the mark takes that owner's
// outcome when it comes late (the owner held it while the database
// refused writes), and only that owner's, and only until an admin acts.
func TestKnownOutcomeReplacesUnknown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		lease := time.Minute
		settle := func(tag string) (int64, *OutboxItem) {
			sub, it := enqueue(t, s, form, tag, "", t0)
			if got, err := s.ClaimDue(ctx, "holder-"+tag, t0, lease, 1); err != nil || len(got) != 1 || got[0].ID != it.ID {
				t.Fatalf("claim %s: %v %v", tag, claimIDs(got), err)
			}
			wantErr(t, "MarkDataSent "+tag, s.MarkDataSent(ctx, it.ID, "holder-"+tag, t0), nil)
			if _, err := s.ClaimDue(ctx, "claimer", t0.Add(lease), lease, 10); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.OutboxItem(ctx, it.ID); got.Status != OutboxUnknown {
				t.Fatalf("%s after its lease expired: %s, want unknown", tag, got.Status)
			}
			return sub.ID, it
		}

		subA, a := settle("a")
		snd := fullSend(nil)
		wantErr(t, "FinishAttemptSend a by its owner", s.FinishAttemptSend(ctx, a.ID, "holder-a", OutboxSent, time.Time{}, "stored late: ...", snd), nil)
		got, _ := s.OutboxItem(ctx, a.ID)
		if got.Status != OutboxSent || got.LastError != "stored late: ..." || got.LastSendID == nil || *got.LastSendID != snd.ID ||
			!got.DataSentAt.IsZero() || got.TakenOverFrom != "" {
			t.Errorf("a after its owner's late outcome: %+v", got)
		}
		if sub, _ := s.Submission(ctx, subA); sub.Status != SubmissionSent {
			t.Errorf("a's submission: %s, want sent", sub.Status)
		}
		wantErr(t, "FinishAttempt a twice", s.FinishAttempt(ctx, a.ID, "holder-a", OutboxSent, time.Time{}, "", nil), ErrLeaseLost)

		_, b := settle("b")
		wantErr(t, "RetryOutbox b", s.RetryOutbox(ctx, b.ID, t0.Add(2*lease)), nil)
		wantErr(t, "FinishAttempt b after the admin's retry", s.FinishAttempt(ctx, b.ID, "holder-b", OutboxSent, time.Time{}, "", nil), ErrLeaseLost)
		if got, _ := s.OutboxItem(ctx, b.ID); got.Status != OutboxQueued {
			t.Errorf("b after the admin's retry and a late outcome: %s, want queued", got.Status)
		}
	})
}

// TestFinishAttempts: a pipelined batch's outcomes are stored together
// with their history records (searchable, each the item's last attempt);
// an attempt whose claim is gone does not fail the others and keeps its
// history record only; a batch that cannot be stored stores nothing.
func TestFinishAttempts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		subA, a := enqueue(t, s, form, "a", "", t0)
		_, b := enqueue(t, s, form, "b", "", t0)
		_, d := enqueue(t, s, form, "d", "", t0)
		if got, err := s.ClaimDue(ctx, "w", t0, time.Minute, 4); err != nil || len(got) != 3 {
			t.Fatalf("claim: %v %v", claimIDs(got), err)
		}
		// c is another worker's: w's outcome for it finds no claim.
		_, c := enqueue(t, s, form, "c", "", t0)
		if got, err := s.ClaimDue(ctx, "other", t0, time.Minute, 4); err != nil || len(got) != 1 {
			t.Fatalf("claim c: %v %v", claimIDs(got), err)
		}

		send := func(tag string) *Send {
			snd := fullSend(nil)
			snd.Subject, snd.Events = "batch "+tag, transcript(21, "batchword"+tag)
			return snd
		}
		next := t0.Add(time.Hour)
		outs := []AttemptOutcome{
			{ItemID: a.ID, Status: OutboxSent, Send: send("a")},
			{ItemID: b.ID, Status: OutboxQueued, Next: next, LastErr: "451 later", Send: send("b")},
			{ItemID: c.ID, Status: OutboxSent, Send: send("c")},
		}
		wantErr(t, "FinishAttempts", s.FinishAttempts(ctx, "w", outs), nil)
		wantErr(t, "outcome a", outs[0].Err, nil)
		wantErr(t, "outcome b", outs[1].Err, nil)
		wantErr(t, "outcome c", outs[2].Err, ErrLeaseLost)

		for i, want := range []struct {
			id     int64
			status OutboxStatus
			last   bool // the item's last send is this attempt's
		}{{a.ID, OutboxSent, true}, {b.ID, OutboxQueued, true}, {c.ID, OutboxSending, false}} {
			o := outs[i]
			if o.Send.ID == 0 {
				t.Fatalf("outcome %d: history record not stored", i)
			}
			if _, err := s.Send(ctx, o.Send.ID); err != nil {
				t.Errorf("outcome %d: send %d: %v", i, o.Send.ID, err)
			}
			it, err := s.OutboxItem(ctx, want.id)
			if err != nil {
				t.Fatal(err)
			}
			if it.Status != want.status || (it.LastSendID != nil && *it.LastSendID == o.Send.ID) != want.last {
				t.Errorf("item %d: status %s last send %v, want %s (last send %d: %v)", want.id, it.Status, it.LastSendID, want.status, o.Send.ID, want.last)
			}
			page, err := s.ListSends(ctx, SendFilter{Query: "batchword" + string(rune('a'+i)), Limit: 10})
			if err != nil || len(page.Sends) != 1 || page.Sends[0].ID != o.Send.ID {
				t.Errorf("search for outcome %d's transcript word: %+v %v, want send %d", i, page.Sends, err, o.Send.ID)
			}
		}
		if it, _ := s.OutboxItem(ctx, b.ID); !it.NextAttemptAt.Equal(next) || it.LastError != "451 later" || it.LeaseOwner != "" {
			t.Errorf("b after its outcome: %+v", it)
		}
		if sub, _ := s.Submission(ctx, subA.ID); sub.Status != SubmissionSent {
			t.Errorf("a's submission: %s, want sent", sub.Status)
		}

		// A batch that fails stores nothing: not d's outcome, not its record.
		before, err := s.ListSends(ctx, SendFilter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		bad := []AttemptOutcome{
			{ItemID: d.ID, Status: OutboxSent, Send: send("d")},
			{ItemID: d.ID, Status: "bogus", Send: send("e")},
		}
		if err := s.FinishAttempts(ctx, "w", bad); err == nil || !strings.Contains(err.Error(), "bogus") {
			t.Errorf("FinishAttempts with a bad status: %v, want an error naming it", err)
		}
		if bad[0].Send.ID != 0 || bad[0].Err != nil {
			t.Errorf("a failed batch set the outcome: %+v", bad[0])
		}
		if it, _ := s.OutboxItem(ctx, d.ID); it.Status != OutboxSending || it.LeaseOwner != "w" {
			t.Errorf("d after a failed batch: %s %q, want still sending by w", it.Status, it.LeaseOwner)
		}
		if after, _ := s.ListSends(ctx, SendFilter{Limit: 100}); after.Total != before.Total {
			t.Errorf("a failed batch stored history records: %d sends, want %d", after.Total, before.Total)
		}
	})
}

// TestWorkerWritesCommitAsync: on PostgreSQL the worker's writes (claims,
// outcomes: writeTx; marks: writeSmallTx) commit with synchronous_commit
// off, the same guarantee as SQLite's NORMAL; other transactions (a
// submission's) keep the server's synchronous commit.
func TestWorkerWritesCommitAsync(t *testing.T) {
	s := openPostgresStore(t)
	ctx := ctxT(t)
	setting := func(run func(fn func(ctx context.Context, tx *sql.Tx) error) error) string {
		t.Helper()
		var got string
		if err := run(func(ctx context.Context, tx *sql.Tx) error {
			return tx.QueryRowContext(ctx, `SHOW synchronous_commit`).Scan(&got)
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for name, run := range map[string]func(fn func(ctx context.Context, tx *sql.Tx) error) error{
		"writeTx":      func(fn func(ctx context.Context, tx *sql.Tx) error) error { return s.writeTx(ctx, fn) },
		"writeSmallTx": func(fn func(ctx context.Context, tx *sql.Tx) error) error { return s.writeSmallTx(ctx, fn) },
	} {
		if got := setting(run); got != "off" {
			t.Errorf("%s: synchronous_commit %q, want off", name, got)
		}
	}
	inTx := func(fn func(ctx context.Context, tx *sql.Tx) error) error {
		return s.inTx(ctx, func(tx *sql.Tx) error { return fn(ctx, tx) })
	}
	if got := setting(inTx); got != "on" {
		t.Errorf("inTx (a submission's transaction): synchronous_commit %q, want on", got)
	}
}

// TestTakeRateCommitsAsync: on PostgreSQL sockmail_take_rate and
// sockmail_take_rate_ahead make the transaction that calls them commit
// with synchronous_commit off (so that the counter rows they lock are
// free again without waiting for the WAL flush, and the client needs no
// SET LOCAL statement of its own), for that transaction only.
func TestTakeRateCommitsAsync(t *testing.T) {
	for _, call := range []struct{ name, sql string }{
		{"sockmail_take_rate", `SELECT sockmail_take_rate(NULL, $1, $2, $3, $4)`},
		{"sockmail_take_rate_ahead", `SELECT * FROM sockmail_take_rate_ahead(NULL, $1, $2, $3, $4, '{8}')`},
	} {
		t.Run(call.name, func(t *testing.T) { takeRateCommitsAsync(t, call.sql) })
	}
}

func takeRateCommitsAsync(t *testing.T, call string) {
	s := openPostgresStore(t)
	ctx := ctxT(t)
	show := func(tx *sql.Tx) string {
		t.Helper()
		var got string
		if err := tx.QueryRowContext(ctx, `SHOW synchronous_commit`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if got := show(tx); got != "on" {
			t.Errorf("before the call: synchronous_commit %q, want on", got)
		}
		if _, err := tx.ExecContext(ctx, call,
			[]string{"contact:form:1"}, int64(1000), []int64{0}, []int32{5}); err != nil {
			return err
		}
		if got := show(tx); got != "off" {
			t.Errorf("after the call: synchronous_commit %q, want off", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.inTx(ctx, func(tx *sql.Tx) error {
		if got := show(tx); got != "on" {
			t.Errorf("the next transaction: synchronous_commit %q, want on (the setting is the call's transaction's only)", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
