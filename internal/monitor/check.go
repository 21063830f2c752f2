package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"sockmail/internal/check"
	"sockmail/internal/store"
	"sockmail/smtp"
)

// CheckStore records the checks check monitors run (*store.Store).
type CheckStore interface {
	CreateCheck(ctx context.Context, c *store.Check) error
	FinishCheck(ctx context.Context, id int64, finished time.Time, worst string, report []byte, sends map[int]int64) error
}

// Timeouts of a check monitor's SMTP conversations (as the check page's).
const (
	checkConnect = 30 * time.Second
	checkReply   = 60 * time.Second
	// maxReasons is how many findings a run's reason names before it
	// counts the rest.
	maxReasons = 3
)

// probeCheck runs a check (sockmail check) of the monitor's target, a
// domain or host:port, stores it as a check and judges it by its worst
// findings: failures make the run fail (down), warnings degrade it; the
// reason names them.
func probeCheck(ctx context.Context, d ProberDeps, m store.Monitor) Result {
	target, err := check.ParseTarget(m.Target)
	if err != nil {
		return Result{Err: fmt.Errorf("monitor %q: %w", m.Name, err)}
	}
	opts := store.CheckOptions{Port: m.Options.Port, ImplicitTLS: m.Options.ImplicitTLS}
	ck := &store.Check{Target: target.String(), Options: opts, Started: d.Now()}
	if err := d.Checks.CreateCheck(ctx, ck); err != nil {
		return Result{Err: fmt.Errorf("monitor %q: record check: %w", m.Name, err)}
	}
	id := ck.ID
	out := Result{CheckID: &id}
	rep, runErr := check.Run(ctx, target, check.Options{
		Resolver: d.CheckResolver, MXPort: opts.Port, ImplicitTLS: opts.ImplicitTLS, RootCAs: d.RootCAs, Now: d.Now,
		Timeouts: smtp.Timeouts{Connect: checkConnect, Greeting: checkReply, Command: checkReply},
	})
	worst, body := "error", []byte(nil)
	if runErr == nil {
		b, err := json.Marshal(rep)
		if err != nil {
			runErr = fmt.Errorf("encode the report: %w", err)
		} else {
			worst, body = string(rep.Worst()), b
		}
	}
	if runErr != nil {
		body, _ = json.Marshal(map[string]string{"error": strings.TrimPrefix(runErr.Error(), "check: ")})
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := d.Checks.FinishCheck(sctx, id, d.Now(), worst, body, nil); err != nil {
		out.Err = fmt.Errorf("monitor %q: record check outcome: %w", m.Name, err)
		return out
	}
	if runErr != nil {
		out.Err = fmt.Errorf("check %s: %w", target, runErr)
		return out
	}
	var fails, warnings []string
	for _, f := range rep.Findings() {
		text := f.Message
		if f.Host != "" {
			text = f.Host + ": " + text
		}
		switch f.Status {
		case check.Fail:
			fails = append(fails, text)
		case check.Warning:
			warnings = append(warnings, text)
		}
	}
	if len(fails) > 0 {
		out.Err = fmt.Errorf("check %s failed: %s", target, summary(fails))
		return out
	}
	if len(warnings) > 0 {
		out.Warnings = []string{fmt.Sprintf("check %s warns: %s", target, summary(warnings))}
	}
	return out
}

// summary names the first findings and counts the rest.
func summary(texts []string) string {
	if len(texts) <= maxReasons {
		return strings.Join(texts, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(texts[:maxReasons], "; "), len(texts)-maxReasons)
}
