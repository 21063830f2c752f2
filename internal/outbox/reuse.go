package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"sockmail/smtp"
)

// Connection reuse. A burst of queued messages (after an outage, say)
// goes to the same server; opening a connection for each costs a TCP and
// a TLS handshake, EHLO twice and AUTH every time, and servers limit
// connections per client. So a connection that ends an attempt in good
// order is kept for Deps.ReuseIdle, and the next attempt to the same
// server takes it: RSET if needed, then its own transaction, with its own
// transcript that says which attempt opened the connection. Each attempt
// still has its own lease, end-of-message mark, outcome and history
// record; only the connection is shared, one attempt at a time.
//
// A kept connection is checked before use (smtp.Client.Idle: the server
// has not closed it or said 421 meanwhile). If it fails anyway before any
// of the message was handed over (no end-of-message mark), the attempt
// goes on over a new connection at once, noted in its transcript.

// Defaults of the reuse settings in Deps.
const (
	DefaultReuseIdle     = 5 * time.Second
	DefaultReuseMessages = 50
	// DefaultConnections is how many connections the worker keeps open
	// to one server at most (Deps.Connections).
	DefaultConnections = 4
	quitTimeout        = 5 * time.Second
)

// poolKey identifies the server a connection was opened to and how.
type poolKey struct {
	profile  int64
	addr     string
	tls      smtp.TLSMode
	user     string
	insecure bool
}

func keyOf(profile int64, cfg smtp.Config) poolKey {
	k := poolKey{profile: profile, addr: cfg.Addr, tls: cfg.TLS, insecure: cfg.InsecureSkipVerify}
	if cfg.Auth != nil {
		k.user = cfg.Auth.Username
	}
	return k
}

// keptConn is a connection between attempts.
type keptConn struct {
	c      *smtp.Client
	key    poolKey
	origin int64 // the item whose attempt opened it
	msgs   int   // messages it has carried
	timer  *time.Timer
	// tls are the TLS lines of the opening transcript (version, cipher,
	// certificates, verdict), repeated in every later one.
	tls []string
	// slot is the server's connection slots; the connection holds one
	// of them until it is closed (release).
	slot     *serverSlots
	released bool
}

// serverSlots bounds the connections open to one server: a connection
// holds a token of sem from its opening to its close. freed is closed
// (and replaced) whenever a connection goes back to the pool, waking
// those waiting for one.
type serverSlots struct {
	sem   chan struct{}
	freed chan struct{}
}

// connPool holds the idle connections of a Worker.
type connPool struct {
	idle    time.Duration
	maxMsgs int
	mu      sync.Mutex
	free    map[poolKey][]*keptConn
	slots   map[poolKey]*serverSlots
	// noPipe holds the servers that refused commands written in the same
	// flight as the end of a message (Haraka's 503 "pipelined after end
	// of DATA"): new connections to them do not try again.
	noPipe map[poolKey]bool
	closed bool
	wg     sync.WaitGroup // connections being closed
}

func newConnPool(idle time.Duration, maxMsgs int) *connPool {
	return &connPool{idle: idle, maxMsgs: maxMsgs, free: map[poolKey][]*keptConn{},
		slots: map[poolKey]*serverSlots{}, noPipe: map[poolKey]bool{}}
}

// slotsOf returns key's connection slots, limit at most; a changed limit
// takes effect once no connection to the server is open.
func (p *connPool) slotsOf(key poolKey, limit int) *serverSlots {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.slots[key]
	if s == nil || (cap(s.sem) != limit && len(s.sem) == 0) {
		s = &serverSlots{sem: make(chan struct{}, limit), freed: make(chan struct{})}
		p.slots[key] = s
	}
	return s
}

// get returns an idle connection to key's server, or nil with a slot
// taken for a new one (the caller opens it, and gives the slot back with
// release if that fails); it waits while limit connections to the server
// are open and busy, until ctx ends.
func (p *connPool) get(ctx context.Context, key poolKey, limit int) (*keptConn, *serverSlots, error) {
	s := p.slotsOf(key, limit)
	for {
		p.mu.Lock()
		freed := s.freed
		p.mu.Unlock()
		if kc := p.take(key); kc != nil {
			return kc, s, nil
		}
		select {
		case s.sem <- struct{}{}:
			return nil, s, nil
		case <-freed:
		case <-ctx.Done():
			return nil, s, fmt.Errorf("outbox: waiting for a connection to %s (at most %d): %w", key.addr, limit, ctx.Err())
		}
	}
}

// release gives back the slot of a connection that is closed.
func (p *connPool) release(kc *keptConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if kc.slot != nil && !kc.released {
		kc.released = true
		<-kc.slot.sem
	}
}

// drop closes kc at once and gives its slot back.
func (p *connPool) drop(kc *keptConn) {
	kc.c.Close()
	p.release(kc)
}

// refusesPipeAfterEnd reports whether key's server refused commands
// pipelined after the end of data.
func (p *connPool) refusesPipeAfterEnd(key poolKey) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.noPipe[key]
}

// learn remembers that kc's server refuses commands pipelined after the
// end of data, when kc found out.
func (p *connPool) learn(kc *keptConn) {
	if kc.c.PipelinesAfterEnd() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.noPipe[kc.key] = true
}

// take returns an idle connection to key's server, or nil.
func (p *connPool) take(key poolKey) *keptConn {
	for {
		p.mu.Lock()
		list := p.free[key]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil
		}
		kc := list[len(list)-1]
		p.free[key] = list[:len(list)-1]
		p.mu.Unlock()
		kc.timer.Stop()
		if kc.c.Idle() {
			return kc
		}
		p.drop(kc)
	}
}

// put keeps kc for the next attempt to its server when it can carry
// another message; otherwise it closes it.
func (p *connPool) put(kc *keptConn) {
	// Later lines (a QUIT at expiry) belong to no attempt.
	kc.c.UseTranscript(smtp.NewTranscript())
	kc.c.SetBeforeEnd(nil)
	if kc.msgs >= p.maxMsgs || !kc.c.Idle() {
		p.quit(kc)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.quit(kc)
		return
	}
	p.free[kc.key] = append(p.free[kc.key], kc)
	kc.timer = time.AfterFunc(p.idle, func() { p.expire(kc) })
	if s := p.slots[kc.key]; s != nil {
		close(s.freed) // wake those waiting for a connection
		s.freed = make(chan struct{})
	}
}

// expire closes kc if it is still idle in the pool.
func (p *connPool) expire(kc *keptConn) {
	p.mu.Lock()
	list := p.free[kc.key]
	for i, x := range list {
		if x == kc {
			p.free[kc.key] = append(list[:i:i], list[i+1:]...)
			p.quit(kc)
			break
		}
	}
	p.mu.Unlock()
}

// quit says QUIT (when the connection still works) and closes kc in the
// background.
func (p *connPool) quit(kc *keptConn) {
	p.wg.Go(func() {
		defer p.release(kc)
		if !kc.c.Idle() {
			kc.c.Close()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), quitTimeout)
		defer cancel()
		_ = kc.c.Quit(ctx)
	})
}

// close ends every idle connection and keeps no more.
func (p *connPool) close() {
	p.mu.Lock()
	p.closed = true
	for key, list := range p.free {
		for _, kc := range list {
			kc.timer.Stop()
			p.quit(kc)
		}
		delete(p.free, key)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// sendKept sends one message over a kept connection to cfg's server, or a
// new one, and keeps the connection afterwards when it can be; it is the
// Send of a Worker whose Deps.Send is not set. cfg carries the attempt's
// transcript and end-of-message hook.
func (w *Worker) sendKept(ctx context.Context, itemID, profile int64, cfg smtp.Config, env smtp.Envelope, msg smtp.Message) (*smtp.Result, error) {
	key := keyOf(profile, cfg)
	tr := cfg.Transcript
	limit := w.connections(ctx, profile)
	kc, slot, err := w.pool.get(ctx, key, limit)
	if err != nil {
		tr.Info(smtp.PhaseConnect, "%v", err)
		return &smtp.Result{Server: cfg.Addr}, err
	}
	for {
		reused := kc != nil
		if reused {
			kc.c.UseTranscript(tr)
			tr.Info(smtp.PhaseConnect, "reusing the connection to %s opened by the attempt of outbox item %d (message %d on it; its greeting, EHLO, TLS and AUTH are in that attempt's transcript)",
				cfg.Addr, kc.origin, kc.msgs+1)
			for _, l := range kc.tls {
				tr.Info(smtp.PhaseConnect, "%s (when the connection was opened)", l)
			}
		} else {
			kc, err = w.open(ctx, key, slot, itemID, cfg)
			if err != nil {
				return &smtp.Result{Server: cfg.Addr}, err
			}
		}
		// The hook runs when the end of the message is about to go: from
		// then on the attempt must not be repeated on another connection.
		endReached := false
		hook := cfg.BeforeEnd
		kc.c.SetBeforeEnd(func(ctx context.Context) error {
			endReached = true
			if hook == nil {
				return nil
			}
			return hook(ctx)
		})
		res, err := kc.c.Send(ctx, env, msg)
		kc.msgs++
		if err != nil && reused && !endReached && staleConnection(err) {
			w.pool.drop(kc)
			tr.Info(smtp.PhaseConnect, "the kept connection failed before the message was sent (%v): using another one", err)
			kc = nil
			if kc, slot, err = w.pool.get(ctx, key, limit); err != nil {
				tr.Info(smtp.PhaseConnect, "%v", err)
				return &smtp.Result{Server: cfg.Addr}, err
			}
			continue
		}
		w.pool.learn(kc)
		w.pool.put(kc)
		if res == nil {
			res = &smtp.Result{Server: cfg.Addr}
		}
		return res, err
	}
}

// connections returns how many connections to the server of profile
// the worker keeps open at most.
func (w *Worker) connections(ctx context.Context, profile int64) int {
	if w.d.ServerConnections == nil {
		return w.d.Connections
	}
	n, err := w.d.ServerConnections(ctx, profile)
	if err != nil {
		w.d.Logger.Warn("outbox: the connection limit of a server profile cannot be read; using the default", "profile", profile, "err", err, "default", w.d.Connections)
		return w.d.Connections
	}
	if n <= 0 {
		return w.d.Connections
	}
	return n
}

// open opens a connection to key's server for the attempt of item, in
// the slot taken for it (given back when the opening fails), recording in
// cfg.Transcript.
func (w *Worker) open(ctx context.Context, key poolKey, slot *serverSlots, item int64, cfg smtp.Config) (*keptConn, error) {
	tr := cfg.Transcript
	from := len(tr.Events()) // after a failed kept connection's lines
	c, err := smtp.Open(ctx, cfg)
	if err != nil {
		<-slot.sem
		return nil, err
	}
	if w.pool.refusesPipeAfterEnd(key) {
		c.AvoidPipeliningAfterEnd()
		tr.Info(smtp.PhaseConnect, "this server refused commands pipelined after the end of a message before: nothing follows the end of a message in its write on this connection")
	}
	return &keptConn{c: c, key: key, origin: item, tls: tlsLines(tr.Events()[from:]), slot: slot}, nil
}

// tlsLines picks the TLS facts of an opening transcript.
func tlsLines(evs []smtp.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Dir == smtp.DirInfo && (strings.HasPrefix(ev.Line, "TLS ") || strings.HasPrefix(ev.Line, "certificate")) {
			out = append(out, ev.Line)
		}
	}
	return out
}

// staleConnection reports whether err is a kept connection that had gone
// away at RSET or MAIL, the first commands of a transaction: no reply at
// all, or 421 (the server ends the session: idle too long, or enough
// messages on this connection). A new connection then tells whether the
// server itself is in trouble.
func staleConnection(err error) bool {
	var e *smtp.Error
	if !errors.As(err, &e) || e.OutcomeUnknown || (e.Code != 0 && e.Code != 421) {
		return false
	}
	return e.Phase == smtp.PhaseReset || e.Phase == smtp.PhaseMail
}
