package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/api"
	"sockmail/internal/mailread"
	"sockmail/internal/store"
)

// apiCaptured is a captured message as the API lists it.
type apiCaptured struct {
	ID         int64     `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	MailFrom   string    `json:"mail_from"`
	Rcpts      []string  `json:"rcpts"`
	Subject    string    `json:"subject"`
	Size       int       `json:"size"`
	TLS        bool      `json:"tls"`
	AuthUser   string    `json:"auth_user,omitempty"`
	URL        string    `json:"url"`
	Raw        string    `json:"raw_url"`
}

// apiCapturedRoutes adds the captured-mail routes (scope captured).
func (h *Handler) apiCapturedRoutes(g *echo.Group) {
	mw := h.apiGuard(apiBodyLimit, api.ScopeCaptured)
	g.GET("/captured", h.apiCapturedList, mw...)
	g.GET("/captured/:id", h.apiCapturedMessage, mw...)
	g.GET("/captured/:id/raw", h.capturedRaw, mw...)
	g.GET("/captured/:id/parts/:n", h.capturedPart, mw...)
	g.DELETE("/captured/:id", h.apiCapturedDelete, mw...)
}

// apiCapturedList lists captured mail newest first with the /captured
// page's search (q) and keys (before), the same store query.
func (h *Handler) apiCapturedList(c echo.Context) error {
	q := strings.TrimSpace(c.QueryParam("q"))
	before, _ := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	terms, msg := capturedTerms(q)
	if msg != "" {
		return api.NewProblem("invalid-search", "Invalid search", http.StatusUnprocessableEntity, "q: "+msg, "")
	}
	page, err := h.captured.SearchCaptured(c.Request().Context(), store.CapturedFilter{Terms: terms, Limit: capturedPageSize, Before: max(before, 0)})
	if err != nil {
		return fmt.Errorf("handlers: api list captured: %w", err)
	}
	out := struct {
		Messages    []apiCaptured `json:"messages"`
		Total       int           `json:"total"`
		TotalCapped bool          `json:"total_capped"`
		Next        string        `json:"next,omitempty"`
	}{Messages: []apiCaptured{}, Total: page.Total, TotalCapped: page.TotalCapped}
	for i := range page.Messages {
		out.Messages = append(out.Messages, apiCapturedOf(&page.Messages[i]))
	}
	if page.NextBefore > 0 {
		v := url.Values{"before": {strconv.FormatInt(page.NextBefore, 10)}}
		if q != "" {
			v.Set("q", q)
		}
		out.Next = "/api/v1/captured?" + v.Encode()
	}
	return c.JSON(http.StatusOK, out)
}

// apiCapturedDelete deletes one captured message: 204, or 404.
func (h *Handler) apiCapturedDelete(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such message.")
	}
	if err := h.captured.DeleteCaptured(c.Request().Context(), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return echo.NewHTTPError(http.StatusNotFound, "There is no such message.")
		}
		return fmt.Errorf("handlers: api delete captured: %w", err)
	}
	h.log.Info("captured message deleted", "captured", id, "token", tokenName(c))
	return c.NoContent(http.StatusNoContent)
}

// tokenName is the name of the request's API token, "" without one.
func tokenName(c echo.Context) string {
	if t, _ := c.Get(ctxToken).(*store.APIToken); t != nil {
		return t.Name
	}
	return ""
}

// apiCapturedPart is a MIME part of a captured message (internal/mailread
// Part): an attachment, an inline image or another text part.
type apiCapturedPart struct {
	Index       int    `json:"index"`
	Filename    string `json:"filename,omitempty"`
	ContentType string `json:"content_type"`
	Disposition string `json:"disposition,omitempty"`
	ContentID   string `json:"content_id,omitempty"`
	Size        int64  `json:"size"`
	URL         string `json:"url"`
}

// apiHeader is a header field, unfolded and decoded.
type apiHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// apiCapturedMessage answers a captured message taken apart as its page
// shows it (internal/mailread): header fields in order, the text and
// HTML bodies, the other parts with their download URLs.
func (h *Handler) apiCapturedMessage(c echo.Context) error {
	m, err := h.loadCaptured(c)
	if err != nil {
		return err
	}
	pm := mailread.Parse(m.Raw)
	base := "/api/v1/captured/" + strconv.FormatInt(m.ID, 10)
	out := struct {
		apiCaptured
		RemoteAddr string            `json:"remote_addr,omitempty"`
		Headers    []apiHeader       `json:"headers"`
		Text       string            `json:"text"`
		HTML       string            `json:"html"`
		Parts      []apiCapturedPart `json:"parts"`
		ParseError string            `json:"parse_error,omitempty"`
	}{apiCaptured: apiCapturedOf(m), RemoteAddr: m.RemoteAddr, Headers: []apiHeader{}, Text: pm.Text, HTML: pm.HTML, Parts: []apiCapturedPart{}}
	for _, f := range pm.Header {
		out.Headers = append(out.Headers, apiHeader{Name: f.Name, Value: f.Value})
	}
	for _, p := range pm.Parts {
		out.Parts = append(out.Parts, apiCapturedPart{Index: p.Index, Filename: p.Filename, ContentType: p.ContentType,
			Disposition: p.Disposition, ContentID: p.ContentID, Size: p.Size, URL: base + "/parts/" + strconv.Itoa(p.Index)})
	}
	if pm.Err != nil {
		out.ParseError = strings.TrimPrefix(pm.Err.Error(), "mailread: ")
	}
	return c.JSON(http.StatusOK, out)
}

// apiCapturedOf is a captured message as the API lists it.
func apiCapturedOf(m *store.Captured) apiCaptured {
	rcpts := m.Rcpts
	if rcpts == nil {
		rcpts = []string{}
	}
	return apiCaptured{ID: m.ID, ReceivedAt: m.ReceivedAt, MailFrom: m.MailFrom, Rcpts: rcpts,
		Subject: m.Subject, Size: len(m.Raw), TLS: m.TLS, AuthUser: m.AuthUser,
		URL: "/api/v1/captured/" + strconv.FormatInt(m.ID, 10), Raw: "/api/v1/captured/" + strconv.FormatInt(m.ID, 10) + "/raw"}
}
