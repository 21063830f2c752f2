package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// The OpenAPI check of every API test: client.do passes each exchange
// under /api/v1 to checkAPIExchange, which validates the request and the
// response against the document the app SERVES (GET
// /api/v1/openapi.json), with kin-openapi. A response whose status,
// content type, headers or body the document does not describe fails
// the test; so does a request the document calls invalid that the API
// accepted (a 2xx answer).

// servedDoc is a client's copy of the served document and its router,
// loaded once.
type servedDoc struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
}

// servedOpenAPI fetches and loads the app's served OpenAPI document,
// with its server set to the test server's address so that the router
// matches the test's URLs.
func servedOpenAPI(t *testing.T, c *client) (*openapi3.T, routers.Router) {
	t.Helper()
	resp, err := c.hc.Get(c.a.srv.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatalf("openapi: fetch the served document: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("openapi: served document: %d, %v", resp.StatusCode, err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatalf("openapi: load the served document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi: the served document is not valid: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: c.a.srv.URL + "/api/v1"}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("openapi: router: %v", err)
	}
	return doc, router
}

// checkAPIExchange validates one API exchange (req as sent, with reqBody
// its body, and the response read) against the served document and
// fails the test on every mismatch.
func checkAPIExchange(t *testing.T, c *client, req *http.Request, reqBody []byte, r *response) {
	t.Helper()
	c.openapi.once.Do(func() { c.openapi.doc, c.openapi.router = servedOpenAPI(t, c) })
	doc, router := c.openapi.doc, c.openapi.router
	if doc == nil {
		t.Fatal("openapi: the served document could not be loaded (see the first failure)")
	}
	for _, p := range exchangeMismatches(doc, router, c.a.srv.URL, req, reqBody, r) {
		t.Errorf("openapi: %s %s: %s", req.Method, req.URL.RequestURI(), p)
	}
}

// exchangeMismatches lists how an exchange departs from the document:
// a path or method it lacks answered with anything but a 404/405
// problem, a request it calls invalid answered below 400, a response
// status, content type, header or body it does not describe.
func exchangeMismatches(doc *openapi3.T, router routers.Router, base string, req *http.Request, reqBody []byte, r *response) []string {
	vreq := req.Clone(context.Background())
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	vreq.URL = &url.URL{Scheme: "http", Host: strings.TrimPrefix(base, "http://"), Path: req.URL.Path, RawQuery: req.URL.RawQuery}
	route, params, err := router.FindRoute(vreq)
	if err != nil {
		var out []string
		if r.status != http.StatusNotFound && r.status != http.StatusMethodNotAllowed {
			out = append(out, fmt.Sprintf("not in the document (%v), yet answered %d: %.300s", err, r.status, r.body))
		}
		return append(out, problemMismatches(doc, r)...)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	var out []string
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && r.status < 400 {
		out = append(out, fmt.Sprintf("the document calls the request invalid, yet the API answered %d:\n%v", r.status, err))
	}
	resp := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: r.status, Header: r.header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	resp.SetBodyBytes([]byte(r.body))
	if err := openapi3filter.ValidateResponse(context.Background(), resp); err != nil {
		out = append(out, fmt.Sprintf("the response (%d %s) does not match the document:\n%v\nbody: %.500s",
			r.status, r.header.Get("Content-Type"), err, r.body))
	}
	return out
}

// problemMismatches checks r against the document's Problem schema (for
// answers to paths the document does not have).
func problemMismatches(doc *openapi3.T, r *response) []string {
	ref := doc.Components.Schemas["Problem"]
	if ref == nil || ref.Value == nil {
		return []string{"the document has no Problem schema"}
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		return []string{fmt.Sprintf("Content-Type %q, want application/problem+json", ct)}
	}
	var v any
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		return []string{fmt.Sprintf("problem is not JSON: %v", err)}
	}
	if err := ref.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return []string{fmt.Sprintf("problem does not match the Problem schema: %v", err)}
	}
	return nil
}

// TestOpenAPICheckCatchesDrift: the check every API test runs fails
// answers that drift from the served document (a missing required
// field, a wrong type, an undocumented status or content type, a 200
// to a path the document lacks, an invalid request accepted) and passes
// the ones that match.
func TestOpenAPICheckCatchesDrift(t *testing.T) {
	a := newApp(t, appOptions{})
	doc, router := servedOpenAPI(t, a.client())
	jsonH := http.Header{"Content-Type": {"application/json"}}
	problemH := http.Header{"Content-Type": {"application/problem+json"}}
	okList := `{"sends":[],"total":0,"total_capped":false}`
	problem := `{"type":"https://sockmail.invalid/problems/forbidden","title":"Forbidden","status":403}`
	tests := []struct {
		name, method, path, reqBody string
		r                           response
		wantFail                    bool
	}{
		{"list matches", "GET", "/api/v1/sends", "", response{200, jsonH, okList}, false},
		{"list lacks total", "GET", "/api/v1/sends", "", response{200, jsonH, `{"sends":[],"total_capped":false}`}, true},
		{"list total a string", "GET", "/api/v1/sends", "", response{200, jsonH, `{"sends":[],"total":"0","total_capped":false}`}, true},
		{"undocumented status", "GET", "/api/v1/sends", "", response{418, problemH, problem}, true},
		{"wrong content type", "GET", "/api/v1/sends", "", response{200, http.Header{"Content-Type": {"text/html"}}, okList}, true},
		{"problem matches", "GET", "/api/v1/sends", "", response{403, problemH, problem}, false},
		{"problem without status", "GET", "/api/v1/sends", "", response{403, problemH, `{"type":"x","title":"y"}`}, true},
		{"unknown path 404", "GET", "/api/v1/nope", "", response{404, problemH, problem}, false},
		{"unknown path 200", "GET", "/api/v1/nope", "", response{200, jsonH, `{}`}, true},
		{"invalid filter accepted", "GET", "/api/v1/sends?status=lost", "", response{200, jsonH, okList}, true},
		{"invalid filter refused", "GET", "/api/v1/sends?status=lost", "", response{422, problemH, problem}, false},
		{"unknown send field accepted", "POST", "/api/v1/sends", `{"nope":1}`,
			response{202, jsonH, `{"id":1,"url":"u","events":"e","transcript":"t","page":"p"}`}, true},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, a.srv.URL+tc.path, strings.NewReader(tc.reqBody))
		req.Header.Set("Authorization", "Bearer x")
		if tc.reqBody != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		got := exchangeMismatches(doc, router, a.srv.URL, req, []byte(tc.reqBody), &tc.r)
		if (len(got) > 0) != tc.wantFail {
			t.Errorf("%s: mismatches %q, want failure %v", tc.name, got, tc.wantFail)
		}
	}
}
