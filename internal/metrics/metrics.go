// Package metrics exposes sockmail's state to Prometheus (issue 15):
// a collector that reads the store at scrape time, on a registry of its
// own (no global registry).
//
// Every sockmail_* metric is read from the database when scraped, so
// instances sharing a PostgreSQL database all report the same values,
// and nothing is lost when an instance restarts. The send and delivery
// counts describe what the database holds, so the history's retention
// lowers them: they are gauges of stored sends, not counters of
// everything ever sent. The latency histograms count the sends stored
// since the process started (beginning with those the database held),
// read incrementally (store.MetricsSnapshot), so they only grow. The
// go_* and process_* metrics are the scraped process's own.
package metrics

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"sockmail/internal/store"
)

// Source reads what the metrics report. *store.Store is one.
type Source interface {
	MetricsSnapshot(ctx context.Context) (*store.MetricsSnapshot, error)
}

// ScrapeTimeout bounds the store queries of one scrape.
const ScrapeTimeout = 10 * time.Second

// DeliverySource is the send source of contact-form deliveries, whose
// outcomes sockmail_delivery_attempts reports.
const DeliverySource = "contact"

// collector reads a snapshot at each scrape.
type collector struct {
	src Source
	now func() time.Time

	sends, attempts, outbox, oldest, monitors, monitorState, captured, phases, up *prometheus.Desc
}

// NewRegistry returns a registry with the store collector and the Go
// and process collectors; now is the clock of the outbox age (time.Now
// if nil).
func NewRegistry(src Source, now func() time.Time) (*prometheus.Registry, error) {
	if now == nil {
		now = time.Now
	}
	c := &collector{
		src: src, now: now,
		sends: prometheus.NewDesc("sockmail_sends", "Stored sends by status and source.", []string{"status", "source"}, nil),
		attempts: prometheus.NewDesc("sockmail_delivery_attempts", "Stored contact-form delivery attempts (the outbox's sends) by outcome.",
			[]string{"outcome"}, nil),
		outbox: prometheus.NewDesc("sockmail_outbox_items", "Outbox items by status (queued and sending are the depth).", []string{"status"}, nil),
		oldest: prometheus.NewDesc("sockmail_outbox_oldest_age_seconds", "Age of the oldest outbox item still to deliver (queued or sending); 0 when none.",
			nil, nil),
		monitors:     prometheus.NewDesc("sockmail_monitors", "Monitors by state (unknown, up, degraded, down).", []string{"state"}, nil),
		monitorState: prometheus.NewDesc("sockmail_monitor_state", "1 for each monitor's current state.", []string{"monitor", "state"}, nil),
		captured:     prometheus.NewDesc("sockmail_captured_messages", "Messages the built-in capture server holds.", nil, nil),
		phases: prometheus.NewDesc("sockmail_send_phase_seconds", "Time per phase (connect, tls, auth, final_reply, total) of the sends stored since this process started; a phase that took no time is not counted.",
			[]string{"phase"}, nil),
		up: prometheus.NewDesc("sockmail_store_up", "1 when the last scrape could read the store.", nil, nil),
	}
	reg := prometheus.NewRegistry()
	for _, col := range []prometheus.Collector{c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return reg, nil
}

// Handler serves reg in the Prometheus text (or negotiated) format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Timeout: ScrapeTimeout + 5*time.Second})
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sends, c.attempts, c.outbox, c.oldest, c.monitors, c.monitorState, c.captured, c.phases, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one snapshot of the store.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	snap, err := c.src.MetricsSnapshot(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		ch <- prometheus.NewInvalidMetric(c.sends, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	attempts := map[string]float64{}
	for _, s := range snap.Sends {
		ch <- prometheus.MustNewConstMetric(c.sends, prometheus.GaugeValue, float64(s.Count), s.A, s.B)
		if s.B == DeliverySource {
			attempts[s.A] += float64(s.Count)
		}
	}
	for outcome, n := range attempts {
		ch <- prometheus.MustNewConstMetric(c.attempts, prometheus.GaugeValue, n, outcome)
	}
	for _, o := range snap.Outbox {
		ch <- prometheus.MustNewConstMetric(c.outbox, prometheus.GaugeValue, float64(o.Count), o.A)
	}
	age := 0.0
	if !snap.OutboxOldest.IsZero() {
		age = max(0, c.now().Sub(snap.OutboxOldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
	byState := map[string]float64{}
	for _, st := range []store.MonitorState{store.MonitorUnknown, store.MonitorUp, store.MonitorDegraded, store.MonitorDown} {
		byState[string(st)] = 0
	}
	for _, m := range snap.Monitors {
		byState[m.B]++
		ch <- prometheus.MustNewConstMetric(c.monitorState, prometheus.GaugeValue, 1, m.A, m.B)
	}
	for st, n := range byState {
		ch <- prometheus.MustNewConstMetric(c.monitors, prometheus.GaugeValue, n, st)
	}
	ch <- prometheus.MustNewConstMetric(c.captured, prometheus.GaugeValue, float64(snap.Captured))
	bounds := store.MetricsBounds()
	for _, h := range snap.Phases {
		buckets := make(map[float64]uint64, len(bounds))
		for i, b := range bounds {
			buckets[b] = h.Buckets[i]
		}
		ch <- prometheus.MustNewConstHistogram(c.phases, h.Count, h.Sum.Seconds(), buckets, string(h.Phase))
	}
}
