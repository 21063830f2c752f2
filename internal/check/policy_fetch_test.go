package check

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sockmail/internal/check/resolve"
	"sockmail/internal/testenv"
)

// TestFetchSTS fetches MTA-STS policies from HTTPS servers on loopback,
// found through the real test DNS (mta-sts.good.policy.test is 127.0.0.1)
// and serving the test CA's certificate for that name (or, to be refused,
// another one): the fetch takes only a 200 text/plain answer of at most
// 64 KiB, follows no redirect and verifies the certificate for the name.
func TestFetchSTS(t *testing.T) {
	p := testenv.Policy(t)
	if p == nil {
		return
	}
	cert, err := tls.LoadX509KeyPair(p.MTASTSCertFile, p.MTASTSKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	const policy = "version: STSv1\r\nmode: enforce\r\nmx: mx.policy.test\r\nmax_age: 604800\r\n"
	text := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/.well-known/mta-sts.txt" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte(body))
		}
	}
	host := "mta-sts.good." + p.Zone
	tests := []struct {
		name    string
		handler http.HandlerFunc
		ownCert bool // the server's own certificate (for example.com) instead of the test CA's
		host    string
		want    string
		wantErr string
	}{
		{name: "policy", handler: text(policy), want: policy},
		{name: "exactly 64 KiB", handler: text(strings.Repeat("x", maxSTSPolicy)), want: strings.Repeat("x", maxSTSPolicy)},
		{name: "over 64 KiB", handler: text(strings.Repeat("x", maxSTSPolicy+1)), wantErr: "larger than 64 KiB"},
		{name: "redirect", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.test/.well-known/mta-sts.txt", http.StatusMovedPermanently)
		}, wantErr: "redirecting to https://elsewhere.test/.well-known/mta-sts.txt; RFC 8461 3.3 forbids"},
		{name: "not found", handler: http.NotFound, wantErr: "answered 404 Not Found"},
		{name: "HTML", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(policy))
		}, wantErr: "Content-Type is \"text/html\""},
		{name: "certificate for another name", handler: text(policy), ownCert: true, wantErr: "certificate is valid for example.com"},
		{name: "no address", handler: text(policy), host: "mta-sts.nowhere." + p.Zone, wantErr: "has no A or AAAA record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(tt.handler)
			// The refused certificate makes the server log the aborted handshake.
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			if !tt.ownCert {
				srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
			}
			srv.StartTLS()
			defer srv.Close()
			res, err := resolve.New(p.DNS.Resolver, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			roots := p.RootCAs
			if tt.ownCert {
				// Trusted, so that only the name is wrong.
				roots = p.RootCAs.Clone()
				roots.AddCert(srv.Certificate())
			}
			c := &checker{opts: Options{RootCAs: roots, MTASTSPort: portOf(t, srv.Listener.Addr().String())},
				rep: &Report{}, res: res, now: time.Now}
			h := host
			if tt.host != "" {
				h = tt.host
			}
			got, err := c.fetchSTS(context.Background(), h)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("fetchSTS = %d bytes, %v; want an error containing %q", len(got), err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("fetchSTS = %q, %v; want %q", clip(got, 80), err, clip(tt.want, 80))
			}
		})
	}
}
