package handlers

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"golang.org/x/text/encoding/htmlindex"

	"sockmail/internal/store"
	"sockmail/views"
)

const capturedPageSize = 50

func (h *Handler) capturedList(c echo.Context) error {
	before, _ := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	list, err := h.store.ListCaptured(c.Request().Context(), capturedPageSize, before)
	if err != nil {
		return fmt.Errorf("handlers: list captured: %w", err)
	}
	rows := make([]views.CapturedRow, 0, len(list))
	for _, m := range list {
		rows = append(rows, capturedRow(&m))
	}
	var older int64
	if len(list) == capturedPageSize {
		older = list[len(list)-1].ID
	}
	return render(c, http.StatusOK, views.CapturedList(h.page(c, "Captured mail", "captured"), rows, h.capture.Addr, older))
}

func capturedRow(m *store.Captured) views.CapturedRow {
	return views.CapturedRow{ID: m.ID, ReceivedAt: m.ReceivedAt, MailFrom: m.MailFrom, Rcpts: m.Rcpts, Subject: m.Subject, Size: m.Size, TLS: m.TLS}
}

func (h *Handler) loadCaptured(c echo.Context) (*store.Captured, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, echo.NewHTTPError(http.StatusNotFound, "There is no such message.")
	}
	m, err := h.store.Captured(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, echo.NewHTTPError(http.StatusNotFound, "There is no such message.")
	}
	if err != nil {
		return nil, fmt.Errorf("handlers: load captured: %w", err)
	}
	return m, nil
}

func (h *Handler) capturedView(c echo.Context) error {
	m, err := h.loadCaptured(c)
	if err != nil {
		return err
	}
	pm := parseMail(m.Raw)
	v := views.CapturedMessage{
		CapturedRow: capturedRow(m), RemoteAddr: m.RemoteAddr, AuthUser: m.AuthUser,
		Headers: pm.headers, Text: pm.text, Raw: toUTF8(m.Raw, ""),
	}
	if pm.err != nil {
		v.ParseError = pm.err.Error()
	}
	if pm.html != "" {
		v.HTMLDoc = htmlDocument(pm.html)
	}
	for i, p := range pm.parts {
		v.Attachments = append(v.Attachments, views.Part{Index: i, Filename: p.filename, ContentType: p.contentType, Size: int64(len(p.data))})
	}
	return render(c, http.StatusOK, views.CapturedView(h.page(c, "Captured mail", "captured"), v))
}

// htmlDocument wraps an HTML body for the sandboxed iframe: its own CSP
// forbids every remote load (images, styles, fonts, frames) and scripts;
// inline styles and data: images still show.
func htmlDocument(body string) string {
	return `<!DOCTYPE html><html><head><meta charset="utf-8">` +
		`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:">` +
		`<base target="_blank"></head><body>` + body + `</body></html>`
}

// capturedRaw downloads the message source.
func (h *Handler) capturedRaw(c echo.Context) error {
	m, err := h.loadCaptured(c)
	if err != nil {
		return err
	}
	attachment(c, fmt.Sprintf("captured-%d.eml", m.ID))
	return c.Blob(http.StatusOK, "message/rfc822", m.Raw)
}

// capturedPart downloads an attachment. It is always served as a download
// of type application/octet-stream, never rendered by the browser.
func (h *Handler) capturedPart(c echo.Context) error {
	m, err := h.loadCaptured(c)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(c.Param("n"))
	pm := parseMail(m.Raw)
	if err != nil || n < 0 || n >= len(pm.parts) {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such attachment.")
	}
	p := pm.parts[n]
	name := p.filename
	if name == "" {
		name = fmt.Sprintf("part-%d", n)
	}
	c.Response().Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	return c.Blob(http.StatusOK, "application/octet-stream", p.data)
}

// parsedMail is a message taken apart for display.
type parsedMail struct {
	headers []views.Header
	text    string
	html    string
	parts   []mailPart
	err     error
}

type mailPart struct {
	filename    string
	contentType string
	data        []byte
}

// Parsing limits: a hostile message must not make the viewer work forever.
const (
	maxMIMEDepth = 10
	maxMIMEParts = 200
)

// parseMail splits a message into decoded headers, the first text/plain
// and text/html bodies, and the other parts as attachments. It never
// fails outright: what cannot be parsed is reported in err and the raw
// source is still shown.
func parseMail(raw []byte) parsedMail {
	var pm parsedMail
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		pm.err = fmt.Errorf("header: %w", err)
		return pm
	}
	dec := &mime.WordDecoder{CharsetReader: charsetReader}
	for _, line := range headerOrder(raw) {
		for _, v := range msg.Header[line] {
			if d, err := dec.DecodeHeader(v); err == nil {
				v = d
			}
			pm.headers = append(pm.headers, views.Header{Name: line, Value: v})
		}
	}
	pm.walk(textproto(msg.Header), msg.Body, 0)
	return pm
}

// headerOrder lists the header field names in the order they first
// appear, canonicalised as net/mail keys them.
func headerOrder(raw []byte) []string {
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	seen := map[string]bool{}
	var out []string
	for _, line := range strings.Split(string(head), "\n") {
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key := canonicalKey(strings.TrimSpace(name))
		if !seen[key] {
			seen[key] = true
			out = append(out, key)
		}
	}
	return out
}

func canonicalKey(s string) string {
	return http.CanonicalHeaderKey(s)
}

type header interface{ Get(string) string }

type textproto mail.Header

func (h textproto) Get(k string) string { return mail.Header(h).Get(k) }

func (pm *parsedMail) walk(h header, body io.Reader, depth int) {
	if depth > maxMIMEDepth || len(pm.parts) > maxMIMEParts {
		pm.err = errors.New("too deeply nested or too many parts")
		return
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain; charset=us-ascii"
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil {
		mediaType, params = "application/octet-stream", nil
	}
	disp, dparams, _ := mime.ParseMediaType(h.Get("Content-Disposition"))
	filename := dparams["filename"]
	if filename == "" {
		filename = params["name"]
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				pm.err = fmt.Errorf("MIME structure: %w", err)
				return
			}
			pm.walk(p.Header, p, depth+1)
		}
	}
	data, err := io.ReadAll(decodeTransfer(h.Get("Content-Transfer-Encoding"), body))
	if err != nil {
		pm.err = fmt.Errorf("body: %w", err)
	}
	isAttachment := disp == "attachment" || filename != ""
	switch {
	case mediaType == "text/plain" && !isAttachment && pm.text == "":
		pm.text = toUTF8(data, params["charset"])
	case mediaType == "text/html" && !isAttachment && pm.html == "":
		pm.html = toUTF8(data, params["charset"])
	default:
		pm.parts = append(pm.parts, mailPart{filename: filename, contentType: mediaType, data: data})
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

func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil, fmt.Errorf("handlers: charset %q: %w", charset, err)
	}
	return enc.NewDecoder().Reader(input), nil
}

// toUTF8 converts text in charset to UTF-8; invalid bytes become U+FFFD.
func toUTF8(b []byte, charset string) string {
	cs := strings.ToLower(strings.TrimSpace(charset))
	if cs != "" && cs != "utf-8" && cs != "us-ascii" && cs != "utf8" {
		if enc, err := htmlindex.Get(cs); err == nil {
			if out, err := enc.NewDecoder().Bytes(b); err == nil {
				return string(out)
			}
		}
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
