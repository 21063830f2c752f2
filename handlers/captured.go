package handlers

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"sockmail/internal/mailread"
	"sockmail/internal/safetext"
	"sockmail/internal/store"
	"sockmail/views"
)

const capturedPageSize = 50

// CapturedStore is what the captured mail pages read and delete.
type CapturedStore interface {
	Captured(ctx context.Context, id int64) (*store.Captured, error)
	ListCaptured(ctx context.Context, limit int, before int64) ([]store.Captured, error)
	DeleteCaptured(ctx context.Context, id int64) error
	DeleteAllCaptured(ctx context.Context) (int, error)
	PruneCaptured(ctx context.Context, l store.CapturedLimits) (int, error)
}

// capturedRoutes adds the captured-mail actions to the admin group a
// (which checks the CSRF token of every POST).
func (h *Handler) capturedRoutes(a *echo.Group) {
	a.POST("/captured/:id/delete", h.capturedDelete)
	a.POST("/captured/delete", h.capturedDeleteAll)
}

// capturedDelete deletes one captured message.
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
	return c.Redirect(http.StatusSeeOther, "/captured")
}

// capturedDeleteAll deletes every captured message; the form must carry
// confirm=yes (a checkbox), so a stray click deletes nothing.
func (h *Handler) capturedDeleteAll(c echo.Context) error {
	if c.FormValue("confirm") != "yes" {
		flash(c, "Nothing was deleted: tick the box to confirm that every captured message should go.")
		return c.Redirect(http.StatusSeeOther, "/captured")
	}
	n, err := h.captured.DeleteAllCaptured(c.Request().Context())
	if err != nil {
		return fmt.Errorf("handlers: delete all captured: %w", err)
	}
	h.log.Info("captured messages deleted", "count", n)
	flash(c, fmt.Sprintf("%d captured messages were deleted.", n))
	return c.Redirect(http.StatusSeeOther, "/captured")
}

func (h *Handler) capturedList(c echo.Context) error {
	before, _ := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	list, err := h.captured.ListCaptured(c.Request().Context(), capturedPageSize, before)
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

// capturedRow is the list row of a captured message. Everything in it
// came from whoever wrote to the capture server: the views show it with
// views.Untrusted.
func capturedRow(m *store.Captured) views.CapturedRow {
	return views.CapturedRow{ID: m.ID, ReceivedAt: m.ReceivedAt, MailFrom: m.MailFrom, Rcpts: m.Rcpts, Subject: m.Subject, Size: m.Size, TLS: m.TLS}
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
	return render(c, http.StatusOK, views.CapturedView(h.page(c, "Captured mail", "captured"), capturedMessage(m)))
}

// capturedMessage is the view of a captured message, read by mailread.
// The views show its texts with views.Untrusted, and the HTML body in a
// sandbox.
func capturedMessage(m *store.Captured) views.CapturedMessage {
	pm := mailread.Parse(m.Raw)
	v := views.CapturedMessage{
		CapturedRow: capturedRow(m), RemoteAddr: m.RemoteAddr, AuthUser: m.AuthUser,
		Text: pm.Text, Raw: mailread.ToUTF8(m.Raw, ""),
	}
	for _, f := range pm.Header {
		v.Headers = append(v.Headers, views.Header{Name: f.Name, Value: f.Value})
	}
	if pm.Err != nil {
		v.ParseError = strings.TrimPrefix(pm.Err.Error(), "mailread: ")
	}
	if pm.HTML != "" {
		v.HTMLDoc = htmlDocument(pm.HTML)
	}
	for _, p := range pm.Parts {
		v.Attachments = append(v.Attachments, views.Part{Index: p.Index, Filename: p.Filename, ContentType: p.ContentType, Size: p.Size})
	}
	return v
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
	p, ok := mailread.Parse(m.Raw).Part(n)
	if err != nil || !ok {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such attachment.")
	}
	name := safetext.FileName(p.Filename)
	if name == "" {
		name = fmt.Sprintf("part-%d", n)
	}
	c.Response().Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	return c.Blob(http.StatusOK, "application/octet-stream", p.Bytes())
}
