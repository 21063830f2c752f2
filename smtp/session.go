package smtp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SendOptions tunes SendMail.
type SendOptions struct {
	// StopAfter ends the conversation politely after the named phase, to
	// test a server without sending: PhaseConnect, PhaseGreeting,
	// PhaseEHLO, PhaseStartTLS, PhaseAuth, PhaseMail or PhaseRcpt. Empty
	// sends the message.
	StopAfter Phase
}

// validStops lists the phases StopAfter accepts.
func validStops() []Phase {
	return []Phase{PhaseConnect, PhaseGreeting, PhaseEHLO, PhaseStartTLS, PhaseAuth, PhaseMail, PhaseRcpt}
}

// Open dials and readies a connection for Send: greeting, EHLO, STARTTLS
// as cfg.TLS asks, and AUTH when cfg.Auth is set.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	c, err := Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.ready(ctx, ""); err != nil {
		c.quitAfterError(ctx) // QUIT if the server is still listening
		return nil, err
	}
	return c, nil
}

// ready says EHLO, starts TLS and authenticates, stopping early (with
// errStopped) after stopAfter.
func (c *Client) ready(ctx context.Context, stopAfter Phase) error {
	if err := c.Hello(ctx); err != nil {
		return err
	}
	if stopAfter == PhaseEHLO {
		return errStopped
	}
	if c.cfg.TLS == TLSStartTLS || c.cfg.TLS == TLSStartTLSOptional {
		if err := c.StartTLS(ctx); err != nil {
			return err
		}
	}
	if stopAfter == PhaseStartTLS {
		return errStopped
	}
	if err := c.Auth(ctx); err != nil {
		return err
	}
	if stopAfter == PhaseAuth {
		return errStopped
	}
	return nil
}

// SendMail sends one message: connect, greeting, EHLO, STARTTLS and AUTH
// as cfg says, the transaction, and QUIT. With cfg.Addr empty it delivers
// to the MX hosts of the recipients' domain in preference order (the
// domain's own address when it has no MX), trying the next host when one
// cannot be reached or answers 4xx before the transaction.
//
// The result and cfg.Transcript are filled as far as the conversation
// got, also when an error is returned. A send stopped by opts.StopAfter
// returns a nil error and a result whose Final reply is nil.
func SendMail(ctx context.Context, cfg Config, env Envelope, msg Message, opts SendOptions) (*Result, error) {
	if cfg.Transcript == nil {
		cfg.Transcript = NewTranscript()
	}
	tr := cfg.Transcript
	if opts.StopAfter != "" && !containsPhase(validStops(), opts.StopAfter) {
		err := localError(PhaseConnect, "cannot stop after %q", opts.StopAfter)
		tr.Info(PhaseConnect, "%s", err.Message)
		return &Result{}, err
	}
	if err := checkEnvelope(&env); err != nil {
		tr.Info(PhaseConnect, "refused before connecting: %s", err.(*Error).Message)
		return &Result{}, err
	}
	if cfg.Addr != "" {
		return sendOnce(ctx, cfg, env, msg, opts)
	}
	hosts, err := lookupMX(ctx, cfg, env.To)
	if err != nil {
		return &Result{}, err
	}
	port := cfg.MXPort
	if port == 0 {
		port = 25
	}
	var res *Result
	for i, h := range hosts {
		cfg.Addr = net.JoinHostPort(h, strconv.Itoa(port))
		res, err = sendOnce(ctx, cfg, env, msg, opts)
		if err == nil || !tryNextMX(err) || i == len(hosts)-1 {
			return res, err
		}
		tr.Info(PhaseConnect, "trying the next MX host after: %v", err)
	}
	return res, err
}

func containsPhase(list []Phase, p Phase) bool {
	for _, v := range list {
		if v == p {
			return true
		}
	}
	return false
}

// tryNextMX reports whether RFC 5321 5.1 lets the next MX host be tried:
// the host could not be reached or refused temporarily before any mail
// transaction started.
func tryNextMX(err error) bool {
	var e *Error
	if !errors.As(err, &e) || e.OutcomeUnknown {
		return false
	}
	switch e.Phase {
	case PhaseConnect, PhaseGreeting, PhaseEHLO, PhaseStartTLS:
		return e.Code == 0 || e.Temporary()
	}
	return false
}

// lookupMX returns the hosts to try for the recipients' domain.
func lookupMX(ctx context.Context, cfg Config, to []string) ([]string, error) {
	tr := cfg.Transcript
	domain := ""
	for _, addr := range to {
		d := strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
		if domain != "" && d != domain {
			err := localError(PhaseConnect, "direct MX delivery needs all recipients in one domain (got %s and %s): name a server, or send once per domain", domain, d)
			tr.Info(PhaseConnect, "%s", err.Message)
			return nil, err
		}
		domain = d
	}
	var r Resolver = net.DefaultResolver
	if cfg.Resolver != nil {
		r = cfg.Resolver
	}
	timeout := cfg.Timeouts.withDefaults().Connect
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	mxs, err := r.LookupMX(lctx, domain)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			tr.Info(PhaseConnect, "DNS MX %s: none (%s); using the domain's own address", domain, ms(time.Since(start)))
			return []string{domain}, nil
		}
		tr.Info(PhaseConnect, "DNS MX lookup of %s failed after %s: %v", domain, ms(time.Since(start)), err)
		return nil, netError(PhaseConnect, "cannot look up the MX of "+domain, err)
	}
	if len(mxs) == 0 {
		tr.Info(PhaseConnect, "DNS MX %s: none (%s); using the domain's own address", domain, ms(time.Since(start)))
		return []string{domain}, nil
	}
	// Preference order (RFC 5321 5.1). net.Resolver sorts, but a Resolver
	// need not; equal preferences keep the order given (net.Resolver
	// shuffles them).
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return cmp.Compare(a.Pref, b.Pref) })
	var shown, hosts []string
	for _, mx := range mxs {
		shown = append(shown, fmt.Sprintf("%d %s", mx.Pref, mx.Host))
		hosts = append(hosts, strings.TrimSuffix(mx.Host, "."))
	}
	tr.Info(PhaseConnect, "DNS MX %s: %s (%s)", domain, strings.Join(shown, ", "), ms(time.Since(start)))
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		err := localError(PhaseConnect, "%s accepts no mail (null MX, RFC 7505)", domain)
		return nil, err
	}
	return hosts, nil
}

// sendOnce runs a whole conversation with one server.
func sendOnce(ctx context.Context, cfg Config, env Envelope, msg Message, opts SendOptions) (*Result, error) {
	res := &Result{Server: cfg.Addr}
	c, err := dial(ctx, cfg, opts.StopAfter != PhaseConnect)
	if err != nil {
		return res, err
	}
	if opts.StopAfter == PhaseConnect {
		cfg.Transcript.Info(PhaseConnect, "stopping after connect, as asked")
		return res, c.Close()
	}
	if opts.StopAfter == PhaseGreeting {
		return res, c.politeStop(ctx, PhaseGreeting)
	}
	if err := c.ready(ctx, opts.StopAfter); err != nil {
		if errors.Is(err, errStopped) {
			return res, c.politeStop(ctx, opts.StopAfter)
		}
		c.quitAfterError(ctx)
		return res, err
	}
	mode := modeSendQuit
	switch opts.StopAfter {
	case PhaseMail:
		mode = modeStopMail
	case PhaseRcpt:
		mode = modeStopRcpt
	}
	r, err := c.transaction(ctx, env, msg, mode)
	if r != nil {
		r.Server = cfg.Addr
		res = r
	}
	if errors.Is(err, errStopped) {
		return res, c.politeStop(ctx, opts.StopAfter)
	}
	if mode == modeSendQuit && (err == nil || res.Final != nil) {
		c.Close()
		return res, err
	}
	c.quitAfterError(ctx)
	return res, err
}

// politeStop ends a probe with QUIT.
func (c *Client) politeStop(ctx context.Context, after Phase) error {
	c.tr.Info(after, "stopping after %s, as asked", after)
	if err := c.Quit(ctx); err != nil {
		c.tr.Info(PhaseQuit, "QUIT failed: %v", err)
	}
	return nil
}

// quitAfterError says QUIT when the connection is still usable, and
// closes it in any case.
func (c *Client) quitAfterError(ctx context.Context) {
	defer c.Close()
	if c.broken != nil || ctx.Err() != nil {
		return
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = c.Quit(qctx)
}
