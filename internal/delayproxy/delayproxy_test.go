package delayproxy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

// lineServer starts a server that greets, then answers every line it
// reads with "ok <line>" in a write of its own. It returns its address.
func lineServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, "hello\n")
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, "ok "+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func startProxy(t *testing.T, target string, rtt time.Duration) *Proxy {
	t.Helper()
	p, err := Start(target, rtt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// readLines reads n lines from br.
func readLines(t *testing.T, br *bufio.Reader, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read line %d: %v", i, err)
		}
		out = append(out, strings.TrimSuffix(l, "\n"))
	}
	return out
}

// waitDone waits until every connection of p has ended.
func waitDone(t *testing.T, p *Proxy, conns int) []ConnStats {
	t.Helper()
	var cs []ConnStats
	testenv.WaitUntil(t, fmt.Sprintf("%d proxied connections to end", conns), func() bool {
		cs = p.Conns()
		done := len(cs) == conns
		for _, c := range cs {
			done = done && c.Done
		}
		return done
	})
	return cs
}

func TestWaitsAndDelay(t *testing.T) {
	const rtt = 40 * time.Millisecond
	tests := []struct {
		name      string
		writes    []string // each is one client write, followed by reading its replies
		wantWaits int
	}{
		{"greeting only", nil, 0},
		{"one command", []string{"a\n"}, 1},
		{"three commands one by one", []string{"a\n", "b\n", "c\n"}, 3},
		{"three commands pipelined", []string{"a\nb\nc\n"}, 1},
		{"pipelined then single", []string{"a\nb\n", "c\n"}, 2},
	}
	target := lineServer(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, target, rtt)
			start := time.Now()
			c, err := net.Dial("tcp", p.Addr())
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			if got := readLines(t, br, 1); got[0] != "hello" {
				t.Fatalf("greeting %q", got[0])
			}
			for _, w := range tc.writes {
				if _, err := io.WriteString(c, w); err != nil {
					t.Fatal(err)
				}
				want := strings.Split(strings.TrimSuffix(w, "\n"), "\n")
				got := readLines(t, br, len(want))
				for i := range want {
					if got[i] != "ok "+want[i] {
						t.Fatalf("reply %d = %q, want %q", i, got[i], "ok "+want[i])
					}
				}
			}
			elapsed := time.Since(start)
			c.Close()
			cs := waitDone(t, p, 1)
			if cs[0].Waits != tc.wantWaits {
				t.Errorf("Waits = %d, want %d", cs[0].Waits, tc.wantWaits)
			}
			if p.Waits() != tc.wantWaits {
				t.Errorf("Proxy.Waits = %d, want %d", p.Waits(), tc.wantWaits)
			}
			// The greeting costs half a round trip, every wait a whole one.
			min := rtt/2 + time.Duration(tc.wantWaits)*rtt
			// Only the lower bound: a slow machine takes longer, never
			// less; the waits counted above show the pipelining.
			if elapsed < min {
				t.Errorf("took %v, less than the emulated %v", elapsed, min)
			}
		})
	}
}

func TestBytesIntactBothWays(t *testing.T) {
	// An echo server: what the client sends comes back.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	p := startProxy(t, ln.Addr().String(), 2*time.Millisecond)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, 3<<20)
	rand.Read(data)
	go func() {
		c.Write(data)
		// The half-close must reach the server after the data, so that
		// its io.Copy ends and it closes in turn.
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echoed %d bytes, not the %d sent", len(got), len(data))
	}
	cs := waitDone(t, p, 1)
	if cs[0].ClientBytes != int64(len(data)) || cs[0].ServerBytes != int64(len(data)) {
		t.Errorf("byte counts %+v, want %d each way", cs[0], len(data))
	}
}

func TestResetAndClose(t *testing.T) {
	target := lineServer(t)
	p, err := Start(target, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	readLines(t, br, 1)
	io.WriteString(c, "x\n")
	readLines(t, br, 1)
	if n := p.Waits(); n != 1 {
		t.Fatalf("Waits = %d, want 1", n)
	}
	p.Reset()
	if n := len(p.Conns()); n != 0 {
		t.Fatalf("%d connections after Reset", n)
	}
	// Close ends the open connection: the client sees EOF.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(testenv.StallLimit))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("connection still open after Close")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("still accepting after Close")
	}
}

func TestUnreachableTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := startProxy(t, target, 0)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(testenv.StallLimit))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read succeeded through a proxy whose target is down")
	}
}

func TestNegativeRTT(t *testing.T) {
	if _, err := Start("127.0.0.1:1", -time.Second); err == nil {
		t.Fatal("Start accepted a negative round-trip time")
	}
}
