// Package resolve is a DNS stub resolver client that records every lookup
// it makes: the question, the server asked, the answer, the response code,
// the AD bit (RFC 4035 3.2.3, asked for as RFC 6840 5.7 allows) and how long
// it took. Queries go over UDP with EDNS(0) (RFC 6891) and are repeated
// over TCP when the answer is truncated (RFC 7766). Every lookup has a
// deadline.
package resolve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DefaultTimeout bounds one lookup when the caller gives no timeout.
const DefaultTimeout = 5 * time.Second

// RetryAfter is how long the first UDP try of a lookup waits for its
// answer before the question is sent again; each later try waits twice
// as long as the one before, all within the lookup's timeout. A UDP
// datagram lost on the way, or dropped by a resolver that was busy, then
// costs a second instead of the whole lookup, as with the system's stub
// resolver (resolv.conf "attempts").
const RetryAfter = time.Second

// maxResolvConf bounds how much of resolv.conf is read.
const maxResolvConf = 64 << 10

// Lookup is the record of one DNS question and its answer.
type Lookup struct {
	// Name is the name asked for, fully qualified ("example.org.").
	Name string `json:"name"`
	// Type is the record type asked for ("MX").
	Type string `json:"type"`
	// Server is the resolver asked, host:port.
	Server string `json:"server"`
	// Rcode is the response code ("NOERROR", "NXDOMAIN", "SERVFAIL"), empty
	// when no answer came.
	Rcode string `json:"rcode,omitempty"`
	// AD is the Authenticated Data bit of the answer: the resolver
	// validated it with DNSSEC.
	AD bool `json:"ad"`
	// CD says the question was asked with Checking Disabled (RFC 4035
	// 3.2.2): the resolver was told not to validate.
	CD bool `json:"cd,omitempty"`
	// Answer holds the answer section's records in presentation format,
	// signatures left out.
	Answer []string `json:"answer,omitempty"`
	// Took is how long the lookup took.
	Took time.Duration `json:"-"`
	// TookMS is Took in milliseconds, for JSON.
	TookMS float64 `json:"took_ms"`
	// Err says why no answer came (timeout, network), empty otherwise.
	Err string `json:"error,omitempty"`
	// Tries is how many times the question was sent over UDP (more than
	// one when an earlier try got no answer in time: RetryAfter).
	Tries int `json:"tries,omitempty"`
}

// String renders the lookup on one line, as the transcript and the CLI
// show it.
func (l Lookup) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s @%s: ", l.Name, l.Type, l.Server)
	if l.Err != "" {
		fmt.Fprintf(&b, "no answer (%s)", l.Err)
	} else {
		b.WriteString(l.Rcode)
		if l.CD {
			b.WriteString(" (CD)")
		}
		if l.AD {
			b.WriteString(" AD")
		}
		if len(l.Answer) > 0 {
			b.WriteString(": " + strings.Join(l.Answer, "; "))
		}
	}
	if l.Tries > 1 {
		fmt.Fprintf(&b, " (%.3fms, asked %d times)", l.TookMS, l.Tries)
	} else {
		fmt.Fprintf(&b, " (%.3fms)", l.TookMS)
	}
	return b.String()
}

// Resolver asks one recursive resolver and records each lookup.
type Resolver struct {
	server  string
	timeout time.Duration
	record  func(Lookup)
	// retryAfter is the first try's wait (RetryAfter; tests shorten it).
	retryAfter time.Duration
}

// New returns a resolver that asks server (host:port) and gives each
// lookup timeout (DefaultTimeout when zero or negative). record, if not
// nil, is called with every lookup when it ends; it may be called from
// several goroutines at once.
func New(server string, timeout time.Duration, record func(Lookup)) (*Resolver, error) {
	host, port, err := net.SplitHostPort(server)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("resolve: resolver %q is not host:port", server)
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Resolver{server: server, timeout: timeout, record: record, retryAfter: RetryAfter}, nil
}

// Server returns the resolver's address, host:port.
func (r *Resolver) Server() string { return r.server }

// SystemServer returns the first nameserver of a resolv.conf file (the
// system's is /etc/resolv.conf) as host:port.
func SystemServer(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("resolve: system resolver: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(&limitedReader{f, maxResolvConf})
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			host := fields[1]
			if i := strings.IndexByte(host, '%'); i >= 0 {
				host = host[:i] // a link-local zone cannot be dialled by name here
			}
			if net.ParseIP(host) == nil {
				return "", fmt.Errorf("resolve: %s: nameserver %q is not an IP address", path, fields[1])
			}
			return net.JoinHostPort(host, "53"), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("resolve: read %s: %w", path, err)
	}
	return "", fmt.Errorf("resolve: %s names no nameserver", path)
}

// limitedReader reads at most n bytes.
type limitedReader struct {
	f *os.File
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("file is larger than 64 KiB")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

// Query asks for name's records of type qtype and returns the answer and
// its record. An answer with a response code other than NOERROR is not an
// error; no answer (timeout, network failure) is.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) (*dns.Msg, Lookup, error) {
	return r.query(ctx, name, qtype, false)
}

// QueryUnchecked asks as Query does, with the CD bit set: a validating
// resolver answers without validating. An answer to it where Query got
// SERVFAIL means DNSSEC validation failed.
func (r *Resolver) QueryUnchecked(ctx context.Context, name string, qtype uint16) (*dns.Msg, Lookup, error) {
	return r.query(ctx, name, qtype, true)
}

func (r *Resolver) query(ctx context.Context, name string, qtype uint16, cd bool) (*dns.Msg, Lookup, error) {
	fqdn := dns.Fqdn(name)
	l := Lookup{Name: fqdn, Type: dns.TypeToString[qtype], Server: r.server, CD: cd}
	if _, ok := dns.IsDomainName(fqdn); !ok {
		l.Err = "not a domain name"
		r.done(&l)
		return nil, l, fmt.Errorf("resolve: %q is not a domain name", name)
	}
	q := new(dns.Msg)
	q.SetQuestion(fqdn, qtype)
	q.RecursionDesired = true
	q.AuthenticatedData = true // ask for the AD bit (RFC 6840 5.7)
	q.CheckingDisabled = cd
	q.SetEdns0(1232, false)

	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	start := time.Now()
	m, err := r.exchangeUDP(ctx, q, &l)
	if err == nil && m.Truncated {
		c := &dns.Client{Net: "tcp", Timeout: r.timeout}
		m, _, err = c.ExchangeContext(ctx, q, r.server)
	}
	l.Took = time.Since(start)
	if err == nil && m.Id != q.Id {
		err = errors.New("answer to another question")
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w after %s (%v)", ctx.Err(), l.Took.Round(time.Millisecond), err)
		}
		l.Err = err.Error()
		r.done(&l)
		return nil, l, fmt.Errorf("resolve: %s %s: %w", fqdn, l.Type, err)
	}
	l.Rcode = dns.RcodeToString[m.Rcode]
	l.AD = m.AuthenticatedData
	for _, rr := range m.Answer {
		if rr.Header().Rrtype == dns.TypeRRSIG {
			continue
		}
		l.Answer = append(l.Answer, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	r.done(&l)
	return m, l, nil
}

// exchangeUDP sends q over UDP and waits for its answer, sending it again
// when a try's wait (retryAfter, doubling) passes without one, until ctx
// ends. l.Tries counts the tries.
func (r *Resolver) exchangeUDP(ctx context.Context, q *dns.Msg, l *Lookup) (*dns.Msg, error) {
	wait := r.retryAfter
	for {
		l.Tries++
		try := wait
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < try {
			try = time.Until(dl)
		}
		c := &dns.Client{Net: "udp", Timeout: try}
		m, _, err := c.ExchangeContext(ctx, q, r.server)
		var ne net.Error
		if err == nil || ctx.Err() != nil || !errors.As(err, &ne) || !ne.Timeout() {
			return m, err
		}
		wait *= 2
	}
}

// done fills the JSON time and hands the lookup to the recorder.
func (r *Resolver) done(l *Lookup) {
	l.TookMS = float64(l.Took.Microseconds()) / 1000
	if r.record != nil {
		r.record(*l)
	}
}

// Records returns the records of type T in the answer section of m (CNAMEs
// followed by the resolver are left out).
func Records[T dns.RR](m *dns.Msg) []T {
	var out []T
	if m == nil {
		return nil
	}
	for _, rr := range m.Answer {
		if v, ok := rr.(T); ok {
			out = append(out, v)
		}
	}
	return out
}
