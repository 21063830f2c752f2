package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sockmail/internal/store"
	"sockmail/smtp"
)

// TestStoredMessageCap checks that the web form keeps the message within
// MaxStoredMessage, marking a longer one truncated.
func TestStoredMessageCap(t *testing.T) {
	a := newHistoryApp(t, historyOptions{maxStored: 2048})
	c := a.client()
	c.signUp()
	form := composeForm(c.csrf("/compose"))
	form.Set("text", strings.Repeat("long line of text\n", 500))
	path := c.send(form)
	c.waitDone(path)
	id, _ := strconv.ParseInt(strings.TrimPrefix(path, "/sends/"), 10, 64)
	snd, err := a.store.Send(context.Background(), id)
	if err != nil || len(snd.Message) != 2048 || !snd.MessageTruncated {
		t.Errorf("stored %d bytes, truncated %v, %v", len(snd.Message), snd.MessageTruncated, err)
	}
	form = composeForm(c.csrf("/compose"))
	path = c.send(form)
	c.waitDone(path)
	id, _ = strconv.ParseInt(strings.TrimPrefix(path, "/sends/"), 10, 64)
	if snd, err := a.store.Send(context.Background(), id); err != nil || snd.MessageTruncated || !bytes.Contains(snd.Message, []byte("Hello,")) {
		t.Errorf("small message stored truncated or missing: %v", err)
	}
}

// TestResultPageOfASendRunningElsewhere: behind a load balancer, the
// result page may be served by an instance that does not run the send.
func TestResultPageOfASendRunningElsewhere(t *testing.T) {
	a := newHistoryApp(t, historyOptions{})
	c := a.client()
	c.signUp()
	recent := a.seedSend(store.Send{Status: store.StatusRunning, CreatedAt: time.Now()})
	r := c.get("/sends/" + strconv.FormatInt(recent.ID, 10))
	if got := r.testid(t, "status").Text(); r.status != http.StatusOK || !strings.Contains(got, "running elsewhere") {
		t.Errorf("recent send running elsewhere: %d %q", r.status, got)
	}
	old := a.seedSend(store.Send{Status: store.StatusRunning, CreatedAt: time.Now().Add(-time.Hour)})
	if got := c.get("/sends/"+strconv.FormatInt(old.ID, 10)).testid(t, "status").Text(); !strings.Contains(got, "interrupted") {
		t.Errorf("old running send: %q", got)
	}
}

// TestFiftyConcurrentSendsOnSQLite posts 50 compose forms at once: every
// send is stored, finished and listed, and SQLite never says "database is
// locked".
func TestFiftyConcurrentSendsOnSQLite(t *testing.T) {
	const n = 50
	rec := &recordingSend{}
	// Every send waits until all have started: they overlap, whatever
	// the machine's speed.
	var started sync.WaitGroup
	started.Add(n)
	all := make(chan struct{})
	go func() { started.Wait(); close(all) }()
	slow := func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, o smtp.SendOptions) (*smtp.Result, error) {
		started.Done()
		select {
		case <-all:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return rec.send(ctx, cfg, env, msg, o)
	}
	a := newHistoryApp(t, historyOptions{send: slow})
	c := a.client()
	c.signUp()
	tok := c.csrf("/compose")
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := composeForm(tok)
			form.Set("subject", fmt.Sprintf("concurrent %02d", i))
			req, _ := http.NewRequest(http.MethodPost, a.srv.URL+"/compose", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			resp, err := c.hc.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther {
				errs <- fmt.Errorf("send %d: status %d", i, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.h.Shutdown(ctx); err != nil { // waits for every send to be stored
		t.Fatal(err)
	}
	p, err := a.store.ListSends(context.Background(), store.SendFilter{Limit: store.MaxSendLimit})
	if err != nil || p.Total != n {
		t.Fatalf("%d sends stored, %v; want %d", p.Total, err, n)
	}
	subjects := map[string]bool{}
	for _, s := range p.Sends {
		subjects[s.Subject] = true
		if s.Status != smtp.StatusSent || s.QueueID != "FAKE1" {
			t.Errorf("send %d: %s %q", s.ID, s.Status, s.Error)
		}
	}
	if len(subjects) != n {
		t.Errorf("%d distinct subjects, want %d", len(subjects), n)
	}
	if logs := a.logs.String(); strings.Contains(logs, "locked") || strings.Contains(logs, "SQLITE_BUSY") || strings.Contains(logs, "level=ERROR") {
		t.Errorf("errors in the log:\n%s", logs)
	}
}
