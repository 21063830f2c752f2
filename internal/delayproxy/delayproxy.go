// Package delayproxy is a TCP proxy for benchmarks that emulates a network
// round-trip time on loopback and counts how often the client had to wait
// for the server.
//
// Every chunk of data is held for half the configured round-trip time
// before it is forwarded, in each direction, so a request and its answer
// cost one round trip. Order within a direction is kept, and a half-close
// (FIN) is forwarded after the data before it. The delay is a time.Sleep,
// which overshoots by up to about a millisecond: round trips of a few
// milliseconds come out somewhat longer than asked, while the count of
// waits is exact.
//
// A client wait is a burst of server data: server-to-client data that is
// not interleaved with client-to-server data, as the proxy sees it when it
// reads from either side. The first burst of a connection, before the
// client has said anything (an SMTP greeting), is not counted. A client
// that writes a command and then reads the reply waits once per command;
// a client that pipelines several commands in one write and reads all the
// replies after waits once for all of them. A client that keeps writing
// while replies stream back (large pipelined uploads) may be counted more
// than once, because its data interleaves with the replies.
package delayproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// bufferSize is the largest chunk read from one side at a time.
const bufferSize = 32 << 10

// queueLength is how many chunks each direction holds while delaying them.
const queueLength = 256

// ConnStats is what the proxy saw on one connection.
type ConnStats struct {
	// Waits is the number of server bursts after the client first spoke.
	Waits int
	// ClientBytes and ServerBytes count the data each side sent.
	ClientBytes, ServerBytes int64
	// Done is true once both directions have ended.
	Done bool
}

// Proxy forwards connections from a loopback listener to a target.
type Proxy struct {
	ln     net.Listener
	target string
	half   time.Duration

	mu     sync.Mutex
	conns  []*connState
	open   map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Start listens on 127.0.0.1 on a free port and forwards every connection
// to target (host:port), delaying each direction by rtt/2.
func Start(target string, rtt time.Duration) (*Proxy, error) {
	if rtt < 0 {
		return nil, fmt.Errorf("delayproxy: negative round-trip time %v", rtt)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("delayproxy: listen: %w", err)
	}
	p := &Proxy{ln: ln, target: target, half: rtt / 2, open: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's listening address as host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Conns returns the statistics of every connection accepted so far (or
// since the last Reset), in the order they were accepted.
func (p *Proxy) Conns() []ConnStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ConnStats, len(p.conns))
	for i, c := range p.conns {
		out[i] = c.snapshot()
	}
	return out
}

// Waits returns the total number of client waits over all connections
// returned by Conns.
func (p *Proxy) Waits() int {
	n := 0
	for _, c := range p.Conns() {
		n += c.Waits
	}
	return n
}

// Reset forgets the statistics of the connections accepted so far. A
// connection still open goes on being forwarded but is no longer counted.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = nil
}

// Close stops listening, closes every open connection and waits for the
// proxy's goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	if err != nil {
		return fmt.Errorf("delayproxy: close: %w", err)
	}
	return nil
}

// accept serves connections until the listener is closed.
func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

// track registers conns for Close; it reports false (and closes them)
// when the proxy is already closed.
func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.open[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.open, c)
		c.Close()
	}
}

// serve forwards one connection both ways.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	if !p.track(client) {
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		p.untrack(client)
		return
	}
	if !p.track(server) {
		p.untrack(client)
		return
	}
	st := &connState{}
	p.mu.Lock()
	p.conns = append(p.conns, st)
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(server, client, fromClient, st) }()
	go func() { defer wg.Done(); p.pipe(client, server, fromServer, st) }()
	wg.Wait()
	st.finish()
	p.untrack(client, server)
}

// direction says which side a chunk came from.
type direction int

const (
	none direction = iota
	fromClient
	fromServer
)

// chunk is data waiting for its time to be forwarded.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, holding each chunk for p.half. When src ends it
// half-closes dst; when dst fails it closes both, so the other direction
// ends too.
func (p *Proxy) pipe(dst, src net.Conn, dir direction, st *connState) {
	queue := make(chan chunk, queueLength)
	go func() {
		defer close(queue)
		for {
			buf := make([]byte, bufferSize)
			n, err := src.Read(buf)
			if n > 0 {
				st.note(dir, n)
				queue <- chunk{data: buf[:n], due: time.Now().Add(p.half)}
			}
			if err != nil {
				return
			}
		}
	}()
	var failed bool
	for c := range queue {
		if failed {
			continue // drain so the reader can end
		}
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(c.data); err != nil {
			failed = true
			dst.Close()
			src.Close()
		}
	}
	if failed {
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
			dst.Close()
		}
		return
	}
	dst.Close()
}

// connState counts one connection's bursts. Both directions update it.
type connState struct {
	mu    sync.Mutex
	last  direction
	stats ConnStats
}

// note records n bytes read from dir's side.
func (s *connState) note(dir direction, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch dir {
	case fromClient:
		s.stats.ClientBytes += int64(n)
	case fromServer:
		s.stats.ServerBytes += int64(n)
		if s.last == fromClient {
			s.stats.Waits++
		}
	}
	s.last = dir
}

func (s *connState) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Done = true
}

func (s *connState) snapshot() ConnStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}
