package smtp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
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
// cannot be reached or answers 4xx before the transaction; recipients in
// several domains get one conversation per domain (sendToDomains).
//
// Recipients a server puts off with 452 (too many recipients) get the
// message in a further transaction (sendInRounds); as with several
// domains, a Message that is not an io.Seeker must then write the same
// bytes again.
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
		return sendInRounds(ctx, cfg, env, msg, opts)
	}
	if groups := byDomain(env.To); len(groups) > 1 {
		return sendToDomains(ctx, cfg, env, msg, opts, groups)
	}
	return sendToMX(ctx, cfg, env, msg, opts)
}

// sendToMX delivers to the MX hosts of the recipients' one domain in
// preference order.
func sendToMX(ctx context.Context, cfg Config, env Envelope, msg Message, opts SendOptions) (*Result, error) {
	tr := cfg.Transcript
	hosts, err := lookupMX(ctx, cfg, domainOf(env.To[0]))
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
		res, err = sendInRounds(ctx, cfg, env, msg, opts)
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

// domainOf returns the domain of an address, in lower case.
func domainOf(addr string) string {
	return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
}

// domainGroup is the recipients of one domain.
type domainGroup struct {
	domain string
	rcpts  []string
}

// byDomain groups recipients by domain, in the order the domains first
// appear.
func byDomain(to []string) []domainGroup {
	var groups []domainGroup
	index := map[string]int{}
	for _, addr := range to {
		d := domainOf(addr)
		i, ok := index[d]
		if !ok {
			i = len(groups)
			index[d] = i
			groups = append(groups, domainGroup{domain: d})
		}
		groups[i].rcpts = append(groups[i].rcpts, addr)
	}
	return groups
}

// sendToDomains delivers to recipients in several domains without a named
// server: to each domain's MX hosts in turn, one conversation each (RFC
// 5321 5.1 chooses hosts per domain), all in the one transcript. The
// results are merged: every recipient in the order given, a recipient of
// a domain whose delivery failed refused with that failure, the servers
// tried and the queue ids of all domains joined with ", ". When some
// domain took the message the error is nil and the status partial; when
// none did, the error is the first failure; an unknown outcome anywhere
// is the error, since that message may have been delivered. A Message that is
// an io.Seeker is rewound for each domain after the first; any other
// must write the same bytes each time (smtp/message's do).
func sendToDomains(ctx context.Context, cfg Config, env Envelope, msg Message, opts SendOptions, groups []domainGroup) (*Result, error) {
	tr := cfg.Transcript
	merged := &Result{}
	answers := map[string]RecipientResult{}
	var servers, queueIDs []string
	var firstErr, unknownErr error
	took := 0
	for i, g := range groups {
		tr.Info(PhaseConnect, "domain %d of %d: %s, for %s", i+1, len(groups), g.domain, strings.Join(g.rcpts, ", "))
		var res *Result
		var err error
		if s, ok := msg.(io.Seeker); ok && i > 0 {
			if _, serr := s.Seek(0, io.SeekStart); serr != nil {
				err = localError(PhaseConnect, "cannot read the message again for %s: %v", g.domain, serr)
				tr.Info(PhaseConnect, "%s", err.(*Error).Message)
			}
		}
		if err == nil {
			e := env
			e.To = g.rcpts
			res, err = sendToMX(ctx, cfg, e, msg, opts)
		}
		if res != nil {
			if res.Server != "" {
				servers = append(servers, res.Server)
			}
			if res.QueueID != "" {
				queueIDs = append(queueIDs, res.QueueID)
			}
			if res.Final != nil {
				merged.Final = res.Final
			}
			for _, rc := range res.Recipients {
				answers[strings.ToLower(rc.Address)] = rc
			}
		}
		if err == nil {
			took++
			continue
		}
		var se *Error
		failed := RecipientResult{Message: err.Error()}
		if errors.As(err, &se) {
			failed.Code, failed.EnhancedCode = se.Code, se.EnhancedCode
			if se.OutcomeUnknown && unknownErr == nil {
				unknownErr = err
			}
		}
		if firstErr == nil {
			firstErr = err
		}
		for _, a := range g.rcpts {
			f := failed
			f.Address = a
			answers[strings.ToLower(a)] = f
		}
		tr.Info(PhaseQuit, "domain %s: not delivered: %v", g.domain, err)
		if ctx.Err() != nil {
			break
		}
	}
	seen := map[string]bool{}
	for _, a := range env.To {
		k := strings.ToLower(a)
		if seen[k] {
			continue
		}
		seen[k] = true
		rc, ok := answers[k]
		if !ok {
			rc = RecipientResult{Address: a, Message: "not tried: " + fmt.Sprint(ctx.Err())}
		}
		merged.Recipients = append(merged.Recipients, rc)
	}
	merged.Server, merged.QueueID = strings.Join(servers, ", "), strings.Join(queueIDs, ", ")
	switch {
	case unknownErr != nil:
		return merged, unknownErr
	case took == 0:
		return merged, firstErr
	}
	return merged, nil
}

// lookupMX returns the hosts to try for domain.
func lookupMX(ctx context.Context, cfg Config, domain string) ([]string, error) {
	tr := cfg.Transcript
	var r Resolver = net.DefaultResolver
	if cfg.Resolver != nil {
		r = cfg.Resolver
	}
	timeout := cfg.Timeouts.withDefaults().Connect
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	mxs, err := r.LookupMX(lctx, domain)
	took := time.Since(start)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			tr.spanEnd(SpanDNS, took, PhaseConnect, "DNS MX %s: none (%s); using the domain's own address", domain, ms(took))
			return []string{domain}, nil
		}
		tr.spanEnd(SpanDNS, took, PhaseConnect, "DNS MX lookup of %s failed after %s: %v", domain, ms(took), err)
		return nil, netError(PhaseConnect, "cannot look up the MX of "+domain, err)
	}
	if len(mxs) == 0 {
		tr.spanEnd(SpanDNS, took, PhaseConnect, "DNS MX %s: none (%s); using the domain's own address", domain, ms(took))
		return []string{domain}, nil
	}
	// Preference order (RFC 5321 5.1). net.Resolver sorts, but a Resolver
	// need not; equal preferences keep the order given (net.Resolver
	// shuffles them).
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return cmp.Compare(a.Pref, b.Pref) })
	var shown, hosts []string
	for _, mx := range mxs {
		shown = append(shown, fmt.Sprintf("%d %s", mx.Pref, mx.Host))
		// A null MX (".") is not a host: alone it means the domain
		// accepts no mail (RFC 7505 3); among others, where RFC 7505
		// forbids it, it is skipped.
		if h := strings.TrimSuffix(mx.Host, "."); h != "" {
			hosts = append(hosts, h)
		}
	}
	tr.spanEnd(SpanDNS, took, PhaseConnect, "DNS MX %s: %s (%s)", domain, strings.Join(shown, ", "), ms(took))
	if len(hosts) == 0 {
		// RFC 7505 4.1: no delivery, no fallback to the domain's address,
		// and the enhanced status code 5.1.10.
		err := localError(PhaseConnect, "%s accepts no mail (null MX, RFC 7505)", domain)
		err.EnhancedCode = "5.1.10"
		tr.Info(PhaseConnect, "%s", err.Message)
		return nil, err
	}
	return hosts, nil
}

// sendInRounds is sendOnce, followed by more transactions while the
// server puts recipients off with 452 "too many recipients" (or the 552
// taken as one) and takes some each time: RFC 5321 4.5.3.1.8 asks a
// client to be ready to send a message with many recipients in several
// transactions. Each goes on a new connection. The result merges the
// rounds: each recipient's last answer, the queue ids joined with ", ",
// the last final reply. A later round that fails leaves the message sent
// to those taken so far (the error is nil, the status partial), unless
// its outcome is unknown. A Message that is an io.Seeker is rewound for
// each round; any other must write the same bytes each time.
func sendInRounds(ctx context.Context, cfg Config, env Envelope, msg Message, opts SendOptions) (*Result, error) {
	res, err := sendOnce(ctx, cfg, env, msg, opts)
	if err != nil || opts.StopAfter != "" {
		return res, err
	}
	tr := cfg.Transcript
	index := map[string]int{}
	for i, rc := range res.Recipients {
		index[strings.ToLower(rc.Address)] = i
	}
	var queueIDs []string
	if res.QueueID != "" {
		queueIDs = append(queueIDs, res.QueueID)
	}
	later := putOff(res.Recipients)
	for len(later) > 0 && ctx.Err() == nil {
		tr.Info(PhaseRcpt, "%d recipient(s) put off with 452 (too many recipients): sending to them in a new transaction (RFC 5321 4.5.3.1.8)", len(later))
		if s, ok := msg.(io.Seeker); ok {
			if _, serr := s.Seek(0, io.SeekStart); serr != nil {
				tr.Info(PhaseConnect, "cannot read the message again: %v", serr)
				break
			}
		}
		e := env
		e.To = later
		r, rerr := sendOnce(ctx, cfg, e, msg, opts)
		if r != nil {
			for _, rc := range r.Recipients {
				if i, ok := index[strings.ToLower(rc.Address)]; ok {
					res.Recipients[i] = rc
				}
			}
			if r.QueueID != "" {
				queueIDs = append(queueIDs, r.QueueID)
			}
			if r.Final != nil {
				res.Final = r.Final
			}
		}
		if rerr != nil {
			var se *Error
			if errors.As(rerr, &se) && se.OutcomeUnknown {
				res.QueueID = strings.Join(queueIDs, ", ")
				return res, rerr
			}
			tr.Info(PhaseRcpt, "the recipients put off were not sent to: %v", rerr)
			break
		}
		later = putOff(r.Recipients)
	}
	res.QueueID = strings.Join(queueIDs, ", ")
	return res, nil
}

// putOff returns the recipients refused with 452, to try in a new
// transaction, when some other recipient was accepted (so that each
// round makes progress). A 452 whose enhanced code says something other
// than too many recipients (4.5.3), a full mailbox (4.2.2) say, is not
// put off: it is that recipient's answer.
func putOff(rcpts []RecipientResult) []string {
	var later []string
	accepted := false
	for _, rc := range rcpts {
		accepted = accepted || rc.Accepted
		if rc.Code == 452 && (rc.EnhancedCode == "" || rc.EnhancedCode == "4.5.3") {
			later = append(later, rc.Address)
		}
	}
	if !accepted {
		return nil
	}
	return later
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
