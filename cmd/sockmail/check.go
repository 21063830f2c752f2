//go:build !sendonly

package main

// "sockmail check": a check of a mail domain or one server from the shell.

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"sockmail/internal/check"
)

// Exit statuses of "sockmail check": the worst finding, or why there is
// no report.
const (
	checkExitPass        = 0   // every finding passes (or is information)
	checkExitWarning     = 1   // at least one warning, no failure
	checkExitFail        = 2   // at least one failure
	checkExitError       = 3   // the check could not run (no usable resolver)
	checkExitUsage       = 64  // bad flags or target: nothing was checked
	checkExitInterrupted = 130 // interrupted: the report is partial
)

// dnsEnv names the environment variable with the DNS resolver to use.
const dnsEnv = "SOCKMAIL_DNS"

const checkUsage = `Usage: sockmail check [flags] TARGET

Checks a mail domain or one mail server and prints what works, what is
wrong and what to change, grouped by host. Nothing is sent unless
--send-to asks: each conversation stops after STARTTLS (the --relay-test
one after RCPT TO).

TARGET is a domain (example.org: its MX hosts, each on port 25, are
checked) or a server as host:port (mail.example.org:587; port 465 is
implicit TLS). A domain's RFC 6186 submission servers (SRV records
_submission._tcp and _submissions._tcp) are checked too.

--from DOMAIN adds the sender side of DOMAIN in a group of its own: its
SPF record (the result for --ip, the path taken, the DNS lookups counted
against the limit of 10), its DMARC policy, and the DKIM key of
--dkim-selector.

--send-to ADDRESS sends one real test message (a short text saying it is
a sockmail check, with a unique Message-ID) after the checks, through the
server or the first MX host that answered; its transcript is in the
report, and the findings say whether it was accepted (queue id) or
refused (code, text, what to change) and, when accepted, whether it
would align for DMARC (envelope sender against From, SPF for the address
sockmail sent from, no DKIM signature). --send-from sets its sender
(default sockmail-check@ the --from domain or the target domain). The
CLI has no saved profiles: to test through a profile's server with its
credentials, use the Check page of "sockmail serve".

Flags:
%s
The DNS resolver is --dns, else $` + dnsEnv + `, else the first nameserver
of /etc/resolv.conf.

Exit status:
    0  every finding passes
    1  warnings, no failure
    2  at least one failure
    3  the check could not run (resolver unusable)
   64  bad flags or target: nothing was checked
  130  interrupted
`

// checkFlags holds the flags of "check" as given.
type checkFlags struct {
	json       bool
	live       bool
	verbose    bool
	implicit   bool
	dns        string
	port       int
	mtaSTSPort int
	helo       string
	caFile     string
	timeout    time.Duration
	dnsTimeout time.Duration
	parallel   int
	from       string
	ip         string
	selector   string
	relayTest  bool
	sendTo     string
	sendFrom   string
}

// checkPlan is the validated form of the flags.
type checkPlan struct {
	target  check.Target
	opts    check.Options
	json    bool
	live    bool
	verbose bool
}

func newCheckFlagSet(f *checkFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&f.json, "json", false, "print the report as JSON (findings by host, every DNS lookup and SMTP transcript)")
	fs.BoolVar(&f.verbose, "v", false, "after the findings, print every DNS lookup and every SMTP transcript")
	fs.BoolVar(&f.live, "live", false, "also print each finding to stderr as it is found")
	fs.StringVar(&f.dns, "dns", "", "DNS resolver as `host:port` (default $"+dnsEnv+", else /etc/resolv.conf)")
	fs.IntVar(&f.port, "port", 25, "`port` to check a domain's MX hosts on")
	fs.IntVar(&f.mtaSTSPort, "mta-sts-port", 443, "`port` of the HTTPS server the MTA-STS policy is fetched from (mta-sts.<domain>)")
	fs.BoolVar(&f.implicit, "implicit-tls", false, "the server speaks TLS from its first byte (always so on port 465)")
	fs.StringVar(&f.helo, "helo", "", "`name` to send with EHLO (default: the address literal of the local address)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM `file` of CA certificates to verify chains against instead of the system's")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "bound on each connect and each server reply")
	fs.DurationVar(&f.dnsTimeout, "dns-timeout", 5*time.Second, "bound on each DNS lookup")
	fs.IntVar(&f.parallel, "parallel", 4, "how many hosts to check at once (1 to 16)")
	fs.StringVar(&f.from, "from", "", "also check the sender side (SPF, DMARC, DKIM) of the From `domain`")
	fs.StringVar(&f.ip, "ip", "", "sending `address` to evaluate the --from domain's SPF record for")
	fs.StringVar(&f.selector, "dkim-selector", "", "DKIM `selector` whose key under the --from domain is checked")
	fs.BoolVar(&f.relayTest, "relay-test", false, "try to relay through each MX host (MAIL FROM and RCPT TO foreign addresses, never DATA)")
	fs.StringVar(&f.sendTo, "send-to", "", "send one real test message to `address` after the checks (full DATA; see above)")
	fs.StringVar(&f.sendFrom, "send-from", "", "sender `address` of the --send-to test message")
	return fs
}

// parseCheck reads the flags and the target.
func parseCheck(args []string, getenv func(string) string) (checkPlan, error) {
	var f checkFlags
	fs := newCheckFlagSet(&f)
	if err := fs.Parse(args); err != nil {
		return checkPlan{}, err
	}
	if fs.NArg() != 1 {
		if fs.NArg() == 0 {
			return checkPlan{}, errors.New("no target: give a domain (example.org) or a server (mail.example.org:587)")
		}
		return checkPlan{}, fmt.Errorf("one target at a time; got %d: %s", fs.NArg(), strings.Join(fs.Args(), " "))
	}
	target, err := check.ParseTarget(fs.Arg(0))
	if err != nil {
		return checkPlan{}, errors.New(strings.TrimPrefix(err.Error(), "check: "))
	}
	p := checkPlan{target: target, json: f.json, live: f.live, verbose: f.verbose}
	resolver, from := f.dns, "--dns"
	if resolver == "" {
		resolver, from = getenv(dnsEnv), "$"+dnsEnv
	}
	if resolver != "" {
		host, port, err := net.SplitHostPort(resolver)
		if err != nil || net.ParseIP(host) == nil || port == "" {
			return checkPlan{}, fmt.Errorf("%s %q is not an IP address and port (127.0.0.1:53)", from, resolver)
		}
	}
	switch {
	case f.port < 1 || f.port > 65535:
		return checkPlan{}, fmt.Errorf("--port %d is not a port from 1 to 65535", f.port)
	case f.mtaSTSPort < 1 || f.mtaSTSPort > 65535:
		return checkPlan{}, fmt.Errorf("--mta-sts-port %d is not a port from 1 to 65535", f.mtaSTSPort)
	case f.timeout <= 0 || f.timeout > 10*time.Minute:
		return checkPlan{}, fmt.Errorf("--timeout %s must be above 0 and at most 10m", f.timeout)
	case f.dnsTimeout <= 0 || f.dnsTimeout > time.Minute:
		return checkPlan{}, fmt.Errorf("--dns-timeout %s must be above 0 and at most 1m", f.dnsTimeout)
	case f.parallel < 1 || f.parallel > 16:
		return checkPlan{}, fmt.Errorf("--parallel %d must be from 1 to 16", f.parallel)
	case strings.ContainsAny(f.helo, " \t\r\n\x00") || len(f.helo) > 255:
		return checkPlan{}, fmt.Errorf("--helo %q must be one word of at most 255 octets", f.helo)
	}
	if f.port != 25 && target.Kind == check.KindServer {
		return checkPlan{}, errors.New("--port is for a domain's MX hosts; a server target carries its port (host:port)")
	}
	p.opts = check.Options{
		Resolver: resolver, DNSTimeout: f.dnsTimeout, MXPort: f.port, LocalName: f.helo, Parallel: f.parallel,
		ImplicitTLS: f.implicit, MTASTSPort: f.mtaSTSPort,
		Sender:    check.SenderOptions{From: f.from, IP: f.ip, DKIMSelector: f.selector},
		RelayTest: f.relayTest,
		TestSend:  check.TestSendOptions{To: f.sendTo, From: f.sendFrom},
	}
	if f.from == "" && (f.ip != "" || f.selector != "") {
		return checkPlan{}, errors.New("--ip and --dkim-selector need the From domain (--from example.org)")
	}
	if err := p.opts.Sender.Validate(); err != nil {
		msg := strings.TrimPrefix(err.Error(), "check: ")
		for _, fl := range []struct{ field, flag string }{{"From domain:", "--from:"}, {"sending address:", "--ip:"}, {"DKIM selector ", "--dkim-selector "}} {
			msg = strings.Replace(msg, fl.field, fl.flag, 1)
		}
		return checkPlan{}, errors.New(msg)
	}
	if err := p.opts.TestSend.Validate(p.opts.Sender.From, target); err != nil {
		msg := strings.TrimPrefix(err.Error(), "check: ")
		msg = strings.NewReplacer("test message recipient", "--send-to", "test message sender", "--send-from").Replace(msg)
		return checkPlan{}, errors.New(msg)
	}
	p.opts.Timeouts.Connect = f.timeout
	p.opts.Timeouts.Greeting = f.timeout
	p.opts.Timeouts.Command = f.timeout
	if f.caFile != "" {
		pool, err := readCAFile(f.caFile)
		if err != nil {
			return checkPlan{}, err
		}
		p.opts.RootCAs = pool
	}
	return p, nil
}

// readCAFile reads a PEM file of CA certificates, at most maxCAFile bytes.
func readCAFile(path string) (*x509.CertPool, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxCAFile+1))
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	if len(b) > maxCAFile {
		return nil, fmt.Errorf("--ca-file %s is larger than %d bytes", path, maxCAFile)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// runCheck runs "sockmail check ARGS" and returns the exit status.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	plan, err := parseCheck(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		printCheckUsage(stdout)
		return checkExitPass
	}
	if err != nil {
		fmt.Fprintf(stderr, "sockmail check: %v\nRun 'sockmail check --help' for usage.\n", err)
		return checkExitUsage
	}
	if plan.live {
		plan.opts.OnEvent = func(ev check.Event) {
			if ev.Kind == check.EventFinding {
				host := ev.Finding.Host
				if host == "" {
					host = "DNS"
				}
				fmt.Fprintf(stderr, "%s: %s\n", host, findingLine(*ev.Finding))
			}
		}
	}
	rep, err := check.Run(ctx, plan.target, plan.opts)
	if err != nil {
		fmt.Fprintf(stderr, "sockmail check: %v\n", err)
		return checkExitError
	}
	if plan.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "sockmail check: %v\n", err)
			return checkExitError
		}
	} else {
		writeCheckReport(stdout, rep, plan.verbose)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "sockmail check: interrupted: the report is partial")
		return checkExitInterrupted
	}
	switch rep.Worst() {
	case check.Fail:
		return checkExitFail
	case check.Warning:
		return checkExitWarning
	}
	return checkExitPass
}

func printCheckUsage(w io.Writer) {
	var f checkFlags
	fs := newCheckFlagSet(&f)
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fmt.Fprintf(w, checkUsage, b.String())
}
