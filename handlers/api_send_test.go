package handlers_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"sockmail/internal/api"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// apiPost makes a POST of a JSON body to the API with the token.
func (c *client) apiPost(token, path, body string) *response {
	c.a.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.a.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	return c.do(req)
}

// TestAPISendToPostfix, on both backends: POST /api/v1/sends answers 202
// with the send's id and URLs at once; the message (with its base64
// attachment) arrives in the test Postfix's Maildir; the send, read back
// through the API, is "sent", records the token as its source, and its
// event stream ends with "done".
func TestAPISendToPostfix(t *testing.T) {
	pf := testenv.Postfix(t)
	onBothBackends(t, func(t *testing.T, backend string) {
		a := newHistoryApp(t, historyOptions{backend: backend})
		tok, _ := addToken(t, a.store, "ci", []string{api.ScopeSend, api.ScopeRead}, nil)
		c := a.client()
		unique := testenv.UniqueToken()
		host, port := splitHostPort(t, pf.SMTPAddr)
		body, _ := json.Marshal(map[string]any{
			"server": "adhoc", "host": host, "port": port, "tls": "none",
			"from": "api@example.test", "to": []string{"api-" + unique + "@" + pf.Domain},
			"subject": "api " + unique, "text": "Sent through the API.\n", "headers": []string{"X-Test: " + unique},
			"attachments": []map[string]string{{"name": "a.txt", "content": base64.StdEncoding.EncodeToString([]byte("attached " + unique))}},
		})
		r := c.apiPost(tok, "/api/v1/sends", string(body))
		var started struct {
			ID     int64  `json:"id"`
			URL    string `json:"url"`
			Events string `json:"events"`
		}
		if r.status != http.StatusAccepted || json.Unmarshal([]byte(r.body), &started) != nil || started.ID == 0 ||
			r.header.Get("Location") != started.URL || started.Events != started.URL+"/events" {
			t.Fatalf("POST /api/v1/sends: %d %s", r.status, r.body)
		}
		msg := testenv.WaitForMessage(t, pf.Maildir, "api "+unique, testenv.StallLimit)
		for _, want := range []string{"X-Test: " + unique, "Sent through the API.", base64.StdEncoding.EncodeToString([]byte("attached " + unique))} {
			if !bytes.Contains(msg, []byte(want)) {
				t.Errorf("delivered message lacks %q", want)
			}
		}
		var got struct {
			Status string `json:"status"`
		}
		poll, _ := addToken(t, a.store, "poll", []string{api.ScopeRead}, nil)
		testenv.WaitFor(t, "the API send to end", func() (string, bool) {
			if r, ok := c.apiPoll(poll, started.URL); ok {
				_ = json.Unmarshal([]byte(r.body), &got)
			}
			return got.Status, got.Status != string(store.StatusRunning) && got.Status != ""
		})
		if got.Status != "sent" {
			t.Errorf("status %q, want sent", got.Status)
		}
		snd, err := a.store.Send(t.Context(), started.ID)
		if err != nil || snd.Source != "api:ci" {
			t.Errorf("source of the send: %+v, %v; want api:ci", snd, err)
		}
		if r := c.apiGet(tok, started.Events); !strings.Contains(r.body, "event: done") {
			t.Errorf("events of the ended send: %s", r.body)
		}
	})
}

// TestAPISendRefused: a send needs the send scope, JSON, a valid request
// (the compose page's checks, named in the problem) and a body within
// the limit.
func TestAPISendRefused(t *testing.T) {
	a := newHistoryApp(t, historyOptions{})
	send, _ := addToken(t, a.store, "send", []string{api.ScopeSend}, nil)
	read, _ := addToken(t, a.store, "read", []string{api.ScopeRead}, nil)
	c := a.client()
	ok := `{"to":["a@example.test"],"from":"b@example.test","subject":"s","text":"t"}`
	wantProblem(t, "read scope", c.apiPost(read, "/api/v1/sends", ok), http.StatusForbidden, "forbidden", `"send" scope`)
	tests := []struct {
		name, body   string
		status       int
		kind, detail string
	}{
		{"not JSON", "to=a", http.StatusBadRequest, "bad-json", "not a send request"},
		{"unknown field", `{"too":["a@example.test"]}`, http.StatusBadRequest, "bad-json", `"too"`},
		{"two values", ok + ok, http.StatusBadRequest, "bad-json", "more than one"},
		{"bad address", `{"to":["not an address"],"from":"b@example.test","subject":"s","text":"t"}`, http.StatusUnprocessableEntity, "invalid-send", "to:"},
		{"bad tls", `{"server":"adhoc","host":"127.0.0.1","port":"25","tls":"maybe","to":["a@example.test"],"from":"b@example.test","text":"t"}`, http.StatusUnprocessableEntity, "invalid-send", "tls:"},
		{"bad attachment", `{"to":["a@example.test"],"from":"b@example.test","text":"t","attachments":[{"name":"x","content":"%%%"}]}`, http.StatusUnprocessableEntity, "invalid-send", "attachments:"},
		{"too large", `{"text":"` + strings.Repeat("x", 3<<20) + `"}`, http.StatusRequestEntityTooLarge, "too-large", ""},
	}
	for _, tc := range tests {
		wantProblem(t, tc.name, c.apiPost(send, "/api/v1/sends", tc.body), tc.status, tc.kind, tc.detail)
	}
	req, _ := http.NewRequest(http.MethodPost, a.srv.URL+"/api/v1/sends", strings.NewReader(ok))
	req.Header.Set("Authorization", "Bearer "+send)
	req.Header.Set("Content-Type", "text/plain")
	wantProblem(t, "not JSON type", c.do(req), http.StatusUnsupportedMediaType, "unsupported-media-type", "application/json")
	// A valid request to the built-in capture server is accepted.
	if r := c.apiPost(send, "/api/v1/sends", ok); r.status != http.StatusAccepted {
		t.Errorf("valid send: %d %s", r.status, r.body)
	}
}

// TestAPISendEventsLive: the event stream of a send started through the
// API, read with the token, shows the transcript as it happens (the
// server stalls at MAIL FROM, so the send is still running) and ends with
// "done" once the send is cancelled.
func TestAPISendEventsLive(t *testing.T) {
	addr, hungUp := stallingServer(t)
	host, port := splitHostPort(t, addr)
	a := newApp(t, appOptions{})
	tok, _ := addToken(t, a.store, "ci", []string{api.ScopeSend, api.ScopeRead}, nil)
	c := a.client()
	body, _ := json.Marshal(map[string]any{"server": "adhoc", "host": host, "port": port, "tls": "none",
		"from": "api@example.test", "to": []string{"a@example.test"}, "subject": "live", "text": "t"})
	r := c.apiPost(tok, "/api/v1/sends", string(body))
	var started struct {
		ID     int64  `json:"id"`
		Events string `json:"events"`
	}
	if r.status != http.StatusAccepted || json.Unmarshal([]byte(r.body), &started) != nil {
		t.Fatalf("POST /api/v1/sends: %d %s", r.status, r.body)
	}
	req, _ := http.NewRequest(http.MethodGet, a.srv.URL+started.Events+"?after=0", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	stream := &sseReader{t: t, sc: bufio.NewScanner(resp.Body)}
	stream.until("MAIL FROM") // live: the server has not answered it
	// An admin cancels it on its page (the API has no cancel yet).
	c.signUp()
	path := "/sends/" + strconv.FormatInt(started.ID, 10)
	page := c.get(path)
	csrf, _ := page.testid(t, "cancel-form").Find(`input[name="_csrf"]`).Attr("value")
	if r := c.post(path+"/cancel", url.Values{"_csrf": {csrf}}); r.status != http.StatusSeeOther {
		t.Fatalf("cancel: %d", r.status)
	}
	<-hungUp
	for ev := "rounds"; ev != "done"; {
		if ev, _ = stream.next(); ev == "" {
			t.Fatal("the stream ended without its done event")
		}
	}
	snd, err := a.store.Send(t.Context(), started.ID)
	if err != nil || snd.Source != "api:ci" || snd.Status != "aborted" {
		t.Errorf("send after the stop: %+v, %v", snd, err)
	}
}
