package smtp

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Delivery straight to the recipients' MX hosts, with a fake resolver and
// a dialer that routes addresses to scripted connections: no network.

// fakeResolver answers from maps and records the questions.
type fakeResolver struct {
	mx    map[string][]*net.MX
	mxErr map[string]error
	ip    map[string][]string
	ipErr map[string]error

	mu    sync.Mutex
	asked []string
}

func (r *fakeResolver) note(q string) {
	r.mu.Lock()
	r.asked = append(r.asked, q)
	r.mu.Unlock()
}

func (r *fakeResolver) questions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.asked...)
}

func (r *fakeResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	r.note("MX " + name)
	if err := r.mxErr[name]; err != nil {
		return nil, err
	}
	return r.mx[name], nil
}

func (r *fakeResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	r.note("A " + host)
	if err := r.ipErr[host]; err != nil {
		return nil, err
	}
	ips, ok := r.ip[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []net.IPAddr
	for _, s := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}

// routeDialer hands out a scripted connection per address; an address it
// does not know refuses the connection.
type routeDialer struct {
	mu     sync.Mutex
	routes map[string]*faker
	dialed []string
}

func (d *routeDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dialed = append(d.dialed, addr)
	if f, ok := d.routes[addr]; ok {
		return f, nil
	}
	return nil, &net.OpError{Op: "dial", Net: network, Err: &net.AddrError{Err: syscall.ECONNREFUSED.Error(), Addr: addr}}
}

func (d *routeDialer) order() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.dialed...)
}

const okSession = ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 Ok: queued as MX1\n221 Bye\n"

func TestMXDelivery(t *testing.T) {
	mxs := func(pairs ...any) []*net.MX {
		var out []*net.MX
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, &net.MX{Pref: uint16(pairs[i].(int)), Host: pairs[i+1].(string)})
		}
		return out
	}
	baseIPs := map[string][]string{
		"mx1.example.net": {"192.0.2.1"},
		"mx2.example.net": {"192.0.2.2"},
		"mx3.example.net": {"192.0.2.3"},
		"example.net":     {"192.0.2.9"},
	}
	tests := []struct {
		name      string
		to        []string
		mx        []*net.MX
		mxErr     error
		ipErr     map[string]error
		ips       map[string][]string
		routes    map[string]string // address -> server script
		dialed    []string
		server    string // the server that took part, "" for none
		errPhase  Phase
		errText   string
		temporary bool
		info      []string
	}{
		{
			name:   "preference order, whatever order DNS gives",
			to:     []string{"b@example.net"},
			mx:     mxs(20, "mx2.example.net.", 10, "mx1.example.net.", 30, "mx3.example.net."),
			routes: map[string]string{"192.0.2.1:2525": okSession, "192.0.2.2:2525": okSession},
			dialed: []string{"192.0.2.1:2525"},
			server: "mx1.example.net:2525",
			info:   []string{"DNS MX example.net: 10 mx1.example.net., 20 mx2.example.net., 30 mx3.example.net.", "DNS mx1.example.net A/AAAA: 192.0.2.1"},
		},
		{
			name:   "next MX when the first refuses the connection",
			to:     []string{"b@example.net"},
			mx:     mxs(10, "mx1.example.net.", 20, "mx2.example.net."),
			routes: map[string]string{"192.0.2.2:2525": okSession},
			dialed: []string{"192.0.2.1:2525", "192.0.2.2:2525"},
			server: "mx2.example.net:2525",
			info:   []string{"connect to 192.0.2.1:2525 failed", "trying the next MX host"},
		},
		{
			name:   "next MX after a 4xx greeting",
			to:     []string{"b@example.net"},
			mx:     mxs(10, "mx1.example.net.", 20, "mx2.example.net."),
			routes: map[string]string{"192.0.2.1:2525": "421 4.3.2 busy\n", "192.0.2.2:2525": okSession},
			dialed: []string{"192.0.2.1:2525", "192.0.2.2:2525"},
			server: "mx2.example.net:2525",
			info:   []string{"trying the next MX host after: smtp: greeting: 421"},
		},
		{
			name:   "next MX when a host name does not resolve",
			to:     []string{"b@example.net"},
			mx:     mxs(10, "gone.example.net.", 20, "mx2.example.net."),
			routes: map[string]string{"192.0.2.2:2525": okSession},
			dialed: []string{"192.0.2.2:2525"},
			server: "mx2.example.net:2525",
		},
		{
			name:   "every address of one MX host is tried",
			to:     []string{"b@example.net"},
			mx:     mxs(10, "mx1.example.net."),
			ips:    map[string][]string{"mx1.example.net": {"192.0.2.1", "192.0.2.11"}},
			routes: map[string]string{"192.0.2.11:2525": okSession},
			dialed: []string{"192.0.2.1:2525", "192.0.2.11:2525"},
			server: "mx1.example.net:2525",
		},
		{
			name:     "no next MX after a refusal inside the transaction",
			to:       []string{"b@example.net"},
			mx:       mxs(10, "mx1.example.net.", 20, "mx2.example.net."),
			routes:   map[string]string{"192.0.2.1:2525": ehloPipelining + "250 Ok\n450 4.2.0 greylisted\n554 no valid recipients\n221 Bye\n", "192.0.2.2:2525": okSession},
			dialed:   []string{"192.0.2.1:2525"},
			errPhase: PhaseRcpt, errText: "greylisted", temporary: true,
		},
		{
			name:     "no next MX after a 5xx greeting",
			to:       []string{"b@example.net"},
			mx:       mxs(10, "mx1.example.net.", 20, "mx2.example.net."),
			routes:   map[string]string{"192.0.2.1:2525": "554 5.7.1 go away\n", "192.0.2.2:2525": okSession},
			dialed:   []string{"192.0.2.1:2525"},
			errPhase: PhaseGreeting, errText: "go away",
		},
		{
			name:     "every MX fails: the last error",
			to:       []string{"b@example.net"},
			mx:       mxs(10, "mx1.example.net.", 20, "mx2.example.net."),
			dialed:   []string{"192.0.2.1:2525", "192.0.2.2:2525"},
			errPhase: PhaseConnect, errText: "cannot connect to mx2.example.net:2525", temporary: true,
		},
		{
			name:   "no MX: the domain's own address (NXDOMAIN-style answer)",
			to:     []string{"b@example.net"},
			mxErr:  &net.DNSError{Err: "no such host", Name: "example.net", IsNotFound: true},
			routes: map[string]string{"192.0.2.9:2525": okSession},
			dialed: []string{"192.0.2.9:2525"},
			server: "example.net:2525",
			info:   []string{"DNS MX example.net: none", "using the domain's own address", "DNS example.net A/AAAA: 192.0.2.9"},
		},
		{
			name:   "no MX: empty answer",
			to:     []string{"b@EXAMPLE.net"},
			mx:     nil,
			routes: map[string]string{"192.0.2.9:2525": okSession},
			dialed: []string{"192.0.2.9:2525"},
			server: "example.net:2525",
		},
		{
			name:     "null MX refused (RFC 7505)",
			to:       []string{"b@example.net"},
			mx:       mxs(0, "."),
			errPhase: PhaseConnect, errText: "accepts no mail (null MX, RFC 7505)",
		},
		{
			name:   "a null MX among others (RFC 7505 3 forbids it) is never dialed",
			to:     []string{"b@example.net"},
			mx:     mxs(0, ".", 10, "mx1.example.net"),
			routes: map[string]string{"192.0.2.1:2525": okSession},
			dialed: []string{"192.0.2.1:2525"},
			server: "mx1.example.net:2525",
		},
		{
			name:     "MX lookup fails temporarily",
			to:       []string{"b@example.net"},
			mxErr:    &net.DNSError{Err: "server misbehaving", Name: "example.net", IsTemporary: true},
			errPhase: PhaseConnect, errText: "cannot look up the MX of example.net", temporary: true,
			info: []string{"DNS MX lookup of example.net failed"},
		},
		{
			name:   "recipients in one domain, case apart",
			to:     []string{"b@example.net", "c@Example.NET"},
			mx:     mxs(10, "mx1.example.net."),
			routes: map[string]string{"192.0.2.1:2525": ehloPipelining + "250 Ok\n250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n"},
			dialed: []string{"192.0.2.1:2525"},
			server: "mx1.example.net:2525",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ips := baseIPs
			if tt.ips != nil {
				ips = tt.ips
			}
			r := &fakeResolver{mx: map[string][]*net.MX{"example.net": tt.mx}, ip: ips, ipErr: tt.ipErr}
			if tt.mxErr != nil {
				r.mxErr = map[string]error{"example.net": tt.mxErr}
			}
			d := &routeDialer{routes: map[string]*faker{}}
			for addr, script := range tt.routes {
				d.routes[addr] = newFaker(script)
			}
			tr := NewTranscript()
			cfg := Config{Resolver: r, Dialer: d, MXPort: 2525, Transcript: tr, LocalName: "client.test"}
			res, err := SendMail(context.Background(), cfg, Envelope{From: "a@example.org", To: tt.to}, strings.NewReader("x\n"), SendOptions{})
			if got := d.order(); !slices.Equal(got, tt.dialed) {
				t.Errorf("dialed %q, want %q", got, tt.dialed)
			}
			if tt.errPhase == "" {
				if err != nil || StatusOf(res, err) != StatusSent {
					t.Fatalf("err %v\n%s", err, dumpTranscript(tr))
				}
				if res.Server != tt.server {
					t.Errorf("server %q, want %q", res.Server, tt.server)
				}
			} else {
				var e *Error
				if !errors.As(err, &e) || e.Phase != tt.errPhase || !strings.Contains(e.Error(), tt.errText) || e.Temporary() != tt.temporary {
					t.Errorf("err = %v; want phase %s, %q, temporary %v", err, tt.errPhase, tt.errText, tt.temporary)
				}
			}
			for _, want := range tt.info {
				if !hasEvent(tr.Events(), DirInfo, want) {
					t.Errorf("no info %q in:\n%s", want, dumpTranscript(tr))
				}
			}
		})
	}
}

// TestMXDeliveryToSeveralDomains: without a server, recipients in several
// domains get one conversation per domain, with that domain's MX hosts;
// the outcomes are merged, a domain that failed leaving the send partial.
func TestMXDeliveryToSeveralDomains(t *testing.T) {
	const netSession = ehloPipelining + "250 Ok\n250 Ok\n250 Ok\n354 go\n250 Ok: queued as NET1\n221 Bye\n"
	const orgSession = ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 Ok: queued as ORG1\n221 Bye\n"
	tests := []struct {
		name     string
		routes   map[string]string
		status   Status
		errText  string
		server   string // the servers tried, in order
		queueID  string
		accepted []bool // b@example.net, c@example.org, d@example.net
		refusal  string // in c@example.org's answer when refused
	}{
		{
			name:   "both domains take it",
			routes: map[string]string{"192.0.2.1:2525": netSession, "192.0.2.5:2525": orgSession},
			status: StatusSent, server: "mx1.example.net:2525, mx.example.org:2525", queueID: "NET1, ORG1",
			accepted: []bool{true, true, true},
		},
		{
			name:   "one domain unreachable: partly sent",
			routes: map[string]string{"192.0.2.1:2525": netSession},
			status: StatusPartial, server: "mx1.example.net:2525, mx.example.org:2525", queueID: "NET1",
			accepted: []bool{true, false, true}, refusal: "connection refused",
		},
		{
			name:   "one domain refuses the message",
			routes: map[string]string{"192.0.2.1:2525": netSession, "192.0.2.5:2525": ehloPipelining + "250 Ok\n250 Ok\n354 go\n554 5.7.1 spam\n221 Bye\n"},
			status: StatusPartial, server: "mx1.example.net:2525, mx.example.org:2525", queueID: "NET1",
			accepted: []bool{true, false, true}, refusal: "554",
		},
		{
			name:   "no domain reachable",
			routes: map[string]string{},
			status: StatusTempFail, errText: "connection refused", server: "mx1.example.net:2525, mx.example.org:2525",
			accepted: []bool{false, false, false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeResolver{
				mx: map[string][]*net.MX{"example.net": {{Pref: 10, Host: "mx1.example.net."}}, "example.org": {{Pref: 5, Host: "mx.example.org."}}},
				ip: map[string][]string{"mx1.example.net": {"192.0.2.1"}, "mx.example.org": {"192.0.2.5"}},
			}
			d := &routeDialer{routes: map[string]*faker{}}
			for addr, script := range tt.routes {
				d.routes[addr] = newFaker(script)
			}
			tr := NewTranscript()
			cfg := Config{Resolver: r, Dialer: d, MXPort: 2525, Transcript: tr, LocalName: "client.test"}
			to := []string{"b@example.net", "c@example.org", "d@Example.NET"}
			res, err := SendMail(context.Background(), cfg, Envelope{From: "a@example.org", To: to}, strings.NewReader("one body\n"), SendOptions{})
			if st := StatusOf(res, err); st != tt.status || (tt.errText == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.errText)) {
				t.Fatalf("status %s, err %v; want %s, error containing %q\n%s", st, err, tt.status, tt.errText, dumpTranscript(tr))
			}
			if res.Server != tt.server || res.QueueID != tt.queueID {
				t.Errorf("server %q queue id %q; want %q and %q", res.Server, res.QueueID, tt.server, tt.queueID)
			}
			if len(res.Recipients) != len(to) {
				t.Fatalf("recipients %+v", res.Recipients)
			}
			for i, rc := range res.Recipients {
				if rc.Address != to[i] || rc.Accepted != tt.accepted[i] {
					t.Errorf("recipient %d: %+v, want %s accepted %v", i, rc, to[i], tt.accepted[i])
				}
			}
			if tt.refusal != "" && !strings.Contains(res.Recipients[1].Message+strconv.Itoa(res.Recipients[1].Code), tt.refusal) {
				t.Errorf("c@example.org refused with %+v, want %q", res.Recipients[1], tt.refusal)
			}
			// One conversation per domain, example.net's two recipients
			// together, and the body (read again) in each.
			if f := d.routes["192.0.2.1:2525"]; f != nil {
				if w := f.wire(); strings.Count(w, "RCPT TO:") != 2 || !strings.Contains(w, "one body") {
					t.Errorf("example.net conversation:\n%s", w)
				}
			}
			if f := d.routes["192.0.2.5:2525"]; f != nil {
				if w := f.wire(); strings.Count(w, "RCPT TO:") != 1 || !strings.Contains(w, "one body") {
					t.Errorf("example.org conversation:\n%s", w)
				}
			}
			for _, want := range []string{"domain 1 of 2: example.net, for b@example.net, d@Example.NET", "domain 2 of 2: example.org, for c@example.org"} {
				if !hasEvent(tr.Events(), DirInfo, want) {
					t.Errorf("transcript lacks %q:\n%s", want, dumpTranscript(tr))
				}
			}
		})
	}
}
