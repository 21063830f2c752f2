package monitor

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"sockmail/internal/safetext"
	"strconv"
	"sync"
	"time"

	"sockmail/internal/delivery"
	"sockmail/internal/store"
	"sockmail/smtp"
)

// SourceMonitor is the source of the sends monitors make (store.Send.Source).
const SourceMonitor = "monitor"

// DefaultProbeTimeout bounds one run when ProberDeps.Timeout is 0.
const DefaultProbeTimeout = 2 * time.Minute

// DefaultMonitorSender is the envelope sender of a full send when the
// monitor names none.
const DefaultMonitorSender = "sockmail-monitor@localhost"

// ErrKindUnsupported is the failure of a run of a kind this version does
// not know, or of a check when ProberDeps.Checks is not set.
var ErrKindUnsupported = errors.New("monitor: this kind of monitor cannot run yet")

// ProberDeps is what NewProber needs.
type ProberDeps struct {
	// Resolve turns a target into a configuration (delivery.Service.Resolve).
	Resolve func(ctx context.Context, t delivery.Target) (smtp.Config, error)
	// Sends records each run as a send (*store.Store).
	Sends delivery.Store
	// Send runs the SMTP conversation; smtp.SendMail if nil.
	Send delivery.SendFunc
	// Now returns the time; time.Now if nil.
	Now func() time.Time
	// Timeout bounds one run (DefaultProbeTimeout if 0).
	Timeout time.Duration
	// Captured, if set, confirms the arrival of full sends to the
	// built-in capture server: the run looks for its token there, then
	// deletes the message (*store.Store).
	Captured CapturedFinder
	// ArrivalWait bounds the look for the message (DefaultArrivalWait
	// if 0); ArrivalPoll is the pause between looks (a second if 0).
	ArrivalWait, ArrivalPoll time.Duration
	// After waits like time.After (its default); tests inject a clock.
	After func(time.Duration) <-chan time.Time
	// Opener opens the sealed IMAP passwords of monitors that confirm
	// arrival over IMAP (*crypt.Box).
	Opener delivery.Opener
	// RootCAs verifies IMAP servers and the servers checks talk to; the
	// system's roots if nil.
	RootCAs *x509.CertPool
	// Checks, if set, lets check monitors run: each run is stored there
	// as a check (*store.Store).
	Checks CheckStore
	// CheckResolver is the DNS resolver (host:port) of check monitors;
	// empty: the system's.
	CheckResolver string
}

// CapturedFinder finds and deletes captured mail (*store.Store).
type CapturedFinder interface {
	SearchCaptured(ctx context.Context, f store.CapturedFilter) (store.CapturedPage, error)
	DeleteCaptured(ctx context.Context, id int64) error
}

// DefaultArrivalWait is how long a full send's message is looked for in
// the capture server.
const DefaultArrivalWait = time.Minute

// NewProber returns the ProbeFunc that runs monitors for real: a
// quit-after test talks to the monitor's server up to RCPT TO and quits;
// a full send sends a short message carrying a unique token through the
// monitor's profile (the built-in capture server when none). Each run is
// kept as a send (source "monitor") with its transcript; the certificate
// the server shows (if any) is noted for Evaluate.
func NewProber(d ProberDeps) ProbeFunc {
	if d.Send == nil {
		d.Send = smtp.SendMail
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Timeout <= 0 {
		d.Timeout = DefaultProbeTimeout
	}
	if d.ArrivalWait <= 0 {
		d.ArrivalWait = DefaultArrivalWait
	}
	if d.ArrivalPoll <= 0 {
		d.ArrivalPoll = time.Second
	}
	if d.After == nil {
		d.After = time.After
	}
	return func(ctx context.Context, m store.Monitor) Result {
		start := d.Now()
		res := probe(ctx, d, m)
		res.Started = start
		res.Finished = d.Now()
		return res
	}
}

func probe(ctx context.Context, d ProberDeps, m store.Monitor) Result {
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	var target delivery.Target
	var opts smtp.SendOptions
	var msg []byte
	var token string
	from := m.Options.MailFrom
	switch m.Kind {
	case store.MonitorQuitAfter:
		port := m.Options.Port
		if port == 0 {
			port = 25
		}
		tlsMode := "starttls-optional"
		if m.Options.ImplicitTLS {
			tlsMode = "implicit"
		}
		target = delivery.Target{Kind: delivery.KindServer, Host: m.Target, Port: strconv.Itoa(port), TLS: tlsMode, Verify: true}
		opts.StopAfter = smtp.PhaseRcpt
	case store.MonitorSend:
		target = delivery.Target{Kind: delivery.KindProfile, ProfileID: m.Profile}
		if m.Profile == 0 {
			target = delivery.Target{Kind: delivery.KindCapture, TLS: "starttls", Verify: true}
		}
		if from == "" {
			from = DefaultMonitorSender
		}
		var err error
		token, err = newToken()
		if err != nil {
			return Result{Err: err}
		}
		msg = message(m, from, token, d.Now())
	case store.MonitorCheck:
		if d.Checks == nil {
			return Result{Err: fmt.Errorf("%w: %s", ErrKindUnsupported, m.Kind)}
		}
		return probeCheck(ctx, d, m)
	default:
		return Result{Err: fmt.Errorf("%w: %s", ErrKindUnsupported, m.Kind)}
	}
	cfg, err := d.Resolve(ctx, target)
	if err != nil {
		return Result{Err: fmt.Errorf("monitor %q: %w", m.Name, err)}
	}
	// The leaf certificate's expiry, noted during the handshake.
	var mu sync.Mutex
	var expiry time.Time
	if cfg.TLSConfig == nil {
		cfg.TLSConfig = &tls.Config{}
	}
	cfg.TLSConfig.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 {
			mu.Lock()
			expiry = cs.PeerCertificates[0].NotAfter
			mu.Unlock()
		}
		return nil
	}
	env := smtp.Envelope{From: from, To: []string{m.Rcpt}}
	snd := delivery.NewSend(d.Now(), delivery.Record{Source: SourceMonitor, ClientAddr: "monitor " + m.Name,
		Server: cfg.Addr, TLS: cfg.TLS, From: from, To: env.To, Message: msg})
	if err := d.Sends.CreateSend(ctx, snd); err != nil {
		return Result{Err: fmt.Errorf("monitor %q: record send: %w", m.Name, err)}
	}
	start := d.Now()
	sres, sendErr := d.Send(ctx, cfg, env, bytes.NewReader(msg), opts)
	delivery.Finish(snd, sres, sendErr, cfg.Transcript, start, d.Now)
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer scancel()
	id := snd.ID
	out := Result{SendID: &id}
	if err := d.Sends.FinishSend(sctx, snd); err != nil {
		out.Err = fmt.Errorf("monitor %q: record outcome: %w", m.Name, err)
		return out
	}
	mu.Lock()
	out.CertExpiry = expiry
	mu.Unlock()
	switch {
	case sendErr != nil:
		out.Err = sendErr
	case sres == nil:
		out.Err = errors.New("the server's answer is unknown")
	default:
		for _, r := range sres.Recipients {
			if !r.Accepted {
				out.Err = fmt.Errorf("recipient %s refused: %d %s", r.Address, r.Code, r.Message)
				break
			}
		}
		if out.Err == nil && len(sres.Recipients) == 0 {
			out.Err = errors.New("no recipient was accepted")
		}
	}
	if out.Err != nil || token == "" {
		return out
	}
	var found time.Time
	switch {
	case m.Options.IMAP != nil:
		found, out.Err = confirmIMAP(ctx, d, m.Options.IMAP, token)
	case m.Profile == 0 && d.Captured != nil:
		found, out.Err = confirmArrival(ctx, d, token)
	}
	if !found.IsZero() {
		arrival := max(found.Sub(start), 0)
		out.Arrival = &arrival
	}
	return out
}

// confirmArrival looks for the message carrying token in the capture
// server until it is there or ArrivalWait has passed, then deletes it.
// It returns when the message was found (d.Now()).
func confirmArrival(ctx context.Context, d ProberDeps, token string) (time.Time, error) {
	deadline := d.After(d.ArrivalWait)
	for {
		page, err := d.Captured.SearchCaptured(ctx, store.CapturedFilter{Terms: []store.CapturedTerm{{Field: store.FieldSubject, Text: token}}, Limit: 1})
		if err != nil {
			return time.Time{}, fmt.Errorf("look for the message in the capture server: %w", err)
		}
		if len(page.Messages) > 0 {
			found := d.Now()
			if err := d.Captured.DeleteCaptured(ctx, page.Messages[0].ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return found, fmt.Errorf("delete the arrived message: %w", err)
			}
			return found, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("look for the message in the capture server: %w", ctx.Err())
		case <-deadline:
			return time.Time{}, fmt.Errorf("the message (token %s) did not arrive in the capture server within %v", token, d.ArrivalWait)
		case <-d.After(d.ArrivalPoll):
		}
	}
}

// newToken returns a unique token marking a monitor's message.
func newToken() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("monitor: token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// message builds the short message of a full send.
func message(m store.Monitor, from, token string, now time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: sockmail monitor %s [%s]\r\n", safetext.Line(from), safetext.Line(m.Rcpt), safetext.Line(m.Name), token)
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <monitor-%s@sockmail.invalid>\r\n%s: %s\r\n", now.Format(time.RFC1123Z), token, MonitorHeader, token)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	fmt.Fprintf(&b, "A test message sent by the sockmail monitor %s.\r\nToken: %s\r\n", safetext.Line(m.Name), token)
	return b.Bytes()
}
