package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"sockmail/internal/contact"
	"sockmail/internal/safetext"
	"sockmail/internal/store"
	"sockmail/views"
)

// Admin pages of the queue: the outbox (every message a form has to
// deliver, with its attempts and last error; retry, cancel), and the
// submissions of a form (blocked ones can be released).

// queuePageSize is the length of a queue page.
const queuePageSize = 50

// outboxStatuses are the outbox statuses in the order the page shows them.
var outboxStatuses = []store.OutboxStatus{store.OutboxQueued, store.OutboxSending, store.OutboxHeld, store.OutboxSent,
	store.OutboxFailed, store.OutboxUnknown, store.OutboxCancelled}

// submissionStatuses are the submission statuses an admin filters by.
var submissionStatuses = []store.SubmissionStatus{store.SubmissionQueued, store.SubmissionBlocked, store.SubmissionReleased,
	store.SubmissionSent, store.SubmissionFailed, store.SubmissionUnknown, store.SubmissionCancelled}

// cursor reads the "before" keyset cursor of a list page.
func cursor(c echo.Context) int64 {
	n, err := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// statusParam reads a status filter, keeping only known ones.
func statusParam[S ~string](c echo.Context, known []S) S {
	s := c.QueryParam("status")
	for _, k := range known {
		if s == string(k) {
			return k
		}
	}
	return ""
}

// statusNames are statuses as the views show them.
func statusNames[S ~string](list []S) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = string(s)
	}
	return out
}

// formNames maps form ids to names for the queue pages.
func (h *Handler) formNames(c echo.Context) (map[int64]string, error) {
	list, err := h.forms.Forms(c.Request().Context())
	if err != nil {
		return nil, fmt.Errorf("handlers: list forms: %w", err)
	}
	names := make(map[int64]string, len(list))
	for _, f := range list {
		names[f.ID] = f.Name
	}
	return names, nil
}

func (h *Handler) outboxPage(c echo.Context) error {
	ctx := c.Request().Context()
	counts, err := h.queue.OutboxCounts(ctx)
	if err != nil {
		return fmt.Errorf("handlers: outbox counts: %w", err)
	}
	status := statusParam(c, outboxStatuses)
	var formID int64
	if id, err := strconv.ParseInt(c.QueryParam("form"), 10, 64); err == nil && id > 0 {
		formID = id
	}
	items, err := h.queue.ListOutbox(ctx, store.OutboxFilter{Status: status, FormID: formID, Limit: queuePageSize + 1, Before: cursor(c)})
	if err != nil {
		return fmt.Errorf("handlers: list outbox: %w", err)
	}
	names, err := h.formNames(c)
	if err != nil {
		return err
	}
	v := views.OutboxPage{Status: string(status), FormID: formID}
	total := 0
	for _, s := range outboxStatuses {
		v.Counts = append(v.Counts, views.StatusCount{Status: string(s), N: counts[s]})
		total += counts[s]
	}
	v.Total = total
	if len(items) > queuePageSize {
		items = items[:queuePageSize]
		v.Older = items[len(items)-1].ID
	}
	problems := h.profileProblems(ctx, items)
	for _, it := range items {
		r := views.OutboxRow{
			ID: it.ID, Created: it.CreatedAt, Rcpts: it.Rcpts, Subject: it.Subject, Status: string(it.Status),
			Attempts: it.Attempts, NextAttempt: it.NextAttemptAt, ExpiresAt: it.ExpiresAt, LastError: it.LastError,
			TakenOver: it.TakenOverFrom != "",
			CanRetry:  it.Status == store.OutboxFailed || it.Status == store.OutboxUnknown || it.Status == store.OutboxCancelled,
			CanCancel: it.Status == store.OutboxQueued || it.Status == store.OutboxHeld,
			ProfileID: it.ProfileID, ProfileProblem: problems[it.ProfileID],
		}
		if it.FormID != nil {
			r.FormID, r.FormName = *it.FormID, names[*it.FormID]
		}
		if it.SubmissionID != nil {
			r.SubmissionID = *it.SubmissionID
		}
		if it.LastSendID != nil {
			r.LastSendID = *it.LastSendID
		}
		v.Rows = append(v.Rows, r)
	}
	return render(c, http.StatusOK, views.OutboxListPage(h.page(c, "Outbox", "outbox"), v))
}

// profileProblems says, for each server profile that waiting items
// (queued, held, or being attempted) go through, what keeps it from being used and what to
// do: a stored password this instance cannot decrypt (sealed with
// another secret key). The worker keeps such items queued and retries
// them, so nothing is lost while the admin fixes the profile.
func (h *Handler) profileProblems(ctx context.Context, items []store.OutboxItem) map[int64]string {
	out := map[int64]string{}
	for _, it := range items {
		id := it.ProfileID
		waiting := it.Status == store.OutboxQueued || it.Status == store.OutboxHeld || it.Status == store.OutboxSending
		if _, seen := out[id]; seen || id == 0 || !waiting {
			continue
		}
		out[id] = ""
		p, err := h.profiles.Profile(ctx, id)
		if err != nil {
			// A deleted profile fails its items with their own error.
			continue
		}
		if len(p.PasswordEnc) == 0 {
			continue
		}
		if _, err := h.sealer.Open(p.PasswordEnc); err != nil {
			out[id] = "The stored password of the server profile \u201c" + p.Name + "\u201d cannot be decrypted with this instance's secret key " +
				"(it was saved with another key). Open the profile and enter its password again: the messages waiting for it stay queued and are sent at their next attempt."
		}
	}
	return out
}

// outboxID reads the :id parameter of an outbox action.
func outboxID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, echo.NewHTTPError(http.StatusNotFound, "There is no such message in the outbox.")
	}
	return id, nil
}

// backTo returns the page an action should go back to: the posted
// "back" path when it is a local one (localTarget), else fallback.
func backTo(c echo.Context, fallback string) string {
	return localTarget(c.FormValue("back"), fallback)
}

// queueAction runs an admin action and reports its outcome in a flash.
func (h *Handler) queueAction(c echo.Context, what string, act func() error, done, wrong, fallback string) error {
	err := act()
	switch {
	case errors.Is(err, store.ErrNotFound):
		return echo.NewHTTPError(http.StatusNotFound, "There is no such "+what+".")
	case errors.Is(err, store.ErrWrongState):
		flash(c, wrong)
	case err != nil:
		return fmt.Errorf("handlers: %s: %w", what, err)
	default:
		flash(c, done)
		if h.contact.kick != nil {
			h.contact.kick.Kick()
		}
	}
	return c.Redirect(http.StatusSeeOther, backTo(c, fallback))
}

func (h *Handler) retryOutbox(c echo.Context) error {
	id, err := outboxID(c)
	if err != nil {
		return err
	}
	return h.queueAction(c, "message in the outbox",
		func() error { return h.queue.RetryOutbox(c.Request().Context(), id, h.now()) },
		"Message "+strconv.FormatInt(id, 10)+" is queued again.",
		"Message "+strconv.FormatInt(id, 10)+" cannot be retried now: only failed, unknown or cancelled messages can.",
		"/outbox")
}

func (h *Handler) cancelOutbox(c echo.Context) error {
	id, err := outboxID(c)
	if err != nil {
		return err
	}
	return h.queueAction(c, "message in the outbox",
		func() error { return h.queue.CancelOutbox(c.Request().Context(), id) },
		"Message "+strconv.FormatInt(id, 10)+" is cancelled: it will not be sent.",
		"Message "+strconv.FormatInt(id, 10)+" cannot be cancelled now: it is being sent or is finished.",
		"/outbox")
}

// submissionRow turns a submission into a list row. The views show the
// visitor's text with views.Untrusted; the preview is escaped here
// (contact.OneLine, safetext.Line).
func submissionRow(s *store.Submission) views.SubmissionRow {
	r := views.SubmissionRow{
		ID: s.ID, FormID: s.FormID, Created: s.CreatedAt, Status: string(s.Status), BlockReason: s.BlockReason,
		ClientAddr: s.ClientAddr, Origin: s.Origin, ReplyTo: s.ReplyTo, Files: len(s.Files),
		CanRelease: s.Status == store.SubmissionBlocked,
	}
	var parts []string
	for _, f := range s.Fields {
		if f.Name == contact.FieldEmail || strings.TrimSpace(f.Value) == "" {
			continue
		}
		parts = append(parts, safetext.Line(f.Name)+": "+contact.OneLine(f.Value, 80))
	}
	r.Preview = contact.OneLine(strings.Join(parts, " \u00b7 "), 200)
	return r
}

func (h *Handler) submissionsPage(c echo.Context) error {
	f, err := h.loadForm(c)
	if err != nil {
		return err
	}
	status := statusParam(c, submissionStatuses)
	list, err := h.queue.ListSubmissions(c.Request().Context(), store.SubmissionFilter{
		FormID: f.ID, Status: status, Limit: queuePageSize + 1, Before: cursor(c)})
	if err != nil {
		return fmt.Errorf("handlers: list submissions: %w", err)
	}
	v := views.SubmissionsPage{FormID: f.ID, FormName: f.Name, Status: string(status), Statuses: statusNames(submissionStatuses)}
	if len(list) > queuePageSize {
		list = list[:queuePageSize]
		v.Older = list[len(list)-1].ID
	}
	for i := range list {
		v.Rows = append(v.Rows, submissionRow(&list[i]))
	}
	return render(c, http.StatusOK, views.SubmissionsListPage(h.page(c, "Submissions of "+f.Name, "forms"), v))
}

// loadSubmission finds the submission named by the :id parameter.
func (h *Handler) loadSubmission(c echo.Context) (*store.Submission, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, echo.NewHTTPError(http.StatusNotFound, "There is no such submission.")
	}
	s, err := h.queue.Submission(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, echo.NewHTTPError(http.StatusNotFound, "There is no such submission.")
	}
	if err != nil {
		return nil, fmt.Errorf("handlers: load submission: %w", err)
	}
	return s, nil
}

func (h *Handler) submissionPage(c echo.Context) error {
	s, err := h.loadSubmission(c)
	if err != nil {
		return err
	}
	names, err := h.formNames(c)
	if err != nil {
		return err
	}
	v := views.SubmissionDetail{SubmissionRow: submissionRow(s), FormName: names[s.FormID], UserAgent: s.UserAgent}
	for _, f := range s.Fields {
		v.Fields = append(v.Fields, views.ContactField{Name: f.Name, Value: f.Value})
	}
	for _, f := range s.Files {
		size := f.Size
		if size == 0 {
			size = int64(len(f.Data))
		}
		v.FileList = append(v.FileList, views.FileRow{Name: f.Name, ContentType: f.ContentType, Size: size})
	}
	items, err := h.queue.ListOutbox(c.Request().Context(), store.OutboxFilter{FormID: s.FormID, Limit: store.MaxListLimit})
	if err != nil {
		return fmt.Errorf("handlers: list outbox: %w", err)
	}
	for _, it := range items {
		if it.SubmissionID != nil && *it.SubmissionID == s.ID {
			v.OutboxID, v.OutboxStatus = it.ID, string(it.Status)
			if it.LastSendID != nil {
				v.LastSendID = *it.LastSendID
			}
			break
		}
	}
	return render(c, http.StatusOK, views.SubmissionPage(h.page(c, "Submission "+strconv.FormatInt(s.ID, 10), "forms"), v))
}

func (h *Handler) releaseSubmission(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such submission.")
	}
	return h.queueAction(c, "submission",
		func() error { return h.queue.ReleaseSubmission(c.Request().Context(), id, h.now()) },
		"Submission "+strconv.FormatInt(id, 10)+" is released: its message is queued for delivery.",
		"Submission "+strconv.FormatInt(id, 10)+" is not blocked, so there is nothing to release.",
		"/submissions/"+strconv.FormatInt(id, 10))
}
