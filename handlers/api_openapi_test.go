package handlers_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIMatchesRoutes: the document served at /api/v1/openapi.json
// is JSON of OpenAPI 3.1.0 and names exactly the routes echo has under
// /api/v1, method by method; every operation but the document itself
// needs the bearer token and answers its errors as problem details.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	a := newApp(t, appOptions{})
	r := a.client().apiGet("", "/api/v1/openapi.json")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET openapi.json: %d %q", r.status, r.header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI  string                                `json:"openapi"`
		Servers  []struct{ URL string }                `json:"servers"`
		Security []map[string][]string                 `json:"security"`
		Paths    map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(r.body), &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if doc.OpenAPI != "3.1.0" || len(doc.Servers) != 1 || doc.Servers[0].URL != "/api/v1" || len(doc.Security) != 1 {
		t.Fatalf("openapi %q, servers %v, security %v; want 3.1.0 at /api/v1 with bearer security", doc.OpenAPI, doc.Servers, doc.Security)
	}
	param := regexp.MustCompile(`:([a-z]+)`)
	var routes []string
	for _, rt := range a.h.Routes().Routes() {
		p, ok := strings.CutPrefix(rt.Path, "/api/v1")
		if !ok || rt.Method == "echo_route_not_found" {
			continue
		}
		routes = append(routes, strings.ToLower(rt.Method)+" "+param.ReplaceAllString(p, "{$1}"))
	}
	var documented []string
	for p, ops := range doc.Paths {
		for m, op := range ops {
			documented = append(documented, m+" "+p)
			if p != "/openapi.json" && !strings.Contains(string(op), `"401"`) {
				t.Errorf("%s %s: no 401 problem response documented", m, p)
			}
		}
	}
	slices.Sort(routes)
	slices.Sort(documented)
	routes = slices.Compact(routes)
	if len(routes) < 6 || !slices.Equal(routes, documented) {
		t.Errorf("routes under /api/v1 and the OpenAPI document differ:\nroutes:   %v\ndocument: %v", routes, documented)
	}
}
