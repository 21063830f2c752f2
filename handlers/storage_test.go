package handlers_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

// TestStorageFull: with the data folder on a disk that fills up,
// /healthz answers 503 with the reason while writes fail and 200 after;
// an admin saving a profile meanwhile gets a page that says the database
// cannot take writes because the disk is full (not a generic 500).
func TestStorageFull(t *testing.T) {
	disk := testenv.NewSmallDisk(t, 8<<20)
	a := newApp(t, appOptions{dir: disk.Dir})
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	a.store.SetWriteHealthClock(func() time.Time { return time.Unix(0, now.Load()) }, 10*time.Second)
	c := a.client()
	c.signUp()

	health := func() *response { return a.client().get("/healthz") }
	if r := health(); r.status != http.StatusOK || r.body != "ok\n" {
		t.Fatalf("healthz before: %d %q", r.status, r.body)
	}

	disk.Fill(t)
	tok := c.csrf("/profiles/new")
	r := c.post("/profiles", profileValues(tok, "typed while full", "smtp.example.test:587", "user@example.test", "secret"))
	const want = "The database cannot take writes right now: disk full."
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, want) || r.header.Get("Retry-After") == "" {
		t.Errorf("saving a profile on a full disk: %d, Retry-After %q, body lacks %q:\n%s", r.status, r.header.Get("Retry-After"), want, r.body)
	}
	if r := health(); r.status != http.StatusServiceUnavailable || r.body != "database cannot take writes: disk full\n" {
		t.Errorf("healthz while the disk is full: %d %q", r.status, r.body)
	}

	disk.Free(t)
	now.Add(int64(11 * time.Second)) // the failure is older than the window
	if r := health(); r.status != http.StatusOK {
		t.Errorf("healthz after space came back: %d %q", r.status, r.body)
	}
	r = c.post("/profiles", profileValues(c.csrf("/profiles/new"), "typed again", "smtp.example.test:587", "user@example.test", "secret"))
	if r.status != http.StatusSeeOther {
		t.Errorf("saving a profile after space came back: %d %s", r.status, r.body)
	}
}
