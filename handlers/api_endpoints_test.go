package handlers_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sockmail/internal/api"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// apiDo makes a request to the API with the token, a JSON body if body
// is not "" (every exchange is checked against the served OpenAPI
// document by client.do).
func (c *client) apiDo(token, method, path, body string) *response {
	c.a.t.Helper()
	req, _ := http.NewRequest(method, c.a.srv.URL+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return c.do(req)
}

// apiPoll is apiGet for a WaitFor loop, which polls faster than a
// token's rate limit: a 429 answer means nothing new yet (ok false). The
// tests poll with a token of their own, so that their other requests
// never meet the limit.
func (c *client) apiPoll(token, path string) (r *response, ok bool) {
	c.a.t.Helper()
	r = c.apiGet(token, path)
	return r, r.status != http.StatusTooManyRequests
}

// decodeJSON decodes a response body, failing the test unless the
// status is want.
func decodeJSON(t *testing.T, what string, r *response, want int, v any) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: status %d, want %d; body %.500s", what, r.status, want, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("%s: %v; body %.500s", what, err, r.body)
	}
}

// apiRouteScopes is the scope each API route needs. Every route under
// /api/v1 must be listed (TestAPIEveryRouteRefusesBadTokens fails
// otherwise), so that a new route's scope is tested.
func apiRouteScopes() map[string]string {
	return map[string]string{
		"GET /sends":                 api.ScopeRead,
		"POST /sends":                api.ScopeSend,
		"GET /sends/:id":             api.ScopeRead,
		"GET /sends/:id/events":      api.ScopeRead,
		"GET /sends/:id/transcript":  api.ScopeRead,
		"GET /sends/:id/message.eml": api.ScopeRead,
		"POST /sends/:id/cancel":     api.ScopeSend,
		"GET /captured":              api.ScopeCaptured,
		"GET /captured/:id":          api.ScopeCaptured,
		"GET /captured/:id/raw":      api.ScopeCaptured,
		"GET /captured/:id/parts/:n": api.ScopeCaptured,
		"DELETE /captured/:id":       api.ScopeCaptured,
		"GET /outbox":                api.ScopeAdmin,
		"POST /outbox/:id/retry":     api.ScopeAdmin,
		"POST /outbox/:id/cancel":    api.ScopeAdmin,
		"GET /checks":                api.ScopeRead,
		"POST /checks":               api.ScopeSend,
		"GET /checks/:id":            api.ScopeRead,
		"GET /openapi.json":          "",
	}
}

// TestAPIEveryRouteRefusesBadTokens, on both backends: every route under
// /api/v1 but the document answers 401 problems to no token, an unknown,
// an expired and a revoked one, and a 403 problem to a token holding
// every scope but the one it needs; an admin token passes both checks.
// Every answer is checked against the served OpenAPI document.
func TestAPIEveryRouteRefusesBadTokens(t *testing.T) {
	onBothBackends(t, func(t *testing.T, backend string) {
		a := newApp(t, appOptions{backend: backend})
		past := time.Now().Add(-time.Minute)
		expired, _ := addToken(t, a.store, "expired", []string{api.ScopeAdmin}, &past)
		revoked, rt := addToken(t, a.store, "revoked", []string{api.ScopeAdmin}, nil)
		if err := a.store.RevokeAPIToken(context.Background(), rt.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		admin, _ := addToken(t, a.store, "admin", []string{api.ScopeAdmin}, nil)
		allBut := map[string]string{}
		for _, s := range []string{api.ScopeSend, api.ScopeRead, api.ScopeCaptured, api.ScopeAdmin} {
			var others []string
			for _, o := range []string{api.ScopeSend, api.ScopeRead, api.ScopeCaptured} {
				if o != s {
					others = append(others, o)
				}
			}
			allBut[s], _ = addToken(t, a.store, "all-but-"+s, others, nil)
		}
		c := a.client()
		param := regexp.MustCompile(`:[a-z]+`)
		scopes := apiRouteScopes()
		seen := 0
		for _, rt := range a.h.Routes().Routes() {
			p, ok := strings.CutPrefix(rt.Path, "/api/v1")
			if !ok || rt.Method == "echo_route_not_found" {
				continue
			}
			key := rt.Method + " " + p
			scope, listed := scopes[key]
			if !listed {
				t.Errorf("route %s has no scope in apiRouteScopes", key)
				continue
			}
			if scope == "" {
				continue
			}
			seen++
			path := "/api/v1" + param.ReplaceAllStringFunc(p, func(s string) string {
				if s == ":n" {
					return "0"
				}
				return "999999"
			})
			body := ""
			if rt.Method == http.MethodPost {
				body = "{}"
			}
			for _, tc := range []struct {
				name, token, detail string
				status              int
			}{
				{"no token", "", "Authorization", http.StatusUnauthorized},
				{"unknown token", api.TokenPrefix + "nope", "not known", http.StatusUnauthorized},
				{"expired token", expired, "expired", http.StatusUnauthorized},
				{"revoked token", revoked, "revoked", http.StatusUnauthorized},
				{"wrong scope", allBut[scope], fmt.Sprintf("%q scope", scope), http.StatusForbidden},
			} {
				kind := "unauthorized"
				if tc.status == http.StatusForbidden {
					kind = "forbidden"
				}
				wantProblem(t, key+": "+tc.name, c.apiDo(tc.token, rt.Method, path, body), tc.status, kind, tc.detail)
			}
			if r := c.apiDo(admin, rt.Method, path, body); r.status == http.StatusUnauthorized || r.status == http.StatusForbidden {
				t.Errorf("%s with an admin token: %d %s", key, r.status, r.body)
			}
		}
		if want := len(scopes) - 1; seen != want {
			t.Errorf("%d routes checked, want %d (a route in apiRouteScopes is not served)", seen, want)
		}
	})
}

// TestAPIHistorySourceFilter, on both backends: source=api:* lists the
// sends of every API token and source=api:<name> those of one, in the
// API and on the /history page (which offers the api:* choice); a
// malformed source is a 422 problem.
func TestAPIHistorySourceFilter(t *testing.T) {
	onBothBackends(t, func(t *testing.T, backend string) {
		a := newApp(t, appOptions{backend: backend})
		ids := map[string][]int64{}
		for i, src := range []string{"web", "api:ci", "cli", "api:deploy", "api:ci", "contact"} {
			s := a.seedSend(store.Send{Source: src, Subject: fmt.Sprintf("src %d", i), CreatedAt: time.Now().Add(time.Duration(i-10) * time.Minute)})
			ids[src] = append([]int64{s.ID}, ids[src]...) // newest first
			if strings.HasPrefix(src, "api:") {
				ids["api:*"] = append([]int64{s.ID}, ids["api:*"]...)
			}
		}
		tok, _ := addToken(t, a.store, "reader", []string{api.ScopeRead}, nil)
		c := a.client()
		c.signUp()
		for _, src := range []string{"api:*", "api:ci", "api:deploy", "web"} {
			var l struct {
				Sends []struct {
					ID     int64  `json:"id"`
					Source string `json:"source"`
				} `json:"sends"`
				Total int `json:"total"`
			}
			decodeJSON(t, "source "+src, c.apiGet(tok, "/api/v1/sends?source="+src), http.StatusOK, &l)
			var got []int64
			for _, s := range l.Sends {
				got = append(got, s.ID)
			}
			if !slices.Equal(got, ids[src]) || l.Total != len(ids[src]) {
				t.Errorf("API source %s: %v (total %d), want %v", src, got, l.Total, ids[src])
			}
			if page := rowIDs(t, c.get("/history?source="+src)); !slices.Equal(page, ids[src]) {
				t.Errorf("/history source %s: %v, want %v", src, page, ids[src])
			}
		}
		if c.get("/history").doc(t).Find(`select[name="source"] option[value="api:*"]`).Length() != 1 {
			t.Error("the /history page's source filter does not offer api:*")
		}
		for _, bad := range []string{"api:", "api:c*", "smtp"} {
			wantProblem(t, "source "+bad, c.apiGet(tok, "/api/v1/sends?source="+bad), http.StatusUnprocessableEntity, "invalid-filter", "source:")
		}
	})
}

// TestAPICancelSend: a send through the API to a server that stops
// answering at MAIL FROM is cancelled through the API: 200 with status
// aborted, the connection closed, the transcript kept; a second cancel
// and a cancel of an unknown send are problems.
func TestAPICancelSend(t *testing.T) {
	addr, hungUp := stallingServer(t)
	host, port := splitHostPort(t, addr)
	a := newApp(t, appOptions{})
	tok, _ := addToken(t, a.store, "ci", []string{api.ScopeSend, api.ScopeRead}, nil)
	c := a.client()
	body, _ := json.Marshal(map[string]any{"server": "adhoc", "host": host, "port": port, "tls": "none",
		"from": "api@example.test", "to": []string{"rcpt@example.test"}, "subject": "to cancel", "text": "x"})
	var started struct {
		ID  int64  `json:"id"`
		URL string `json:"url"`
	}
	decodeJSON(t, "start", c.apiPost(tok, "/api/v1/sends", string(body)), http.StatusAccepted, &started)
	poll, _ := addToken(t, a.store, "poll", []string{api.ScopeRead}, nil)
	seen := 0
	testenv.WaitFor(t, "the send to reach MAIL FROM", func() (int, bool) {
		r, ok := c.apiPoll(poll, started.URL+"/transcript?format=text")
		if ok {
			seen = len(r.body)
		}
		return seen, ok && strings.Contains(r.body, "MAIL FROM:<api@example.test>")
	})
	var got struct {
		ID     int64  `json:"id"`
		Status string `json:"status"`
		URL    string `json:"url"`
	}
	decodeJSON(t, "cancel", c.apiDo(tok, http.MethodPost, started.URL+"/cancel", ""), http.StatusOK, &got)
	if got.ID != started.ID || got.Status != string(smtp.StatusAborted) || got.URL != started.URL {
		t.Errorf("cancel answered %+v, want send %d aborted", got, started.ID)
	}
	<-hungUp
	if tr := c.apiGet(tok, started.URL+"/transcript?format=text"); !strings.Contains(tr.body, "cancelled by API token ci") {
		t.Errorf("transcript lacks the cancel note:\n%s", tr.body)
	}
	wantProblem(t, "cancel again", c.apiDo(tok, http.MethodPost, started.URL+"/cancel", ""), http.StatusConflict, "not-running", "already ended")
	wantProblem(t, "cancel unknown", c.apiDo(tok, http.MethodPost, "/api/v1/sends/999999/cancel", ""), http.StatusNotFound, "not-found", "no such send")
}

// TestAPISendMultipartAndCapturedParts, on both backends: a send to the
// built-in capture server with one file as a multipart part and one as
// base64 in the request JSON arrives with both; the API reads the
// captured message taken apart (decoded header, text body, both parts
// with their names and sizes) and each part's bytes. Bad bodies are
// problems.
func TestAPISendMultipartAndCapturedParts(t *testing.T) {
	onBothBackends(t, func(t *testing.T, backend string) {
		a := newApp(t, appOptions{backend: backend})
		tok, _ := addToken(t, a.store, "ci", []string{api.ScopeSend, api.ScopeRead, api.ScopeCaptured}, nil)
		c := a.client()
		unique := testenv.UniqueToken()
		fileA := []byte("first file " + unique + "\x00\x01\x02")
		fileB := []byte("second file " + unique)
		reqJSON, _ := json.Marshal(map[string]any{"from": "api@example.test", "to": []string{"rcpt@example.test"},
			"subject": "Grüße " + unique, "text": "body " + unique,
			"attachments": []map[string]string{{"name": "b.txt", "content": base64.StdEncoding.EncodeToString(fileB)}}})
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("request", string(reqJSON))
		fw, _ := mw.CreateFormFile("attachments", "a.bin")
		_, _ = fw.Write(fileA)
		_ = mw.Close()
		post := func(ctype string, body []byte) *response {
			req, _ := http.NewRequest(http.MethodPost, a.srv.URL+"/api/v1/sends", bytes.NewReader(body))
			req.Header.Set("Content-Type", ctype)
			req.Header.Set("Authorization", "Bearer "+tok)
			return c.do(req)
		}
		var started struct {
			URL string `json:"url"`
		}
		decodeJSON(t, "multipart send", post(mw.FormDataContentType(), buf.Bytes()), http.StatusAccepted, &started)
		poll, _ := addToken(t, a.store, "poll", []string{api.ScopeRead}, nil)
		var st struct {
			Status string `json:"status"`
		}
		testenv.WaitFor(t, "the send to end", func() (string, bool) {
			if r, ok := c.apiPoll(poll, started.URL); ok {
				_ = json.Unmarshal([]byte(r.body), &st)
			}
			return st.Status, st.Status != "" && st.Status != string(store.StatusRunning)
		})
		var l struct {
			Messages []struct {
				URL string `json:"url"`
			} `json:"messages"`
		}
		decodeJSON(t, "search captured", c.apiGet(tok, "/api/v1/captured?q="+unique), http.StatusOK, &l)
		if len(l.Messages) != 1 {
			t.Fatalf("captured messages with %s: %d", unique, len(l.Messages))
		}
		var m struct {
			Subject string `json:"subject"`
			Headers []struct {
				Name, Value string
			} `json:"headers"`
			Text  string `json:"text"`
			Parts []struct {
				Index       int    `json:"index"`
				Filename    string `json:"filename"`
				ContentType string `json:"content_type"`
				Size        int64  `json:"size"`
				URL         string `json:"url"`
			} `json:"parts"`
		}
		decodeJSON(t, "captured message", c.apiGet(tok, l.Messages[0].URL), http.StatusOK, &m)
		subject := ""
		for _, h := range m.Headers {
			if h.Name == "Subject" {
				subject = h.Value
			}
		}
		if subject != "Grüße "+unique || m.Subject != subject || !strings.Contains(m.Text, "body "+unique) {
			t.Errorf("captured message: subject header %q, subject %q, text %q", subject, m.Subject, m.Text)
		}
		want := map[string][]byte{"a.bin": fileA, "b.txt": fileB}
		if len(m.Parts) != len(want) {
			t.Fatalf("parts %+v, want a.bin and b.txt", m.Parts)
		}
		for _, p := range m.Parts {
			data, ok := want[p.Filename]
			if !ok || p.Size != int64(len(data)) {
				t.Errorf("part %+v", p)
				continue
			}
			if r := c.apiGet(tok, p.URL); r.status != http.StatusOK || r.body != string(data) {
				t.Errorf("part %s: %d %q", p.Filename, r.status, r.body)
			}
		}
		wantProblem(t, "part out of range", c.apiGet(tok, l.Messages[0].URL+"/parts/9"), http.StatusNotFound, "not-found", "no such attachment")
		wantProblem(t, "unknown message", c.apiGet(tok, "/api/v1/captured/999999"), http.StatusNotFound, "not-found", "no such message")
		wantProblem(t, "text body", post("text/plain", []byte("hi")), http.StatusUnsupportedMediaType, "unsupported-media-type", "multipart/form-data")
		var bad bytes.Buffer
		mw = multipart.NewWriter(&bad)
		_ = mw.WriteField("request", `{"to": "not a list"}`)
		_ = mw.Close()
		wantProblem(t, "bad request field", post(mw.FormDataContentType(), bad.Bytes()), http.StatusBadRequest, "bad-json", "not a send request")
		wantProblem(t, "bad base64", c.apiPost(tok, "/api/v1/sends", `{"to":["r@example.test"],"attachments":[{"name":"x","content":"!!"}]}`),
			http.StatusUnprocessableEntity, "invalid-send", "attachments:")
	})
}

// TestAPIOutbox, on both backends: an admin token lists the outbox with
// the /outbox page's status filter and counts, page by page through the
// next links; cancels a queued message and retries it; actions the
// message's state does not allow are 409 problems, unknown messages 404,
// a bad filter 422.
func TestAPIOutbox(t *testing.T) {
	onBothBackends(t, func(t *testing.T, backend string) {
		a := newApp(t, appOptions{backend: backend})
		ctx := context.Background()
		f := &store.Form{Name: "site", Recipients: []string{"owner@example.test"}, FromAddr: "web@example.test",
			Fields: []string{"message"}, SubjectTemplate: "Contact", Enabled: true}
		if err := a.store.SaveForm(ctx, f); err != nil {
			t.Fatal(err)
		}
		const n = 53 // more than a page (50)
		var want []int64
		for i := range n {
			it := &store.OutboxItem{MailFrom: "web@example.test", Rcpts: []string{"owner@example.test"},
				Message: fmt.Appendf(nil, "From: web@example.test\r\nSubject: queued %d\r\nMessage-ID: <q%d@example.test>\r\n\r\nhi\r\n", i, i)}
			sub := &store.Submission{FormID: f.ID, Fields: []store.FieldValue{{Name: "message", Value: "hi"}}}
			if err := a.store.EnqueueSubmission(ctx, sub, it); err != nil {
				t.Fatal(err)
			}
			want = append([]int64{it.ID}, want...)
		}
		tok, _ := addToken(t, a.store, "ops", []string{api.ScopeAdmin}, nil)
		c := a.client()
		type list struct {
			Items []struct {
				ID        int64  `json:"id"`
				Status    string `json:"status"`
				Subject   string `json:"subject"`
				FormID    int64  `json:"form_id"`
				CanCancel bool   `json:"can_cancel"`
			} `json:"items"`
			Counts map[string]int `json:"counts"`
			Next   string         `json:"next"`
		}
		walk := func(start string) (ids []int64, first list) {
			for next := start; next != ""; {
				var l list
				decodeJSON(t, next, c.apiGet(tok, next), http.StatusOK, &l)
				if first.Counts == nil {
					first = l
				}
				for _, it := range l.Items {
					ids = append(ids, it.ID)
				}
				next = l.Next
			}
			return ids, first
		}
		got, first := walk("/api/v1/outbox")
		if !slices.Equal(got, want) || first.Counts["queued"] != n || first.Items[0].FormID != f.ID || !first.Items[0].CanCancel {
			t.Fatalf("outbox %v, counts %v, first %+v; want %v", got, first.Counts, first.Items[0], want)
		}
		if got, _ := walk("/api/v1/outbox?status=queued&form=" + strconv.FormatInt(f.ID, 10)); !slices.Equal(got, want) {
			t.Errorf("queued of the form: %v", got)
		}
		id := "/api/v1/outbox/" + strconv.FormatInt(want[0], 10)
		var it struct {
			Status   string `json:"status"`
			CanRetry bool   `json:"can_retry"`
		}
		decodeJSON(t, "cancel", c.apiDo(tok, http.MethodPost, id+"/cancel", ""), http.StatusOK, &it)
		if it.Status != "cancelled" || !it.CanRetry {
			t.Errorf("after cancel: %+v", it)
		}
		if got, _ := walk("/api/v1/outbox?status=cancelled"); !slices.Equal(got, want[:1]) {
			t.Errorf("cancelled: %v, want %v", got, want[:1])
		}
		wantProblem(t, "cancel a cancelled", c.apiDo(tok, http.MethodPost, id+"/cancel", ""), http.StatusConflict, "wrong-state", "Only queued or held")
		decodeJSON(t, "retry", c.apiDo(tok, http.MethodPost, id+"/retry", ""), http.StatusOK, &it)
		if it.Status != "queued" {
			t.Errorf("after retry: %+v", it)
		}
		wantProblem(t, "retry a queued", c.apiDo(tok, http.MethodPost, id+"/retry", ""), http.StatusConflict, "wrong-state", "Only failed")
		wantProblem(t, "unknown", c.apiDo(tok, http.MethodPost, "/api/v1/outbox/999999/retry", ""), http.StatusNotFound, "not-found", "no such message")
		wantProblem(t, "bad status", c.apiGet(tok, "/api/v1/outbox?status=lost"), http.StatusUnprocessableEntity, "invalid-filter", "status:")
		wantProblem(t, "bad cursor", c.apiGet(tok, "/api/v1/outbox?before=x"), http.StatusUnprocessableEntity, "invalid-filter", "before:")
	})
}

// TestAPICheckPostfix, on both backends: a check of the test Postfix's
// submission port started through the API answers 202 with its id at
// once; its report, read until it ends, has the connect and STARTTLS
// findings with links to their conversations in the history; the list
// holds it; bad requests are problems.
func TestAPICheckPostfix(t *testing.T) {
	pf := testenv.Postfix(t)
	onBothBackends(t, func(t *testing.T, backend string) {
		a := newApp(t, appOptions{backend: backend, rootCAs: pf.RootCAs})
		tok, _ := addToken(t, a.store, "ci", []string{api.ScopeSend, api.ScopeRead}, nil)
		c := a.client()
		var started struct {
			ID  int64  `json:"id"`
			URL string `json:"url"`
		}
		r := c.apiPost(tok, "/api/v1/checks", `{"target":"`+pf.SubmissionAddr+`"}`)
		decodeJSON(t, "start", r, http.StatusAccepted, &started)
		if started.URL != "/api/v1/checks/"+strconv.FormatInt(started.ID, 10) || r.header.Get("Location") != started.URL {
			t.Fatalf("started %+v, Location %q", started, r.header.Get("Location"))
		}
		var rep struct {
			Target   string `json:"target"`
			Running  bool   `json:"running"`
			Worst    string `json:"worst"`
			Findings []struct {
				ID      string `json:"id"`
				Status  string `json:"status"`
				SendURL string `json:"send_url"`
			} `json:"findings"`
		}
		poll, _ := addToken(t, a.store, "poll", []string{api.ScopeRead}, nil)
		rep.Running = true
		testenv.WaitFor(t, "the check to end", func() (int, bool) {
			if r, ok := c.apiPoll(poll, started.URL); ok {
				decodeJSON(t, "report", r, http.StatusOK, &rep)
			}
			return len(rep.Findings), !rep.Running
		})
		status := map[string]string{}
		sendURL := ""
		for _, f := range rep.Findings {
			status[f.ID] = f.Status
			if f.ID == "tls.starttls" {
				sendURL = f.SendURL
			}
		}
		if rep.Target != pf.SubmissionAddr || rep.Worst == "" || status["smtp.connect"] != "pass" || status["tls.starttls"] != "pass" {
			t.Errorf("report: target %q, worst %q, findings %v", rep.Target, rep.Worst, status)
		}
		var snd struct {
			Source string `json:"source"`
		}
		if sendURL == "" {
			t.Fatal("the STARTTLS finding links no conversation")
		}
		decodeJSON(t, "conversation", c.apiGet(tok, sendURL), http.StatusOK, &snd)
		if snd.Source != "check" {
			t.Errorf("conversation source %q, want check", snd.Source)
		}
		var l struct {
			Checks []struct {
				ID      int64 `json:"id"`
				Running bool  `json:"running"`
			} `json:"checks"`
		}
		decodeJSON(t, "list", c.apiGet(tok, "/api/v1/checks"), http.StatusOK, &l)
		if len(l.Checks) != 1 || l.Checks[0].ID != started.ID || l.Checks[0].Running {
			t.Errorf("list: %+v", l.Checks)
		}
		wantProblem(t, "no target", c.apiPost(tok, "/api/v1/checks", `{"target":""}`), http.StatusUnprocessableEntity, "invalid-check", "target:")
		wantProblem(t, "bad port", c.apiPost(tok, "/api/v1/checks", `{"target":"example.test","port":70000}`), http.StatusUnprocessableEntity, "invalid-check", "port:")
		wantProblem(t, "unknown field", c.apiPost(tok, "/api/v1/checks", `{"target":"example.test","nope":1}`), http.StatusBadRequest, "bad-json", "unknown field")
		wantProblem(t, "form body", c.apiDo(tok, http.MethodPost, "/api/v1/checks", ""), http.StatusUnsupportedMediaType, "unsupported-media-type", "application/json")
		wantProblem(t, "unknown check", c.apiGet(tok, "/api/v1/checks/999999"), http.StatusNotFound, "not-found", "no such check")
		wantProblem(t, "bad cursor", c.apiGet(tok, "/api/v1/checks?before=0"), http.StatusUnprocessableEntity, "invalid-filter", "before:")
	})
}
