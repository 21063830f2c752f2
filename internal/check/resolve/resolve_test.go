package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"sockmail/internal/testenv"
)

func TestSystemServer(t *testing.T) {
	tests := []struct {
		name, conf, want, wantErr string
	}{
		{name: "first", conf: "# comment\nsearch example.org\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n", want: "192.0.2.53:53"},
		{name: "ipv6", conf: "nameserver 2001:db8::53\n", want: "[2001:db8::53]:53"},
		{name: "zone", conf: "nameserver fe80::1%eth0\n", want: "[fe80::1]:53"},
		{name: "none", conf: "search example.org\n", wantErr: "names no nameserver"},
		{name: "name", conf: "nameserver dns.example\n", wantErr: `nameserver "dns.example" is not an IP address`},
		{name: "huge", conf: strings.Repeat("# padding\n", 8000) + "nameserver 192.0.2.53\n", wantErr: "larger than 64 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "resolv.conf")
			if err := os.WriteFile(path, []byte(tt.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := SystemServer(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("SystemServer = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("SystemServer = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := SystemServer(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing resolv.conf is not an error")
	}
}

func TestNewRefusesBadServer(t *testing.T) {
	for _, s := range []string{"", "127.0.0.1", ":53", "127.0.0.1:"} {
		if _, err := New(s, 0, nil); err == nil || !strings.Contains(err.Error(), "is not host:port") {
			t.Errorf("New(%q): %v", s, err)
		}
	}
}

// TestQueryDeadline checks that a resolver that never answers makes a
// lookup fail when its deadline passes, and that the failure is recorded.
func TestQueryDeadline(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var got []Lookup
	r, err := New(pc.LocalAddr().String(), 100*time.Millisecond, func(l Lookup) { got = append(got, l) })
	if err != nil {
		t.Fatal(err)
	}
	_, l, err := r.Query(context.Background(), "example.org", dns.TypeMX)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("Query of a silent resolver: %v; want a deadline error", err)
	}
	if len(got) != 1 || got[0].Err == "" || got[0].Rcode != "" || got[0].Name != "example.org." || got[0].Type != "MX" || l.Err != got[0].Err {
		t.Errorf("recorded %+v", got)
	}
}

// TestQueryResendsLostQuestion: a resolver that drops the first datagram
// (lost on the way, or dropped while busy) is asked again and its answer
// to the second try is taken; the lookup records both tries.
func TestQueryResendsLostQuestion(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	seen := make(chan int, 64)
	go func() {
		buf := make([]byte, 1500)
		for n := 1; ; n++ {
			size, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			seen <- n
			if n == 1 {
				continue // the first try is lost
			}
			q := new(dns.Msg)
			if err := q.Unpack(buf[:size]); err != nil {
				return
			}
			m := new(dns.Msg)
			m.SetReply(q)
			m.Answer = append(m.Answer, &dns.MX{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 60}, Preference: 10, Mx: "mx.example.org."})
			out, err := m.Pack()
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(out, from)
		}
	}()
	r, err := New(pc.LocalAddr().String(), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.retryAfter = 20 * time.Millisecond
	m, l, err := r.Query(context.Background(), "example.org", dns.TypeMX)
	if err != nil {
		t.Fatalf("Query with the first datagram lost: %v", err)
	}
	// A slow machine may need a third try (the second's wait is short
	// here), never fewer than two.
	if mx := Records[*dns.MX](m); len(mx) != 1 || l.Tries < 2 || !strings.Contains(l.String(), fmt.Sprintf("asked %d times", l.Tries)) {
		t.Errorf("answer %v, lookup %s (tries %d); want one MX after 2 or more tries", m.Answer, l, l.Tries)
	}
	if n := len(seen); n != l.Tries {
		t.Errorf("the resolver saw %d questions, the lookup counted %d tries", n, l.Tries)
	}
}

// TestQueryTruncatedRetriesTCP checks the RFC 7766 fallback with a
// scripted DNS server (miekg/dns): truncated over UDP, whole over TCP.
func TestQueryTruncatedRetriesTCP(t *testing.T) {
	var mu sync.Mutex
	var nets []string
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		netw := w.LocalAddr().Network()
		mu.Lock()
		nets = append(nets, netw)
		mu.Unlock()
		if netw == "udp" {
			m.Truncated = true
		} else {
			m.Answer = append(m.Answer, &dns.MX{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 60}, Preference: 10, Mx: "mx.example.org."})
		}
		_ = w.WriteMsg(m)
	})
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp", tcp.Addr().String())
	if err != nil {
		tcp.Close()
		t.Skipf("UDP port of the TCP listener is taken: %v", err)
	}
	var started sync.WaitGroup
	started.Add(2)
	servers := []*dns.Server{
		{Listener: tcp, Handler: handler, NotifyStartedFunc: started.Done},
		{PacketConn: udp, Handler: handler, NotifyStartedFunc: started.Done},
	}
	for _, s := range servers {
		go func() { _ = s.ActivateAndServe() }()
	}
	started.Wait()
	defer func() {
		for _, s := range servers {
			_ = s.Shutdown()
		}
	}()
	r, err := New(tcp.Addr().String(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, l, err := r.Query(context.Background(), "example.org", dns.TypeMX)
	if err != nil {
		t.Fatal(err)
	}
	if mx := Records[*dns.MX](m); len(mx) != 1 || mx[0].Mx != "mx.example.org." {
		t.Errorf("answer %v", m.Answer)
	}
	if len(l.Answer) != 1 || !strings.Contains(l.Answer[0], "MX 10 mx.example.org.") || l.Rcode != "NOERROR" {
		t.Errorf("lookup %s", l)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(nets, ",") != "udp,tcp" {
		t.Errorf("asked over %v, want udp then tcp", nets)
	}
}

// TestQueryRealResolver asks the test Unbound: the AD bit is set for the
// signed zone and not for the unsigned one, and NXDOMAIN is an answer,
// not an error.
func TestQueryRealResolver(t *testing.T) {
	d := testenv.DNS(t)
	r, err := New(d.Resolver, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		qtype uint16
		rcode string
		ad    bool
	}{
		{d.SignedZone, dns.TypeMX, "NOERROR", true},
		{"missing." + d.SignedZone, dns.TypeMX, "NXDOMAIN", true},
		{d.InsecureZone, dns.TypeMX, "NOERROR", false},
		{"1.0.0.127.in-addr.arpa", dns.TypePTR, "NOERROR", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, l, err := r.Query(context.Background(), tt.name, tt.qtype)
			if err != nil {
				t.Fatal(err)
			}
			if l.Rcode != tt.rcode || l.AD != tt.ad {
				t.Errorf("%s: rcode %s AD %v; want %s AD %v", l, l.Rcode, l.AD, tt.rcode, tt.ad)
			}
			for _, a := range l.Answer {
				if strings.Contains(a, "RRSIG") {
					t.Errorf("signature kept in the answer: %s", a)
				}
			}
		})
	}
}
