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
	Raw        string    `json:"raw_url"`
}

// apiCapturedRoutes adds the captured-mail routes (scope captured).
func (h *Handler) apiCapturedRoutes(g *echo.Group) {
	mw := h.apiGuard(apiBodyLimit, api.ScopeCaptured)
	g.GET("/captured", h.apiCapturedList, mw...)
	g.GET("/captured/:id/raw", h.capturedRaw, mw...)
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
	for _, m := range page.Messages {
		out.Messages = append(out.Messages, apiCaptured{ID: m.ID, ReceivedAt: m.ReceivedAt, MailFrom: m.MailFrom, Rcpts: m.Rcpts,
			Subject: m.Subject, Size: len(m.Raw), TLS: m.TLS, AuthUser: m.AuthUser,
			Raw: "/api/v1/captured/" + strconv.FormatInt(m.ID, 10) + "/raw"})
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
