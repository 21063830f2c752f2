// Package interop reads back the messages that the real test servers of
// .ci/servers.sh stored (the Maildirs of Postfix, aiosmtpd and Haraka, the
// REST APIs of Mailpit and Inbucket) and compares a stored copy with the
// bytes that were sent, the server's own trace header fields aside. Its
// test sends one matrix of cases (TLS modes, every AUTH mechanism, MIME,
// many recipients, a batch over one connection, dot-stuffing, SMTPUTF8) to
// every server with the sockmail client.
package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// MaxMessageSize bounds one stored message read back (the servers accept
// 60 MiB; a reply larger than this is an error, not a message).
const MaxMessageSize = 64 << 20

// maxListSize bounds a REST listing read back.
const maxListSize = 8 << 20

// Store is where a server puts the messages it accepted.
type Store interface {
	// Find returns the stored copies, as the server keeps them, of the
	// messages that contain token and were delivered to rcpt (one
	// envelope recipient). None found is not an error: delivery may not
	// have happened yet.
	Find(ctx context.Context, rcpt, token string) ([][]byte, error)
}

// Maildir is a Maildir that a server delivers into: Postfix (one file per
// recipient, LF line ends, a Delivered-To field naming the recipient) or the
// sinks of aiosmtpd and Haraka (one file per message, CRLF, an
// X-Sink-Rcpt-To line per recipient).
type Maildir struct {
	// Dir is the Maildir (with new/ and cur/).
	Dir string
	// Marker returns the bytes a stored file holds when it was delivered
	// to rcpt.
	Marker func(rcpt string) string
	// Since: files last changed before it are ignored (older runs).
	Since time.Time

	mu    sync.Mutex
	files map[string][]byte // by base name: a file moves from new/ to cur/ unchanged
}

// PostfixMarker is the Marker of a Postfix Maildir: the Delivered-To field.
func PostfixMarker(rcpt string) string { return "\nDelivered-To: " + rcpt + "\n" }

// SinkMarker is the Marker of the aiosmtpd and Haraka sinks: the
// X-Sink-Rcpt-To line.
func SinkMarker(rcpt string) string { return "X-Sink-Rcpt-To: <" + rcpt + ">" }

// Find implements Store. Files are read once and kept: a Maildir file does
// not change after it appears in new/.
func (m *Maildir) Find(_ context.Context, rcpt, token string) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		m.files = map[string][]byte{}
	}
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(m.Dir, sub)
		entries, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("interop: maildir: %w", err)
		}
		for _, e := range entries {
			if _, ok := m.files[e.Name()]; ok || !e.Type().IsRegular() {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue // moved to cur/ meanwhile: found there next time
			}
			if info.ModTime().Before(m.Since) {
				m.files[e.Name()] = nil
				continue
			}
			if info.Size() > MaxMessageSize {
				return nil, fmt.Errorf("interop: maildir: %s is %d bytes, more than %d", e.Name(), info.Size(), MaxMessageSize)
			}
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			m.files[e.Name()] = data
		}
	}
	var found [][]byte
	marker := []byte(m.Marker(rcpt))
	for _, data := range m.files {
		if data != nil && bytes.Contains(data, []byte(token)) && bytes.Contains(data, marker) {
			found = append(found, data)
		}
	}
	return found, nil
}

// HTTP is what the REST stores need of an HTTP client.
type HTTP interface {
	Do(req *http.Request) (*http.Response, error)
}

// get fetches url into at most limit bytes; a status other than 200 is an
// error.
func get(ctx context.Context, c HTTP, u string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("GET %s: answer longer than %d bytes", u, limit)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200q", u, resp.Status, body)
	}
	return body, nil
}

// Mailpit reads messages back through Mailpit's REST API: a search for the
// token, then each message's raw source (/api/v1/message/{ID}/raw).
type Mailpit struct {
	// API is the base URL, like http://127.0.0.1:2780.
	API string
	// Client makes the requests; its timeout bounds each one.
	Client HTTP

	mu  sync.Mutex
	raw map[string][]byte // by message ID
}

// mailpitAddress is an address in Mailpit's message summaries.
type mailpitAddress struct {
	Address string
}

// mailpitSearch is the part of /api/v1/search's answer used here.
type mailpitSearch struct {
	Messages []struct {
		ID          string
		To, Cc, Bcc []mailpitAddress
	} `json:"messages"`
}

// Find implements Store. A message was delivered to rcpt when Mailpit
// lists rcpt among its To, Cc or Bcc (Bcc: envelope recipients not in the
// header).
func (m *Mailpit) Find(ctx context.Context, rcpt, token string) ([][]byte, error) {
	q := url.Values{"query": {`"` + token + `"`}, "limit": {"1000"}}
	body, err := get(ctx, m.Client, m.API+"/api/v1/search?"+q.Encode(), maxListSize)
	if err != nil {
		return nil, fmt.Errorf("interop: mailpit: %w", err)
	}
	var res mailpitSearch
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, fmt.Errorf("interop: mailpit: search answer: %w", err)
	}
	var found [][]byte
	for _, msg := range res.Messages {
		if !hasAddress(rcpt, msg.To, msg.Cc, msg.Bcc) {
			continue
		}
		raw, err := m.source(ctx, msg.ID)
		if err != nil {
			return nil, err
		}
		if bytes.Contains(raw, []byte(token)) {
			found = append(found, raw)
		}
	}
	return found, nil
}

// source returns the raw message id, fetched once.
func (m *Mailpit) source(ctx context.Context, id string) ([]byte, error) {
	m.mu.Lock()
	raw, ok := m.raw[id]
	m.mu.Unlock()
	if ok {
		return raw, nil
	}
	raw, err := get(ctx, m.Client, m.API+"/api/v1/message/"+url.PathEscape(id)+"/raw", MaxMessageSize)
	if err != nil {
		return nil, fmt.Errorf("interop: mailpit: %w", err)
	}
	m.mu.Lock()
	if m.raw == nil {
		m.raw = map[string][]byte{}
	}
	m.raw[id] = raw
	m.mu.Unlock()
	return raw, nil
}

// hasAddress reports whether rcpt is in one of the lists (addresses compare
// without regard to case).
func hasAddress(rcpt string, lists ...[]mailpitAddress) bool {
	for _, l := range lists {
		for _, a := range l {
			if strings.EqualFold(a.Address, rcpt) {
				return true
			}
		}
	}
	return false
}

// Inbucket reads messages back through Inbucket's REST API: a mailbox per
// recipient (named by the local part), each message's source through
// /api/v1/mailbox/{name}/{id}/source.
type Inbucket struct {
	// API is the base URL, like http://127.0.0.1:2880.
	API string
	// Client makes the requests; its timeout bounds each one.
	Client HTTP

	mu  sync.Mutex
	raw map[string][]byte // by mailbox/id
}

// Find implements Store.
func (m *Inbucket) Find(ctx context.Context, rcpt, token string) ([][]byte, error) {
	local, _, ok := strings.Cut(rcpt, "@")
	if !ok {
		return nil, fmt.Errorf("interop: inbucket: %q is not an address", rcpt)
	}
	box := url.PathEscape(strings.ToLower(local))
	body, err := get(ctx, m.Client, m.API+"/api/v1/mailbox/"+box, maxListSize)
	if err != nil {
		return nil, fmt.Errorf("interop: inbucket: %w", err)
	}
	var list []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("interop: inbucket: mailbox listing: %w", err)
	}
	var found [][]byte
	for _, msg := range list {
		key := box + "/" + url.PathEscape(msg.ID)
		m.mu.Lock()
		raw, ok := m.raw[key]
		m.mu.Unlock()
		if !ok {
			if raw, err = get(ctx, m.Client, m.API+"/api/v1/mailbox/"+key+"/source", MaxMessageSize); err != nil {
				return nil, fmt.Errorf("interop: inbucket: %w", err)
			}
			m.mu.Lock()
			if m.raw == nil {
				m.raw = map[string][]byte{}
			}
			m.raw[key] = raw
			m.mu.Unlock()
		}
		if bytes.Contains(raw, []byte(token)) {
			found = append(found, raw)
		}
	}
	return found, nil
}
