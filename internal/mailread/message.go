package mailread

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
)

// Parsing limits: a hostile message must not make the reader work
// forever nor hold the whole tree.
const (
	// MaxDepth is how deeply multiparts may nest.
	MaxDepth = 10
	// MaxParts is how many MIME entities (multiparts and leaves) are
	// walked.
	MaxParts = 200
)

// ErrLimit reports a message more deeply nested or with more parts than
// the limits allow; what came before the limit is still read.
var ErrLimit = errors.New("mailread: too deeply nested or too many parts")

// Field is one header field as it appears in the message, its value
// unfolded and its RFC 2047 encoded-words decoded.
type Field struct {
	Name, Value string
}

// Part is a leaf of the MIME tree that is not the chosen text or HTML
// body: an attachment, an inline image, another text part.
type Part struct {
	// Index numbers the parts of a message from 0, in order.
	Index int
	// Filename is the decoded file name (Content-Disposition filename or
	// Content-Type name, RFC 2231 or RFC 2047 encoded), or "".
	Filename string
	// ContentType is the lower-case media type, without parameters.
	ContentType string
	// Disposition is "attachment", "inline" or "" (none given).
	Disposition string
	// ContentID is the Content-ID without angle brackets, or "".
	ContentID string
	// Size is the decoded size in bytes.
	Size int64
	data []byte
}

// Bytes returns the part's content with its transfer encoding decoded.
func (p *Part) Bytes() []byte { return p.data }

// Message is a message taken apart for display.
type Message struct {
	// Header lists the header fields in the order they appear.
	Header []Field
	// Text and HTML are the first text/plain and text/html bodies that
	// are not attachments, converted to UTF-8.
	Text, HTML string
	// Parts lists every other leaf.
	Parts []Part
	// Err says what could not be parsed (nil if all was); the fields
	// above hold what was read before it.
	Err error

	entities int
}

// Get returns the decoded value of the first header field named name
// (case-insensitive), or "".
func (m *Message) Get(name string) string {
	for _, f := range m.Header {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Part returns the part numbered n, or false when there is none.
func (m *Message) Part(n int) (*Part, bool) {
	if n < 0 || n >= len(m.Parts) {
		return nil, false
	}
	return &m.Parts[n], true
}

// Parse takes a message apart: its header fields decoded, the MIME tree
// walked within MaxDepth and MaxParts with transfer encodings undone,
// text bodies converted to UTF-8. It never fails outright: what cannot
// be parsed is reported in Err and the rest is kept.
func Parse(raw []byte) *Message {
	m := &Message{Header: Fields(raw)}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		m.Err = fmt.Errorf("mailread: header: %w", err)
		return m
	}
	m.walk(msg.Header, msg.Body, 0)
	return m
}

// Fields returns the header fields of a message (or of a header block)
// in order, unfolded and decoded. Lines that are not fields are skipped.
func Fields(raw []byte) []Field {
	var out []Field
	for _, line := range headerLines(raw) {
		name, value, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			continue
		}
		out = append(out, Field{Name: name, Value: DecodeHeader(strings.TrimSpace(value))})
	}
	return out
}

// HeaderText returns a header block with every field unfolded and
// decoded, one "Name: value" line each, for display.
func HeaderText(block string) string {
	var b strings.Builder
	for _, f := range Fields([]byte(block)) {
		b.WriteString(f.Name + ": " + f.Value + "\n")
	}
	return b.String()
}

// headerLines returns the unfolded lines of the header, up to the first
// empty line.
func headerLines(raw []byte) []string {
	var lines []string
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case len(line) == 0:
			return lines
		case (line[0] == ' ' || line[0] == '\t') && len(lines) > 0:
			lines[len(lines)-1] += string(line)
		default:
			lines = append(lines, string(line))
		}
	}
	return lines
}

// getter is the header of an entity: mail.Header or textproto.MIMEHeader.
type getter interface{ Get(string) string }

// entity is what the header of one MIME entity says.
type entity struct {
	mediaType   string
	charset     string
	boundary    string
	disposition string
	filename    string
	contentID   string
	cte         string
}

func readEntity(h getter) entity {
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain; charset=us-ascii"
	}
	mt, params, err := mediaType(ct)
	if err != nil || mt == "" {
		mt = "application/octet-stream"
	}
	disp, dparams, _ := mediaType(h.Get("Content-Disposition"))
	e := entity{
		mediaType: mt, charset: params["charset"], boundary: params["boundary"], disposition: disp,
		filename: dparams["filename"], cte: h.Get("Content-Transfer-Encoding"),
		contentID: strings.Trim(strings.TrimSpace(h.Get("Content-Id")), "<>"),
	}
	if e.filename == "" {
		e.filename = params["name"]
	}
	e.filename = DecodeHeader(e.filename)
	return e
}

func (m *Message) walk(h getter, body io.Reader, depth int) {
	m.entities++
	if depth > MaxDepth || m.entities > MaxParts {
		m.Err = ErrLimit
		return
	}
	e := readEntity(h)
	if strings.HasPrefix(e.mediaType, "multipart/") {
		m.walkMultipart(e, body, depth)
		return
	}
	data, err := io.ReadAll(decodeTransfer(e.cte, body))
	if err != nil && m.Err == nil {
		m.Err = fmt.Errorf("mailread: body: %w", err)
	}
	isAttachment := e.disposition == "attachment" || e.filename != ""
	switch {
	case e.mediaType == "text/plain" && !isAttachment && m.Text == "":
		m.Text = ToUTF8(data, e.charset)
	case e.mediaType == "text/html" && !isAttachment && m.HTML == "":
		m.HTML = ToUTF8(data, e.charset)
	default:
		m.Parts = append(m.Parts, Part{
			Index: len(m.Parts), Filename: e.filename, ContentType: e.mediaType, Disposition: e.disposition,
			ContentID: e.contentID, Size: int64(len(data)), data: data,
		})
	}
}

func (m *Message) walkMultipart(e entity, body io.Reader, depth int) {
	if e.boundary == "" {
		m.Err = fmt.Errorf("mailread: %s without a boundary", e.mediaType)
		return
	}
	mr := multipart.NewReader(body, e.boundary)
	for !errors.Is(m.Err, ErrLimit) {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			m.Err = fmt.Errorf("mailread: MIME structure: %w", err)
			return
		}
		m.walk(p.Header, p, depth+1)
	}
}

func decodeTransfer(cte string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &stripSpace{r: r})
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	}
	return r
}

// stripSpace drops line breaks and spaces so base64 decodes across lines.
type stripSpace struct{ r io.Reader }

func (s *stripSpace) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	j := 0
	for _, b := range p[:n] {
		if b != '\r' && b != '\n' && b != ' ' && b != '\t' {
			p[j] = b
			j++
		}
	}
	return j, err
}

// mediaType is mime.ParseMediaType with RFC 2231 extended parameters in
// any charset CharsetReader knows (the standard library decodes only
// UTF-8 and US-ASCII ones and drops the others).
func mediaType(v string) (string, map[string]string, error) {
	if v == "" {
		return "", map[string]string{}, nil
	}
	rewritten, charsets := asUTF8Params(v)
	mt, params, err := mime.ParseMediaType(rewritten)
	if params == nil {
		params = map[string]string{}
	}
	for name, cs := range charsets {
		if val, ok := params[name]; ok {
			params[name] = ToUTF8([]byte(val), cs)
		}
	}
	return mt, params, err
}

// asUTF8Params relabels the charset of every RFC 2231 extended parameter
// (name*=charset'lang'%xx or name*0*=...) as utf-8, so that
// mime.ParseMediaType percent-decodes its bytes, and returns the real
// charsets by lower-case parameter name.
func asUTF8Params(v string) (string, map[string]string) {
	var b strings.Builder
	charsets := map[string]string{}
	rest := v
	for {
		i := strings.Index(rest, "*=")
		if i < 0 {
			break
		}
		name := paramName(rest[:i])
		b.WriteString(rest[:i+2])
		rest = rest[i+2:]
		cs, after, ok := strings.Cut(rest, "'")
		cs = strings.TrimSpace(cs)
		if !ok || name == "" || strings.Contains(name, "*") || strings.ContainsAny(cs, ";\"=") {
			continue
		}
		switch strings.ToLower(cs) {
		case "utf-8", "us-ascii", "":
			continue
		}
		charsets[name] = cs
		b.WriteString("utf-8'")
		rest = after
	}
	b.WriteString(rest)
	return b.String(), charsets
}

// paramName returns the lower-case parameter name that s ends with
// (before "*" or "*0*").
func paramName(s string) string {
	s = strings.TrimSuffix(s, "*0")
	k := strings.LastIndexAny(s, "; \t")
	return strings.ToLower(s[k+1:])
}
