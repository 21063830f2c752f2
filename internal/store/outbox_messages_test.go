package store

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// bigMessage is a valid message of about size bytes.
func bigMessage(tag string, size int) []byte {
	line := strings.Repeat("x", 76) + "\r\n"
	return append(testMessage(tag), strings.Repeat(line, size/len(line))...)
}

// TestOutboxUpdatesLeaveMessage: on SQLite the writes of a delivery (the
// claim, the end-of-message mark, the outcome) do not write the item's
// message again (migration 0023), counted in pages added to the
// write-ahead log by each: a 256 KiB message is 64 pages of 4 KiB, and
// with the message in the outbox row each write added about 70. The
// message still reads back whole from the claim and from OutboxItem.
func TestOutboxUpdatesLeaveMessage(t *testing.T) {
	s := openSQLiteStore(t)
	ctx := ctxT(t)
	form := newForm(t, s)
	msg := bigMessage("big", 256<<10)
	item := &OutboxItem{MailFrom: "forms@example.org", Rcpts: []string{"owner@example.org"}, Message: msg, NextAttemptAt: t0}
	if err := s.EnqueueSubmission(ctx, &Submission{FormID: form}, item); err != nil {
		t.Fatal(err)
	}
	// pages runs step and returns how many pages its commit added to the
	// write-ahead log, emptied first.
	pages := func(name string, step func() error) int {
		t.Helper()
		var busy, log, done int
		if err := s.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &log, &done); err != nil || busy != 0 {
			t.Fatalf("%s: checkpoint before: busy %d, %v", name, busy, err)
		}
		if err := step(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := s.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done); err != nil {
			t.Fatalf("%s: checkpoint after: %v", name, err)
		}
		return log
	}
	var claimed []OutboxItem
	steps := []struct {
		name string
		step func() error
	}{
		{"claim", func() (err error) {
			claimed, err = s.ClaimDue(ctx, "w1", t0, time.Minute, 1)
			return err
		}},
		{"end-of-message mark", func() error { return s.MarkDataSent(ctx, item.ID, "w1", t0) }},
		{"outcome", func() error { return s.FinishAttempt(ctx, item.ID, "w1", OutboxSent, time.Time{}, "", nil) }},
	}
	for _, st := range steps {
		if n := pages(st.name, st.step); n > 16 {
			t.Errorf("%s: %d pages written to the log for a message of %d pages", st.name, n, len(msg)/4096)
		}
	}
	if len(claimed) != 1 || !bytes.Equal(claimed[0].Message, msg) {
		t.Fatalf("claimed %d items, want the one with its message whole", len(claimed))
	}
	got, err := s.OutboxItem(ctx, item.ID)
	if err != nil || !bytes.Equal(got.Message, msg) || got.Status != OutboxSent {
		t.Fatalf("OutboxItem: status %v, message whole %v, %v", got.Status, err == nil && bytes.Equal(got.Message, msg), err)
	}
	// Purged with its item.
	if n, err := s.PurgeOutbox(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("PurgeOutbox: %d, %v", n, err)
	}
	var left int
	if err := s.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox_messages`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d messages left after their items were purged (%v)", left, err)
	}
}

// TestOutboxMessageStoredBefore: an item stored before migration 0023
// (its message in the outbox row, none in outbox_messages) is claimed
// and read with its message; a new item keeps none in its row.
func TestOutboxMessageStoredBefore(t *testing.T) {
	s := openSQLiteStore(t)
	ctx := ctxT(t)
	form := newForm(t, s)
	_, old := enqueue(t, s, form, "old", SubmissionQueued, t0)
	// As the upgrade leaves such a row.
	if _, err := s.w.ExecContext(ctx, `UPDATE outbox SET message = (SELECT message FROM outbox_messages WHERE item_id = ?)
		WHERE id = ?`, old.ID, old.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM outbox_messages WHERE item_id = ?`, old.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.OutboxItem(ctx, old.ID)
	if err != nil || !bytes.Equal(got.Message, old.Message) {
		t.Fatalf("OutboxItem of an item stored before: %q, %v; want its message", got.Message, err)
	}
	claimed, err := s.ClaimDue(ctx, "w1", t0, time.Minute, 5)
	if err != nil || len(claimed) != 1 || !bytes.Equal(claimed[0].Message, old.Message) {
		t.Fatalf("claimed %d items (%v), want the one stored before with its message", len(claimed), err)
	}
	var inline int
	if err := s.w.QueryRowContext(ctx, `SELECT length(message) FROM outbox WHERE id = ?`, old.ID).Scan(&inline); err != nil || inline == 0 {
		t.Fatalf("the row stored before lost its message (%d bytes, %v)", inline, err)
	}
	// A new item keeps nothing in its row.
	_, item := enqueue(t, s, form, "new", SubmissionQueued, t0)
	if err := s.w.QueryRowContext(ctx, `SELECT length(message) FROM outbox WHERE id = ?`, item.ID).Scan(&inline); err != nil || inline != 0 {
		t.Errorf("a new item's row holds %d bytes of message (%v), want 0", inline, err)
	}
}
