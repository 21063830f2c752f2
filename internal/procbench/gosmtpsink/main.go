// Command gosmtpsink is a github.com/emersion/go-smtp server that accepts
// every message and discards it, run as its own process so that a
// whole-process benchmark (internal/procbench) measures the clients, not a
// sink sharing their address space. It offers PIPELINING, CHUNKING and
// 8BITMIME, listens on the loopback address given (port 0: any free port)
// and prints "listening HOST:PORT" on stdout once it accepts connections.
// It stops on SIGTERM, SIGINT or when stdin closes.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// maxMessage bounds one message; the benchmark's largest is a 20 MiB
// attachment, base64-encoded.
const maxMessage = 64 << 20

func main() {
	addr := flag.String("listen", "127.0.0.1:0", "`address` to listen on")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintf(os.Stderr, "gosmtpsink: %v\n", err)
		os.Exit(1)
	}
}

// run serves until a signal arrives or stdin closes.
func run(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return discard{}, nil
	}))
	s.Domain = "localhost"
	s.ReadTimeout = time.Minute
	s.WriteTimeout = time.Minute
	s.MaxMessageBytes = maxMessage
	s.MaxRecipients = 100
	s.ErrorLog = quietLog{}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop <- syscall.SIGTERM
	}()
	stopped := make(chan struct{})
	go func() {
		<-stop
		close(stopped)
		s.Close()
		ln.Close()
	}()
	fmt.Printf("listening %s\n", ln.Addr())
	err = s.Serve(ln)
	select {
	case <-stopped:
		return nil // closed on purpose: Serve's error says only that
	default:
		return fmt.Errorf("serve: %w", err)
	}
}

// discard is a session that accepts everything and keeps nothing.
type discard struct{}

func (discard) Reset()                                 {}
func (discard) Logout() error                          { return nil }
func (discard) Mail(string, *gosmtp.MailOptions) error { return nil }
func (discard) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (discard) Data(r io.Reader) error                 { _, err := io.Copy(io.Discard, r); return err }

// quietLog drops go-smtp's log lines (clients closing connections).
type quietLog struct{}

func (quietLog) Printf(string, ...any) {}
func (quietLog) Println(...any)        {}
