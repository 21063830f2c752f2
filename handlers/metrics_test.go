package handlers_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"sockmail/internal/api"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// scrape GETs /metrics with token ("" for none) and returns the status
// and, on 200, the parsed families.
func scrape(t *testing.T, a *app, token string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.srv.URL+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return resp.StatusCode, fams
}

// metricValue finds the gauge (or the histogram's count) of name with
// exactly the labels given; ok is false when there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestMetrics: /metrics refuses a request without a token (401) or with
// a token of another scope (403) and serves tokens with the metrics or
// admin scope; after a real send to the capture server, one refused at
// connect and a monitor created, the parsed exposition counts them by
// status and source, has the phase histograms (count and a bucket
// holding the sent message's total time), the captured message, the
// monitor's state and an empty outbox. On both backends.
func TestMetrics(t *testing.T) {
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		t.Run(backend, func(t *testing.T) {
			a := newApp(t, appOptions{backend: backend})
			c := a.client()
			c.signUp()
			form := composeForm(c.csrf("/compose"))
			form.Set("to", testenv.UniqueAddress())
			sentID := sendID(t, c.waitDone(c.send(form)))
			host, port, _ := net.SplitHostPort(testenv.ClosedPort(t))
			form = composeForm(c.csrf("/compose"))
			form.Set("server", "adhoc")
			form.Set("host", host)
			form.Set("port", port)
			form.Set("tls", "none")
			failedID := sendID(t, c.waitDone(c.send(form)))
			ctx := context.Background()
			if err := a.store.CreateMonitor(ctx, &store.Monitor{Name: "watched", Kind: store.MonitorQuitAfter, Target: "127.0.0.1", Rcpt: "a@example.test", Interval: 5}); err != nil {
				t.Fatal(err)
			}
			sent, err := a.store.Send(ctx, sentID)
			if err != nil {
				t.Fatal(err)
			}
			failed, err := a.store.Send(ctx, failedID)
			if err != nil {
				t.Fatal(err)
			}
			if sent.Status != smtp.StatusSent || failed.Status == smtp.StatusSent || sent.Timings == nil {
				t.Fatalf("sends %q and %q (timings %v)", sent.Status, failed.Status, sent.Timings)
			}

			readTok, _ := addToken(t, a.store, "read", []string{api.ScopeRead}, nil)
			metricsTok, _ := addToken(t, a.store, "prometheus", []string{api.ScopeMetrics}, nil)
			adminTok, _ := addToken(t, a.store, "admin", []string{api.ScopeAdmin}, nil)
			for _, tt := range []struct {
				name, token string
				want        int
			}{{"no token", "", 401}, {"read scope", readTok, 403}, {"admin scope", adminTok, 200}} {
				if got, _ := scrape(t, a, tt.token); got != tt.want {
					t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
				}
			}
			status, fams := scrape(t, a, metricsTok)
			if status != http.StatusOK {
				t.Fatalf("metrics scope: %d", status)
			}
			for _, tt := range []struct {
				name   string
				labels map[string]string
				want   float64
			}{
				{"sockmail_sends", map[string]string{"status": string(smtp.StatusSent), "source": "web"}, 1},
				{"sockmail_sends", map[string]string{"status": string(failed.Status), "source": "web"}, 1},
				{"sockmail_send_phase_seconds", map[string]string{"phase": "total"}, 2},
				{"sockmail_captured_messages", nil, 1},
				{"sockmail_monitors", map[string]string{"state": "unknown"}, 1},
				{"sockmail_monitors", map[string]string{"state": "down"}, 0},
				{"sockmail_monitor_state", map[string]string{"monitor": "watched", "state": "unknown"}, 1},
				{"sockmail_outbox_oldest_age_seconds", nil, 0},
				{"sockmail_store_up", nil, 1},
			} {
				got, ok := metricValue(fams, tt.name, tt.labels)
				if !ok || got != tt.want {
					t.Errorf("%s%v = %v (found %v), want %v", tt.name, tt.labels, got, ok, tt.want)
				}
			}
			// The sent message's total time lies in the first bucket whose
			// bound is at or above it, and every later one.
			total := sent.Timings.Total.Seconds() + failed.Timings.Total.Seconds()
			var h *dto.Histogram
			for _, m := range fams["sockmail_send_phase_seconds"].GetMetric() {
				if m.GetLabel()[0].GetValue() == "total" {
					h = m.GetHistogram()
				}
			}
			if h == nil || h.GetSampleSum() < total*0.999 || h.GetSampleSum() > total*1.001 {
				t.Errorf("total histogram %v, want a sum of %v s", h, total)
			}
			for _, b := range h.GetBucket() {
				in := 0
				for _, d := range []float64{sent.Timings.Total.Seconds(), failed.Timings.Total.Seconds()} {
					if d <= b.GetUpperBound() {
						in++
					}
				}
				if b.GetCumulativeCount() != uint64(in) {
					t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), in)
				}
			}
			if fams["go_goroutines"] == nil || !strings.HasPrefix(fams["sockmail_sends"].GetHelp(), "Stored sends") {
				t.Error("no Go collector or no help text")
			}
		})
	}
}
