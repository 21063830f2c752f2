// Command netsmtpclient is the baseline of the whole-process benchmark
// (internal/procbench): the smallest reasonable program that sends mail
// with Go's net/smtp. It dials, says EHLO, optionally does STARTTLS, then
// for each of --count messages MAIL, RCPT, DATA and the message, and QUIT,
// all on one connection. The message is a small text one, or with
// --attach a multipart/mixed one whose attachment is base64-encoded while
// it is written (76-character lines), never held whole in memory.
package main

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"time"
)

// maxCAFile bounds --ca-file.
const maxCAFile = 1 << 20

// options are the command-line flags.
type options struct {
	server, from, to, subject, attach, caFile string
	count                                     int
	startTLS                                  bool
	timeout                                   time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.server, "server", "127.0.0.1:25", "server `host:port`")
	flag.StringVar(&o.from, "from", "sender@example.org", "envelope and header sender")
	flag.StringVar(&o.to, "to", "rcpt@example.org", "recipient")
	flag.StringVar(&o.subject, "subject", "netsmtpclient test", "Subject")
	flag.StringVar(&o.attach, "attach", "", "attach `file`, streamed")
	flag.StringVar(&o.caFile, "ca-file", "", "PEM `file` of CA certificates for STARTTLS")
	flag.IntVar(&o.count, "count", 1, "messages to send over the connection")
	flag.BoolVar(&o.startTLS, "starttls", false, "require STARTTLS")
	flag.DurationVar(&o.timeout, "timeout", time.Minute, "deadline of the whole conversation")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "netsmtpclient: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("sent %d\n", o.count)
}

// run holds the conversation.
func run(o options) error {
	host, _, err := net.SplitHostPort(o.server)
	if err != nil {
		return fmt.Errorf("--server %q: %w", o.server, err)
	}
	conn, err := net.DialTimeout("tcp", o.server, o.timeout)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	// net/smtp has no per-read deadline: one deadline bounds it all.
	if err := conn.SetDeadline(time.Now().Add(o.timeout)); err != nil {
		return fmt.Errorf("deadline: %w", err)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if o.startTLS {
		cfg, err := tlsConfig(host, o.caFile)
		if err != nil {
			return err
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	for i := 1; i <= o.count; i++ {
		if err := send(c, o, i); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("QUIT: %w", err)
	}
	return nil
}

// tlsConfig trusts the system roots and, with caFile, the CAs in it.
func tlsConfig(host, caFile string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: host}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := readLimited(caFile, maxCAFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca-file %s: no PEM certificate", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// readLimited reads a file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

// send sends message i.
func send(c *smtp.Client, o options, i int) error {
	if err := c.Mail(o.from); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	if err := c.Rcpt(o.to); err != nil {
		return fmt.Errorf("RCPT: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	if err := writeMessage(bw, o, i); err != nil {
		w.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	return nil
}

// writeMessage writes message i: a header, then a text body or a
// multipart/mixed body with the attachment.
func writeMessage(w *bufio.Writer, o options, i int) error {
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return fmt.Errorf("message id: %w", err)
	}
	subject := o.subject
	if o.count > 1 {
		subject = fmt.Sprintf("%s [%d/%d]", subject, i, o.count)
	}
	fmt.Fprintf(w, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@example.org>\r\nMIME-Version: 1.0\r\n",
		o.from, o.to, subject, time.Now().Format(time.RFC1123Z), hex.EncodeToString(id))
	const text = "This is a test message sent by netsmtpclient.\r\n"
	if o.attach == "" {
		fmt.Fprintf(w, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n%s", text)
		return nil
	}
	const boundary = "netsmtpclient-boundary"
	fmt.Fprintf(w, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s--%s\r\n",
		boundary, boundary, text, boundary)
	fmt.Fprintf(w, "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=%q\r\n\r\n",
		filepath.Base(o.attach))
	f, err := os.Open(o.attach)
	if err != nil {
		return fmt.Errorf("--attach: %w", err)
	}
	defer f.Close()
	lw := &lineWriter{w: w}
	enc := base64.NewEncoder(base64.StdEncoding, lw)
	if _, err := io.Copy(enc, f); err != nil {
		return fmt.Errorf("attachment: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("attachment: %w", err)
	}
	if lw.n > 0 {
		w.WriteString("\r\n")
	}
	fmt.Fprintf(w, "--%s--\r\n", boundary)
	return nil
}

// lineWriter breaks base64 text into lines of 76 characters.
type lineWriter struct {
	w *bufio.Writer
	n int // characters on the current line
}

func (l *lineWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		k := min(76-l.n, len(p))
		if _, err := l.w.Write(p[:k]); err != nil {
			return total - len(p), err
		}
		p, l.n = p[k:], l.n+k
		if l.n == 76 {
			if _, err := l.w.WriteString("\r\n"); err != nil {
				return total - len(p), err
			}
			l.n = 0
		}
	}
	return total, nil
}
