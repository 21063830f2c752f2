package handlers

// Captured mail: what the built-in capture server received. A searchable,
// key-paginated list that shows new mail live (server-sent events); a
// message page with tabs (HTML, text, headers, raw source), attachments
// and inline images; delete one or all; release (captured_release.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/mailread"
	"sockmail/internal/safetext"
	"sockmail/internal/store"
	"sockmail/views"
)

// Captured mail limits.
const (
	capturedPageSize = 50
	// maxRawShown bounds the source shown on the raw tab; the download
	// has it all.
	maxRawShown = 1 << 20
	// defaultCapturedPoll is how often the live list looks for mail that
	// another instance sharing the database captured.
	defaultCapturedPoll = 5 * time.Second
)

// CapturedStore is what the captured mail pages read and delete.
type CapturedStore interface {
	Captured(ctx context.Context, id int64) (*store.Captured, error)
	SearchCaptured(ctx context.Context, f store.CapturedFilter) (store.CapturedPage, error)
	NewestCapturedID(ctx context.Context) (int64, error)
	DeleteCaptured(ctx context.Context, id int64) error
	DeleteAllCaptured(ctx context.Context) (int, error)
	PruneCaptured(ctx context.Context, l store.CapturedLimits) (int, error)
}

// CapturedNotifier tells the live captured-mail list that this process's
// capture server stored a message: the channel Changed returns is closed
// at the next one. *capture.Notifier is one.
type CapturedNotifier interface {
	Changed() <-chan struct{}
}

// capturedRoutes adds the captured-mail pages and actions to the admin
// group a (which checks the CSRF token of every POST).
func (h *Handler) capturedRoutes(a *echo.Group) {
	a.GET("/captured/events", h.capturedEvents)
	a.POST("/captured/:id/delete", h.capturedDelete)
	a.POST("/captured/delete", h.capturedDeleteAll)
	a.POST("/captured/:id/release", h.capturedRelease)
}

// capturedTerms checks a search and splits it into terms, or returns
// what is wrong with it.
func capturedTerms(q string) ([]store.CapturedTerm, string) {
	if len(q) > maxQuery {
		return nil, fmt.Sprintf("The search is %d characters long; at most %d.", len(q), maxQuery)
	}
	terms, err := store.ParseCapturedQuery(q)
	if errors.Is(err, store.ErrBadQuery) {
		return nil, fmt.Sprintf("The search has more than %d words or phrases; use fewer.", store.MaxCapturedTerms)
	}
	return terms, ""
}

// keptQuery is the search a page carries back to the list: trimmed, and
// dropped when it is longer than a search may be.
func keptQuery(q string) string {
	q = strings.TrimSpace(q)
	if len(q) > maxQuery {
		return ""
	}
	return q
}

// capturedListURL is the list with a search.
func capturedListURL(q string) string {
	if q == "" {
		return "/captured"
	}
	return "/captured?" + url.Values{"q": {q}}.Encode()
}

// capturedURL is a message's page with a tab and the list's search.
func capturedURL(id int64, tab, q string) string {
	v := url.Values{}
	if tab != "" {
		v.Set("tab", tab)
	}
	if q != "" {
		v.Set("q", q)
	}
	u := "/captured/" + strconv.FormatInt(id, 10)
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	return u
}

func (h *Handler) capturedList(c echo.Context) error {
	q := strings.TrimSpace(c.QueryParam("q"))
	before, _ := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	v := views.CapturedList{Addr: h.capture.Addr, Query: q, FirstURL: capturedListURL(q), Paged: before > 0}
	p := h.page(c, "Captured mail", "captured")
	terms, msg := capturedTerms(q)
	if msg != "" {
		v.Error, v.Query = msg, ""
		return render(c, http.StatusUnprocessableEntity, views.CapturedListPage(p, v))
	}
	page, err := h.captured.SearchCaptured(c.Request().Context(), store.CapturedFilter{Terms: terms, Limit: capturedPageSize, Before: max(before, 0)})
	if err != nil {
		return fmt.Errorf("handlers: list captured: %w", err)
	}
	for i := range page.Messages {
		v.Rows = append(v.Rows, capturedRow(&page.Messages[i], q))
	}
	v.Total, v.TotalCapped = page.Total, page.TotalCapped
	if page.NextBefore > 0 {
		next := url.Values{"before": {strconv.FormatInt(page.NextBefore, 10)}}
		if q != "" {
			next.Set("q", q)
		}
		v.NextURL = "/captured?" + next.Encode()
	}
	if before <= 0 {
		// The first page lists live: from the newest message it shows, or
		// from the newest of all when it shows none (none matched).
		after := int64(0)
		if len(page.Messages) > 0 {
			after = page.Messages[0].ID
		} else if after, err = h.captured.NewestCapturedID(c.Request().Context()); err != nil {
			return fmt.Errorf("handlers: list captured: %w", err)
		}
		ev := url.Values{"after": {strconv.FormatInt(after, 10)}}
		if q != "" {
			ev.Set("q", q)
		}
		v.EventsURL = "/captured/events?" + ev.Encode()
	}
	return render(c, http.StatusOK, views.CapturedListPage(p, v))
}

// capturedRow is the list row of a captured message. Everything in it
// came from whoever wrote to the capture server: the views show it with
// views.Untrusted.
func capturedRow(m *store.Captured, q string) views.CapturedRow {
	return views.CapturedRow{ID: m.ID, ReceivedAt: m.ReceivedAt, MailFrom: m.MailFrom, Rcpts: m.Rcpts, Subject: m.Subject,
		Size: m.Size, TLS: m.TLS, URL: capturedURL(m.ID, "", q), Query: q}
}

// capturedEvent is a newly captured message as the live list gets it:
// its row, rendered as the list renders it.
type capturedEvent struct {
	ID   int64  `json:"id"`
	HTML string `json:"html"`
}

// capturedEvents streams, as server-sent events, the messages captured
// after ?after= (an id) that match ?q=: one "message" event each, oldest
// first, as they arrive. This process's capture server wakes it at once
// (CapturedNotifier); mail captured by another instance sharing the
// database is found by a periodic look at the newest id.
func (h *Handler) capturedEvents(c echo.Context) error {
	q := strings.TrimSpace(c.QueryParam("q"))
	terms, msg := capturedTerms(q)
	if msg != "" {
		return echo.NewHTTPError(http.StatusBadRequest, msg)
	}
	after, _ := strconv.ParseInt(c.QueryParam("after"), 10, 64)
	after = max(after, 0)
	ctx := c.Request().Context()
	stream := openEventStream(c)
	csrf := csrfToken(c)
	// send writes the matching messages above after, oldest first.
	send := func() error {
		for {
			page, err := h.captured.SearchCaptured(ctx, store.CapturedFilter{Terms: terms, After: after, Limit: capturedPageSize})
			if err != nil {
				return fmt.Errorf("handlers: captured events: %w", err)
			}
			// A page is the newest matches: take the oldest of them
			// first, then look again for the rest.
			for i := len(page.Messages) - 1; i >= 0; i-- {
				m := &page.Messages[i]
				var b strings.Builder
				if err := views.CapturedRowItem(capturedRow(m, q), csrf).Render(ctx, &b); err != nil {
					return fmt.Errorf("handlers: captured events: render: %w", err)
				}
				data, err := json.Marshal(capturedEvent{ID: m.ID, HTML: b.String()})
				if err != nil {
					return fmt.Errorf("handlers: captured events: %w", err)
				}
				if err := stream.send("message", data); err != nil {
					return nil // the browser left
				}
			}
			if len(page.Messages) == 0 {
				return nil
			}
			after = page.Messages[0].ID
			if len(page.Messages) < capturedPageSize {
				return nil
			}
		}
	}
	poll := time.NewTicker(h.capturedPoll)
	defer poll.Stop()
	ping := time.NewTicker(ssePing)
	defer ping.Stop()
	newest := int64(-1)
	for {
		// Take the channel before reading the store: a message stored in
		// between closes it, so none is missed.
		var changed <-chan struct{}
		if h.capturedLive != nil {
			changed = h.capturedLive.Changed()
		}
		if err := send(); err != nil {
			return err
		}
	wait:
		for {
			select {
			case <-changed:
				break wait
			case <-poll.C:
				n, err := h.captured.NewestCapturedID(ctx)
				if err != nil {
					return fmt.Errorf("handlers: captured events: %w", err)
				}
				if n != newest {
					newest = n
					break wait
				}
			case <-ping.C:
				if stream.ping() != nil {
					return nil // the browser left
				}
			case <-ctx.Done():
				return nil
			case <-h.sends.Closing():
				return nil
			}
		}
	}
}

// capturedDelete deletes one captured message and returns to the list,
// with the search it came from (form field q).
func (h *Handler) capturedDelete(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such message.")
	}
	err = h.captured.DeleteCaptured(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such message.")
	}
	if err != nil {
		return fmt.Errorf("handlers: delete captured: %w", err)
	}
	h.log.Info("captured message deleted", "captured", id)
	flash(c, fmt.Sprintf("Captured message %d was deleted.", id))
	return c.Redirect(http.StatusSeeOther, capturedListURL(keptQuery(c.FormValue("q"))))
}

// capturedDeleteAll deletes every captured message; the form must carry
// confirm=yes (a checkbox), so a stray click deletes nothing. It returns
// to the list with its search.
func (h *Handler) capturedDeleteAll(c echo.Context) error {
	back := capturedListURL(keptQuery(c.FormValue("q")))
	if c.FormValue("confirm") != "yes" {
		flash(c, "Nothing was deleted: tick the box to confirm that every captured message should go.")
		return c.Redirect(http.StatusSeeOther, back)
	}
	n, err := h.captured.DeleteAllCaptured(c.Request().Context())
	if err != nil {
		return fmt.Errorf("handlers: delete all captured: %w", err)
	}
	h.log.Info("captured messages deleted", "count", n)
	flash(c, fmt.Sprintf("%d captured messages were deleted.", n))
	return c.Redirect(http.StatusSeeOther, back)
}

func (h *Handler) loadCaptured(c echo.Context) (*store.Captured, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, echo.NewHTTPError(http.StatusNotFound, "There is no such message.")
	}
	m, err := h.captured.Captured(c.Request().Context(), id)
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
	q := keptQuery(c.QueryParam("q"))
	v := capturedMessage(m, c.QueryParam("tab"), q)
	if v.Release, err = h.releaseFormView(c.Request().Context(), releaseInput{Rcpts: strings.Join(m.Rcpts, "\n")}, nil, q); err != nil {
		return err
	}
	return render(c, http.StatusOK, views.CapturedView(h.page(c, "Captured mail", "captured"), v))
}

// capturedMessage is the view of a captured message, read by mailread,
// with tab selected (the HTML body's if it has one, else the text's, when
// tab names none). The views show its texts with views.Untrusted, and the
// HTML body in a sandbox.
func capturedMessage(m *store.Captured, tab, q string) views.CapturedMessage {
	pm := mailread.Parse(m.Raw)
	v := views.CapturedMessage{
		CapturedRow: capturedRow(m, q), RemoteAddr: m.RemoteAddr, AuthUser: m.AuthUser,
		Text: pm.Text, ListURL: capturedListURL(q),
	}
	raw := m.Raw
	if len(raw) > maxRawShown {
		raw, v.RawTruncated = raw[:maxRawShown], true
	}
	v.Raw = mailread.ToUTF8(raw, "")
	for _, f := range pm.Header {
		v.Headers = append(v.Headers, views.Header{Name: f.Name, Value: f.Value})
	}
	if pm.Err != nil {
		v.ParseError = strings.TrimPrefix(pm.Err.Error(), "mailread: ")
	}
	var inline map[int]bool
	if pm.HTML != "" {
		var body string
		body, inline = rewriteCIDs(pm.HTML, m.ID, pm.Parts)
		v.HTMLDoc = htmlDocument(body)
		v.HTMLSameOrigin = len(inline) > 0
	}
	for _, p := range pm.Parts {
		v.Attachments = append(v.Attachments, views.Part{Index: p.Index, Filename: p.Filename, ContentType: p.ContentType,
			Size: p.Size, Inline: inline[p.Index]})
	}
	v.Tabs = []views.CapturedTab{
		{Name: views.TabHTML, Label: "HTML"}, {Name: views.TabText, Label: "Text"},
		{Name: views.TabHeaders, Label: "Headers"}, {Name: views.TabRaw, Label: "Raw source"},
	}
	v.Tab = views.TabText
	if v.HTMLDoc != "" {
		v.Tab = views.TabHTML
	}
	for i := range v.Tabs {
		v.Tabs[i].URL = capturedURL(m.ID, v.Tabs[i].Name, q)
		if v.Tabs[i].Name == tab {
			v.Tab = tab
		}
	}
	return v
}

// cidRef is a cid: URL (RFC 2392) in an HTML body: in an attribute or a
// CSS url().
// It compiles at first use, not at every start of the program
// (TestOwnPackageInitsAreLight).
var cidRef = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)\bcid:[^"'\s)>]+`) })

// rewriteCIDs points the cid: references of an HTML body at the parts
// they name (their download URLs) and returns which parts it showed.
// References to no part stay as they are (and show nothing).
func rewriteCIDs(body string, id int64, parts []mailread.Part) (string, map[int]bool) {
	byCID := map[string]int{}
	for _, p := range parts {
		if p.ContentID != "" {
			byCID[p.ContentID] = p.Index
		}
	}
	if len(byCID) == 0 {
		return body, nil
	}
	shown := map[int]bool{}
	out := cidRef().ReplaceAllStringFunc(body, func(ref string) string {
		cid := ref[len("cid:"):]
		if u, err := url.PathUnescape(cid); err == nil {
			cid = u
		}
		n, ok := byCID[cid]
		if !ok {
			return ref
		}
		shown[n] = true
		return "/captured/" + strconv.FormatInt(id, 10) + "/parts/" + strconv.Itoa(n)
	})
	return out, shown
}

// htmlDocument wraps an HTML body for the sandboxed iframe: its own CSP
// forbids scripts and every remote load (images, styles, fonts, frames);
// inline styles, data: images and the message's own parts (inline
// images, rewritten by rewriteCIDs) still show.
func htmlDocument(body string) string {
	return `<!DOCTYPE html><html><head><meta charset="utf-8">` +
		`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; font-src data:">` +
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

// capturedPart downloads an attachment, or serves an inline image to the
// HTML body. It has the part's own media type but is always a download
// (Content-Disposition: attachment) that the browser may not sniff, and
// a document it would open is sandboxed without scripts by its CSP.
func (h *Handler) capturedPart(c echo.Context) error {
	m, err := h.loadCaptured(c)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(c.Param("n"))
	p, ok := mailread.Parse(m.Raw).Part(n)
	if err != nil || !ok {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such attachment.")
	}
	name := safetext.FileName(p.Filename)
	if name == "" {
		name = fmt.Sprintf("part-%d", n)
	}
	ctype := p.ContentType
	if mt, _, err := mime.ParseMediaType(ctype); err != nil || !strings.Contains(mt, "/") {
		ctype = "application/octet-stream"
	}
	hd := c.Response().Header()
	hd.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	hd.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	hd.Set("X-Content-Type-Options", "nosniff")
	return c.Blob(http.StatusOK, ctype, p.Bytes())
}
