package monitor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"

	"sockmail/internal/store"
)

// Limits of an IMAP session that confirms an arrival.
const (
	// imapCommandTimeout bounds each IMAP command (and the greeting and
	// the TLS handshake); every read has a deadline.
	imapCommandTimeout = 30 * time.Second
	// imapMaxRead bounds what one session may read from the server: a
	// few searches and status lines need far less.
	imapMaxRead = 1 << 20
	// MonitorHeader is the header field carrying a full send's token; the
	// IMAP search looks for it.
	MonitorHeader = "X-Sockmail-Monitor"
)

// errIMAPTooMuch is the failure of a session whose server sent more than
// imapMaxRead bytes.
var errIMAPTooMuch = errors.New("the IMAP server sent more than 1 MiB")

// imapMailbox is a monitor's mailbox with its password opened.
type imapMailbox struct {
	addr, user, password, mailbox string
	implicitTLS                   bool
	tls                           *tls.Config
}

// mailboxOf opens the monitor's IMAP settings: the password is decrypted
// with d.Opener, the server verified against d.RootCAs.
func mailboxOf(d ProberDeps, im *store.MonitorIMAP) (imapMailbox, error) {
	port := im.Port
	if port == 0 {
		port = 143
		if im.ImplicitTLS {
			port = 993
		}
	}
	var password string
	if len(im.PasswordEnc) > 0 {
		if d.Opener == nil {
			return imapMailbox{}, errors.New("IMAP password: no key to open it with")
		}
		p, err := d.Opener.Open(im.PasswordEnc)
		if err != nil {
			return imapMailbox{}, fmt.Errorf("IMAP password: %w", err)
		}
		password = string(p)
	}
	box := im.Mailbox
	if box == "" {
		box = "INBOX"
	}
	return imapMailbox{addr: net.JoinHostPort(im.Host, strconv.Itoa(port)), user: im.User, password: password, mailbox: box,
		implicitTLS: im.ImplicitTLS, tls: &tls.Config{ServerName: im.Host, RootCAs: d.RootCAs, MinVersion: tls.VersionTLS12}}, nil
}

// limitedConn is a connection that fails its reads once max bytes have
// been read.
type limitedConn struct {
	net.Conn
	left atomic.Int64
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.left.Load() <= 0 {
		return 0, errIMAPTooMuch
	}
	n, err := c.Conn.Read(p)
	c.left.Add(-int64(n))
	return n, err
}

// imapSession is a logged-in IMAP connection with the mailbox selected.
type imapSession struct {
	c    *client.Client
	conn net.Conn
	stop func() bool
}

// dialIMAP connects (implicit TLS, or STARTTLS, which is then required:
// a password never crosses the network in clear), logs in and selects
// the mailbox. The session ends when ctx does.
func dialIMAP(ctx context.Context, box imapMailbox, timeout time.Duration) (*imapSession, error) {
	dialer := &net.Dialer{Timeout: timeout}
	raw, err := dialer.DialContext(ctx, "tcp", box.addr)
	if err != nil {
		return nil, fmt.Errorf("IMAP connect to %s: %w", box.addr, err)
	}
	lc := &limitedConn{Conn: raw}
	lc.left.Store(imapMaxRead)
	var conn net.Conn = lc
	if box.implicitTLS {
		conn = tls.Client(lc, box.tls)
	}
	// The greeting (and an implicit TLS handshake) is read before the
	// client's per-command timeout applies.
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		raw.Close()
		return nil, fmt.Errorf("IMAP %s: %w", box.addr, err)
	}
	s := &imapSession{conn: raw, stop: context.AfterFunc(ctx, func() { raw.Close() })}
	c, err := client.New(conn)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("IMAP greeting from %s: %w", box.addr, err)
	}
	s.c = c
	c.ErrorLog = log.New(io.Discard, "", 0)
	c.Timeout = timeout
	if !box.implicitTLS {
		ok, err := c.SupportStartTLS()
		if err != nil {
			s.close()
			return nil, fmt.Errorf("IMAP capabilities of %s: %w", box.addr, err)
		}
		if !ok {
			s.close()
			return nil, fmt.Errorf("IMAP server %s does not offer STARTTLS: the password is not sent in clear", box.addr)
		}
		if err := c.StartTLS(box.tls); err != nil {
			s.close()
			return nil, fmt.Errorf("IMAP STARTTLS with %s: %w", box.addr, err)
		}
	}
	if err := c.Login(box.user, box.password); err != nil {
		s.close()
		return nil, fmt.Errorf("IMAP login to %s as %s: %w", box.addr, box.user, err)
	}
	if _, err := c.Select(box.mailbox, false); err != nil {
		s.close()
		return nil, fmt.Errorf("IMAP select %q on %s: %w", box.mailbox, box.addr, err)
	}
	return s, nil
}

// find returns the UIDs of the messages whose MonitorHeader holds token
// (after a NOOP, so that the server notices new mail).
func (s *imapSession) find(token string) ([]uint32, error) {
	if err := s.c.Noop(); err != nil {
		return nil, fmt.Errorf("IMAP NOOP: %w", err)
	}
	crit := imap.NewSearchCriteria()
	crit.Header.Add(MonitorHeader, token)
	uids, err := s.c.UidSearch(crit)
	if err != nil {
		return nil, fmt.Errorf("IMAP search: %w", err)
	}
	return uids, nil
}

// remove marks the messages \Deleted and expunges them: with UID
// EXPUNGE (RFC 4315) when the server has it, so that no other message
// marked \Deleted goes too; else with EXPUNGE.
func (s *imapSession) remove(uids []uint32) error {
	set := new(imap.SeqSet)
	set.AddNum(uids...)
	if err := s.c.UidStore(set, imap.FormatFlagsOp(imap.AddFlags, true), []any{imap.DeletedFlag}, nil); err != nil {
		return fmt.Errorf("IMAP store \\Deleted: %w", err)
	}
	uidplus, err := s.c.Support("UIDPLUS")
	if err != nil {
		return fmt.Errorf("IMAP capabilities: %w", err)
	}
	if !uidplus {
		if err := s.c.Expunge(nil); err != nil {
			return fmt.Errorf("IMAP expunge: %w", err)
		}
		return nil
	}
	status, err := s.c.Execute(&imap.Command{Name: "UID", Arguments: []any{imap.RawString("EXPUNGE"), set}}, nil)
	if err == nil {
		err = status.Err()
	}
	if err != nil {
		return fmt.Errorf("IMAP UID EXPUNGE: %w", err)
	}
	return nil
}

// close logs out (bounded by the command timeout) and closes the
// connection.
func (s *imapSession) close() {
	if s.c != nil {
		_ = s.c.Logout()
	}
	s.stop()
	s.conn.Close()
}

// confirmIMAP looks for the message carrying token in the monitor's
// mailbox until it is there or ArrivalWait has passed, then deletes it.
// It returns when the message was found (d.Now()).
func confirmIMAP(ctx context.Context, d ProberDeps, im *store.MonitorIMAP, token string) (time.Time, error) {
	box, err := mailboxOf(d, im)
	if err != nil {
		return time.Time{}, err
	}
	// The client's reader waits for the server between polls too: the
	// command timeout must outlast a pause.
	timeout := max(imapCommandTimeout, d.ArrivalPoll+imapCommandTimeout)
	s, err := dialIMAP(ctx, box, timeout)
	if err != nil {
		return time.Time{}, err
	}
	defer s.close()
	deadline := d.After(d.ArrivalWait)
	for {
		uids, err := s.find(token)
		if err != nil {
			return time.Time{}, fmt.Errorf("look for the message in %s: %w", box.addr, err)
		}
		if len(uids) > 0 {
			found := d.Now()
			if err := s.remove(uids); err != nil {
				return found, fmt.Errorf("delete the arrived message: %w", err)
			}
			return found, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("look for the message in %s: %w", box.addr, ctx.Err())
		case <-deadline:
			return time.Time{}, fmt.Errorf("the message (token %s) did not arrive in %s (IMAP %s) within %v", token, box.user, box.addr, d.ArrivalWait)
		case <-d.After(d.ArrivalPoll):
		}
	}
}
