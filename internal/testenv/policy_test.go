package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPolicyServers checks that the policy tier is as the README says: each
// Postfix policy port presents its certificate after STARTTLS (good for
// mx.policy.test, expired, for another name), and the HTTPS server serves
// good.policy.test's MTA-STS policy under a certificate the test CA
// verifies for mta-sts.good.policy.test.
func TestPolicyServers(t *testing.T) {
	p := Policy(t)
	if p == nil {
		return
	}
	tests := []struct {
		name    string
		port    int
		names   string
		expired bool
	}{
		{name: "good", port: p.GoodPort, names: "mx.policy.test,mxbadtlsa.policy.test,mx.nodnssec.test"},
		{name: "expired", port: p.ExpiredPort, names: "mx.policy.test", expired: true},
		{name: "other name", port: p.OtherNamePort, names: "mail.elsewhere.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := smtp.Dial(net.JoinHostPort("127.0.0.1", strconv.Itoa(tt.port)))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Verification is the test's own, below: the expired certificate
			// must be seen, not refused.
			if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
				t.Fatal(err)
			}
			st, _ := c.TLSConnectionState()
			leaf := st.PeerCertificates[0]
			if got := strings.Join(leaf.DNSNames, ","); got != tt.names {
				t.Errorf("certificate names %s, want %s", got, tt.names)
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: p.RootCAs, DNSName: strings.Split(tt.names, ",")[0]})
			if tt.expired != (err != nil) {
				t.Errorf("verify against the test CA: %v (expired: %v)", err, tt.expired)
			}
			if tt.expired && leaf.NotAfter.After(time.Date(2020, 12, 31, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("expired certificate valid until %s", leaf.NotAfter)
			}
			c.Quit()
		})
	}
	t.Run("MTA-STS HTTPS", func(t *testing.T) {
		host := "mta-sts.good." + p.Zone
		tr := &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: p.RootCAs, ServerName: host},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", strconv.Itoa(p.MTASTSPort)))
			},
		}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: time.Minute}).Get("https://" + host + "/.well-known/mta-sts.txt")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "mode: enforce\r\nmx: mx."+p.Zone+"\r\n") {
			t.Errorf("policy: %s %q, %v", resp.Status, body, err)
		}
	})
}
