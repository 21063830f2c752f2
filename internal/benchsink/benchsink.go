// Package benchsink starts SMTP servers that accept and discard mail, for
// benchmarks: Postfix's smtp-sink (a real, fast, independent server with
// PIPELINING but no CHUNKING) as a child process, and an in-process
// github.com/emersion/go-smtp server that offers PIPELINING and CHUNKING.
//
// When smtp-sink is not installed the benchmark is skipped, or fails when
// the environment variable CI is "true", so that CI cannot pass by
// skipping.
package benchsink

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// startTimeout bounds the wait for a sink to accept connections.
const startTimeout = 5 * time.Second

// smtpSinkPath finds the smtp-sink binary, which Debian installs in
// /usr/sbin (often not on a user's PATH).
func smtpSinkPath() (string, error) {
	if p, err := exec.LookPath("smtp-sink"); err == nil {
		return p, nil
	}
	const debian = "/usr/sbin/smtp-sink"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", errors.New("smtp-sink not found on PATH or in /usr/sbin (Debian package postfix; make testservers installs it)")
}

// SMTPSink starts Postfix's smtp-sink on a free loopback port with the
// extra options given (for example "-p" to withhold PIPELINING) and
// returns its address. The process is stopped when tb ends.
func SMTPSink(tb testing.TB, options ...string) string {
	tb.Helper()
	bin, err := smtpSinkPath()
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("benchsink: %v (CI=true: a missing sink is a failure)", err)
		}
		tb.Skipf("benchsink: %v", err)
		return ""
	}
	addr, stop, err := startSMTPSinkRetry(bin, options)
	if err != nil {
		tb.Fatalf("benchsink: %v", err)
		return ""
	}
	tb.Cleanup(stop)
	return addr
}

// StartSMTPSink is SMTPSink for programs, such as the whole-process
// benchmark driver (internal/procbench): it starts smtp-sink with the
// extra options given and returns its address and the function that
// stops it, or an error when smtp-sink is missing or does not start.
func StartSMTPSink(options ...string) (addr string, stop func(), err error) {
	bin, err := smtpSinkPath()
	if err != nil {
		return "", nil, fmt.Errorf("benchsink: %w", err)
	}
	return startSMTPSinkRetry(bin, options)
}

// startSMTPSinkRetry tries startSMTPSink three times: the free port it
// picks can be taken by another process before smtp-sink binds it.
func startSMTPSinkRetry(bin string, options []string) (string, func(), error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, stop, err := startSMTPSink(bin, options)
		if err == nil {
			return addr, stop, nil
		}
		lastErr = err
	}
	return "", nil, lastErr
}

// startSMTPSink runs one smtp-sink on a port that was free a moment ago
// and waits until it accepts connections.
func startSMTPSink(bin string, options []string) (string, func(), error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var args []string
	if os.Geteuid() == 0 {
		// smtp-sink refuses to run as root without a user to become.
		args = append(args, "-u", "nobody")
	}
	args = append(args, options...)
	args = append(args, addr, "256")
	cmd := exec.Command(bin, args...)
	cmd.Stdout = io.Discard
	stderr := &limitedBuffer{limit: 4096}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case err := <-exited:
			return "", nil, fmt.Errorf("%s exited: %v: %s", bin, err, stderr.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("%s did not listen on %s within %v: %s", bin, addr, startTimeout, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePort returns a loopback TCP port that was free when asked.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("benchsink: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// GoSMTP starts an in-process go-smtp server on a free loopback port that
// offers PIPELINING, CHUNKING and 8BITMIME, accepts every message and
// discards it. It returns the address; the server stops when tb ends.
func GoSMTP(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("benchsink: listen: %v", err)
	}
	s := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return discard{}, nil
	}))
	s.Domain = "localhost"
	s.ReadTimeout = time.Minute
	s.WriteTimeout = time.Minute
	s.ErrorLog = quietLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	tb.Cleanup(func() {
		s.Close()
		// Close only closes listeners Serve has registered: when the
		// cleanup runs before the goroutine above got that far, Serve
		// would block in Accept forever. Closing the listener here too
		// makes it return in either order.
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// discard is a go-smtp session that accepts everything and keeps nothing.
type discard struct{}

func (discard) Reset()                                 {}
func (discard) Logout() error                          { return nil }
func (discard) Mail(string, *gosmtp.MailOptions) error { return nil }
func (discard) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (discard) Data(r io.Reader) error                 { _, err := io.Copy(io.Discard, r); return err }

// quietLog drops go-smtp's log lines (clients closing connections).
type quietLog struct{}

func (quietLog) Printf(string, ...interface{}) {}
func (quietLog) Println(...interface{})        {}

// limitedBuffer keeps the first limit bytes written to it.
type limitedBuffer struct {
	limit int
	buf   []byte
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string { return string(b.buf) }
