package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/api"
	"sockmail/internal/store"
)

// apiOutboxItem is an outbox message as the API lists it: what the
// /outbox page's row shows.
type apiOutboxItem struct {
	ID            int64      `json:"id"`
	CreatedAt     time.Time  `json:"created_at"`
	Status        string     `json:"status"`
	MailFrom      string     `json:"mail_from"`
	Rcpts         []string   `json:"rcpts"`
	Subject       string     `json:"subject"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	ProfileID     int64      `json:"profile_id"`
	FormID        int64      `json:"form_id,omitempty"`
	SubmissionID  int64      `json:"submission_id,omitempty"`
	LastSendURL   string     `json:"last_send_url,omitempty"`
	CanRetry      bool       `json:"can_retry"`
	CanCancel     bool       `json:"can_cancel"`
}

// apiOutboxRoutes adds the outbox routes (scope admin).
func (h *Handler) apiOutboxRoutes(g *echo.Group) {
	mw := h.apiGuard(apiBodyLimit, api.ScopeAdmin)
	g.GET("/outbox", h.apiOutboxList, mw...)
	g.POST("/outbox/:id/retry", h.apiOutboxRetry, mw...)
	g.POST("/outbox/:id/cancel", h.apiOutboxCancel, mw...)
}

// apiOutboxItemOf turns a stored item into its API form.
func apiOutboxItemOf(it *store.OutboxItem) apiOutboxItem {
	o := apiOutboxItem{ID: it.ID, CreatedAt: it.CreatedAt, Status: string(it.Status), MailFrom: it.MailFrom, Rcpts: it.Rcpts,
		Subject: it.Subject, Attempts: it.Attempts, LastError: it.LastError, ProfileID: it.ProfileID,
		CanRetry:  it.Status == store.OutboxFailed || it.Status == store.OutboxUnknown || it.Status == store.OutboxCancelled,
		CanCancel: it.Status == store.OutboxQueued || it.Status == store.OutboxHeld,
	}
	if o.Rcpts == nil {
		o.Rcpts = []string{}
	}
	if !it.NextAttemptAt.IsZero() {
		t := it.NextAttemptAt
		o.NextAttemptAt = &t
	}
	if !it.ExpiresAt.IsZero() {
		t := it.ExpiresAt
		o.ExpiresAt = &t
	}
	if it.FormID != nil {
		o.FormID = *it.FormID
	}
	if it.SubmissionID != nil {
		o.SubmissionID = *it.SubmissionID
	}
	if it.LastSendID != nil {
		o.LastSendURL = "/api/v1/sends/" + strconv.FormatInt(*it.LastSendID, 10)
	}
	return o
}

// apiOutboxList lists the outbox newest first with the /outbox page's
// filters (status, form) and keys (before), the same store queries, and
// the count of each status.
func (h *Handler) apiOutboxList(c echo.Context) error {
	ctx := c.Request().Context()
	q := c.QueryParams()
	status := store.OutboxStatus(q.Get("status"))
	if status != "" && !slices.Contains(outboxStatuses, status) {
		return api.NewProblem("invalid-filter", "Invalid filter", http.StatusUnprocessableEntity,
			fmt.Sprintf("status: one of %v.", statusNames(outboxStatuses)), "")
	}
	var formID, before int64
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"form", &formID}, {"before", &before}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return api.NewProblem("invalid-filter", "Invalid filter", http.StatusUnprocessableEntity, p.name+": a positive number.", "")
			}
			*p.dst = n
		}
	}
	counts, err := h.queue.OutboxCounts(ctx)
	if err != nil {
		return fmt.Errorf("handlers: api outbox counts: %w", err)
	}
	items, err := h.queue.ListOutbox(ctx, store.OutboxFilter{Status: status, FormID: formID, Limit: queuePageSize + 1, Before: before})
	if err != nil {
		return fmt.Errorf("handlers: api list outbox: %w", err)
	}
	out := struct {
		Items  []apiOutboxItem `json:"items"`
		Counts map[string]int  `json:"counts"`
		Next   string          `json:"next,omitempty"`
	}{Items: []apiOutboxItem{}, Counts: map[string]int{}}
	for _, s := range outboxStatuses {
		out.Counts[string(s)] = counts[s]
	}
	if len(items) > queuePageSize {
		items = items[:queuePageSize]
		v := url.Values{"before": {strconv.FormatInt(items[len(items)-1].ID, 10)}}
		if status != "" {
			v.Set("status", string(status))
		}
		if formID > 0 {
			v.Set("form", strconv.FormatInt(formID, 10))
		}
		out.Next = "/api/v1/outbox?" + v.Encode()
	}
	for i := range items {
		out.Items = append(out.Items, apiOutboxItemOf(&items[i]))
	}
	return c.JSON(http.StatusOK, out)
}

// apiOutboxRetry queues a failed, unknown or cancelled message again, as
// the /outbox page's Retry does.
func (h *Handler) apiOutboxRetry(c echo.Context) error {
	return h.apiOutboxAction(c, "retry", func(id int64) error { return h.queue.RetryOutbox(c.Request().Context(), id, h.now()) },
		"Only failed, unknown or cancelled messages can be retried.")
}

// apiOutboxCancel cancels a queued or held message, as the /outbox
// page's Cancel does.
func (h *Handler) apiOutboxCancel(c echo.Context) error {
	return h.apiOutboxAction(c, "cancel", func(id int64) error { return h.queue.CancelOutbox(c.Request().Context(), id) },
		"Only queued or held messages can be cancelled; this one is being sent or is finished.")
}

// apiOutboxAction runs an outbox action and answers the item as it is
// after it: 404 for an unknown item, 409 when its state does not allow
// the action.
func (h *Handler) apiOutboxAction(c echo.Context, what string, act func(id int64) error, wrongState string) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such message in the outbox.")
	}
	switch err := act(id); {
	case errors.Is(err, store.ErrNotFound):
		return echo.NewHTTPError(http.StatusNotFound, "There is no such message in the outbox.")
	case errors.Is(err, store.ErrWrongState):
		return api.NewProblem("wrong-state", "Not possible in this state", http.StatusConflict, wrongState, "")
	case err != nil:
		return fmt.Errorf("handlers: api outbox %s: %w", what, err)
	}
	if h.contact.kick != nil {
		h.contact.kick.Kick()
	}
	h.log.Info("outbox "+what, "outbox", id, "token", tokenName(c))
	it, err := h.queue.OutboxItem(c.Request().Context(), id)
	if err != nil {
		return fmt.Errorf("handlers: api outbox %s: read back: %w", what, err)
	}
	return c.JSON(http.StatusOK, apiOutboxItemOf(it))
}
