package handlers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/contact"
	"sockmail/internal/store"
	"sockmail/views"
)

// Admin pages of contact forms: the list, a form's page with its embed
// snippets, create, edit and delete. The queue pages (outbox,
// submissions) are in forms_queue.go; the public endpoint is contact.go.

// FormDefs is what the contact form pages read and write.
type FormDefs interface {
	SaveForm(ctx context.Context, f *store.Form) error
	Form(ctx context.Context, id int64) (*store.Form, error)
	// PublicForm is the form of a slug for the public endpoints (a token
	// request, a post): store.Store.PublicForm keeps it for a second.
	PublicForm(ctx context.Context, slug string) (*store.Form, error)
	Forms(ctx context.Context) ([]store.Form, error)
	DeleteForm(ctx context.Context, id int64) error
}

// QueueStore is what the submissions and outbox pages read and change,
// and what retention purges.
type QueueStore interface {
	ListSubmissions(ctx context.Context, f store.SubmissionFilter) ([]store.Submission, error)
	Submission(ctx context.Context, id int64) (*store.Submission, error)
	ReleaseSubmission(ctx context.Context, submissionID int64, now time.Time) error

	ListOutbox(ctx context.Context, f store.OutboxFilter) ([]store.OutboxItem, error)
	OutboxItem(ctx context.Context, id int64) (*store.OutboxItem, error)
	OutboxCounts(ctx context.Context) (map[store.OutboxStatus]int, error)
	RetryOutbox(ctx context.Context, id int64, now time.Time) error
	CancelOutbox(ctx context.Context, id int64) error
	// The retention policy's age limit (ApplyRetention).
	PurgeOutbox(ctx context.Context, before time.Time) (int, error)
	PurgeSubmissions(ctx context.Context, before time.Time) (int, error)
}

// FormStore is contact forms, submissions and the outbox: what Deps.Forms
// replaces (tests use it to make the database fail).
type FormStore interface {
	FormDefs
	QueueStore
	contact.Queue
}

// Kicker wakes the outbox worker so that a new submission is delivered at
// once rather than at its next poll. *outbox.Worker is one.
type Kicker interface {
	Kick()
}

// formStoreOf returns the FormStore of the dependencies.
func formStoreOf(d Deps) FormStore {
	if d.Forms != nil {
		return d.Forms
	}
	return d.Store
}

// contactState is what the contact form handlers keep besides the
// Handler's common dependencies.
type contactState struct {
	kick Kicker
	svc  *contact.Service
}

// newContactState builds the contact form state from the dependencies.
func newContactState(d Deps) (*contactState, error) {
	svc, err := contact.New(contact.Deps{
		Attempts: d.Store, Settings: d.Store, Queue: formStoreOf(d), Sealer: d.Sealer, Kicker: d.Kicker,
		Logger: d.Logger, Now: d.Now, HTTPClient: d.HTTPClient, VerifyURLs: d.CaptchaVerifyURLs,
	})
	if err != nil {
		return nil, fmt.Errorf("handlers: %w", err)
	}
	return &contactState{kick: d.Kicker, svc: svc}, nil
}

// formRoutes registers the admin pages of contact forms on the signed-in
// group.
func (h *Handler) formRoutes(a *echo.Group) {
	a.GET("/forms", h.formsPage)
	a.GET("/forms/new", h.newFormPage)
	a.POST("/forms", h.createForm)
	a.GET("/forms/:id", h.formPage)
	a.GET("/forms/:id/edit", h.editFormPage)
	a.POST("/forms/:id", h.updateForm)
	a.POST("/forms/:id/delete", h.deleteForm)
	a.GET("/forms/:id/submissions", h.submissionsPage)
	a.GET("/submissions/:id", h.submissionPage)
	a.POST("/submissions/:id/release", h.releaseSubmission)
	a.GET("/outbox", h.outboxPage)
	a.POST("/outbox/:id/retry", h.retryOutbox)
	a.POST("/outbox/:id/cancel", h.cancelOutbox)
}

// serverLabels names the delivery servers: the built-in capture server
// (profile 0) and the saved profiles.
func (h *Handler) serverLabels(ctx context.Context) ([]views.Option, error) {
	profiles, err := h.profiles.Profiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("handlers: list profiles: %w", err)
	}
	builtin := "Built-in capture server (keeps the mail, delivers nothing)"
	if h.capture.Addr == "" {
		builtin = "Built-in capture server (off in this configuration)"
	}
	opts := []views.Option{{Value: "0", Label: builtin}}
	for _, p := range profiles {
		opts = append(opts, views.Option{Value: strconv.FormatInt(p.ID, 10),
			Label: p.Name + " (" + net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) + ")"})
	}
	return opts, nil
}

func labelOf(opts []views.Option, value string) string {
	for _, o := range opts {
		if o.Value == value {
			return o.Label
		}
	}
	return "a deleted profile (" + value + "): choose another server"
}

func (h *Handler) formsPage(c echo.Context) error {
	ctx := c.Request().Context()
	list, err := h.forms.Forms(ctx)
	if err != nil {
		return fmt.Errorf("handlers: list forms: %w", err)
	}
	servers, err := h.serverLabels(ctx)
	if err != nil {
		return err
	}
	rows := make([]views.FormRow, 0, len(list))
	for _, f := range list {
		rows = append(rows, views.FormRow{ID: f.ID, Name: f.Name, Slug: f.Slug, Recipients: f.Recipients,
			Server: labelOf(servers, strconv.FormatInt(f.ProfileID, 10)), Enabled: f.Enabled})
	}
	return render(c, http.StatusOK, views.FormsPage(h.page(c, "Contact forms", "forms"), rows))
}

// loadForm finds the form named by the :id parameter.
func (h *Handler) loadForm(c echo.Context) (*store.Form, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, echo.NewHTTPError(http.StatusNotFound, "There is no such form.")
	}
	f, err := h.forms.Form(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, echo.NewHTTPError(http.StatusNotFound, "There is no such form.")
	}
	if err != nil {
		return nil, fmt.Errorf("handlers: load form: %w", err)
	}
	return f, nil
}

// publicBase is the origin visitors reach sockmail at: the configured
// base URL, else the origin this request came to.
func (h *Handler) publicBase(c echo.Context) string {
	if h.baseURL != "" {
		return strings.TrimRight(h.baseURL, "/")
	}
	return c.Scheme() + "://" + c.Request().Host
}

// formPage shows a form: its settings, its public address and the embed
// snippets.
func (h *Handler) formPage(c echo.Context) error {
	f, err := h.loadForm(c)
	if err != nil {
		return err
	}
	servers, err := h.serverLabels(c.Request().Context())
	if err != nil {
		return err
	}
	endpoint := h.publicBase(c) + contactPathPrefix + f.Slug
	fieldLimit, uploadLimit := contact.Limits(f)
	v := views.FormOverview{
		ID: f.ID, Name: f.Name, Slug: f.Slug, Endpoint: endpoint, Enabled: f.Enabled,
		Recipients: f.Recipients, Server: labelOf(servers, strconv.FormatInt(f.ProfileID, 10)),
		From: fromLine(f), AllowedOrigins: f.AllowedOrigins, SuccessURL: f.SuccessURL, ErrorURL: f.ErrorURL,
		SubjectTemplate: f.SubjectTemplate, Fields: f.Fields, AllowUploads: f.AllowUploads,
		MaxUpload: uploadLimit, MaxField: fieldLimit, RatePerAddr: f.RatePerAddr, RatePerForm: f.RatePerForm,
		Captcha: f.CaptchaProvider, SiteKey: f.CaptchaSiteKey, HasSecret: len(f.CaptchaSecretEnc) > 0,
		SnippetPlain: plainSnippet(f, endpoint), SnippetFetch: fetchSnippet(f, endpoint),
	}
	return render(c, http.StatusOK, views.FormPage(h.page(c, "Form "+f.Name, "forms"), v))
}

func fromLine(f *store.Form) string {
	if f.FromName == "" {
		return f.FromAddr
	}
	return f.FromName + " <" + f.FromAddr + ">"
}

// formEditView builds the edit page's data.
func (h *Handler) formEditView(c echo.Context, id int64, ff *contactFormForm, errs map[string]string, hasSecret bool) (views.FormEdit, error) {
	servers, err := h.serverLabels(c.Request().Context())
	if err != nil {
		return views.FormEdit{}, err
	}
	if !slices.ContainsFunc(servers, func(o views.Option) bool { return o.Value == ff.Profile }) {
		servers = append(servers, views.Option{Value: ff.Profile, Label: labelOf(servers, ff.Profile)})
	}
	return views.FormEdit{ID: id, Form: &ff.FormFields, Errors: errs, Servers: servers, HasSecret: hasSecret,
		MaxUploadKiB: h.maxUp >> 10}, nil
}

func (h *Handler) newFormPage(c echo.Context) error {
	v, err := h.formEditView(c, 0, newContactFormForm(h.maxUp), nil, false)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.FormEditPage(h.page(c, "New contact form", "forms"), v))
}

func (h *Handler) editFormPage(c echo.Context) error {
	f, err := h.loadForm(c)
	if err != nil {
		return err
	}
	v, err := h.formEditView(c, f.ID, fromStoreForm(f), nil, len(f.CaptchaSecretEnc) > 0)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.FormEditPage(h.page(c, "Edit contact form", "forms"), v))
}

func (h *Handler) createForm(c echo.Context) error {
	return h.saveForm(c, &store.Form{})
}

func (h *Handler) updateForm(c echo.Context) error {
	f, err := h.loadForm(c)
	if err != nil {
		return err
	}
	return h.saveForm(c, f)
}

// saveForm validates the admin form and stores f. A typed captcha secret
// is sealed with the Sealer before it reaches the store and is never sent
// back to the browser; an empty one keeps the stored secret unless
// "remove" is ticked.
func (h *Handler) saveForm(c echo.Context, f *store.Form) error {
	ctx := c.Request().Context()
	ff := readContactFormForm(c.Request())
	errs, parsed := ff.Validate(h.maxUp)
	if errs["profile"] == "" && parsed.profileID != 0 {
		if _, err := h.profiles.Profile(ctx, parsed.profileID); errors.Is(err, store.ErrNotFound) {
			errs["profile"] = "This profile no longer exists. Choose another server."
		} else if err != nil {
			return fmt.Errorf("handlers: load profile: %w", err)
		}
	}
	hasSecret := len(f.CaptchaSecretEnc) > 0
	if ff.CaptchaProvider != "" && ff.CaptchaSecret == "" && (!hasSecret || ff.ClearSecret) {
		errs["captcha_secret"] = "Enter the secret key the captcha provider gave you, or choose no captcha."
	}
	title := "Edit contact form"
	if f.ID == 0 {
		title = "New contact form"
	}
	show := func(status int) error {
		v, err := h.formEditView(c, f.ID, ff, errs, hasSecret)
		if err != nil {
			return err
		}
		return render(c, status, views.FormEditPage(h.page(c, title, "forms"), v))
	}
	if len(errs) > 0 {
		return show(http.StatusUnprocessableEntity)
	}
	ff.apply(f, parsed)
	switch {
	case ff.CaptchaSecret != "":
		sealed, err := h.sealer.Seal([]byte(ff.CaptchaSecret))
		if err != nil {
			return fmt.Errorf("handlers: seal captcha secret: %w", err)
		}
		f.CaptchaSecretEnc = sealed
	case ff.ClearSecret || ff.CaptchaProvider == "":
		f.CaptchaSecretEnc = nil
	}
	err := h.forms.SaveForm(ctx, f)
	if errors.Is(err, store.ErrExists) {
		errs["slug"] = "Another form has this address name."
		return show(http.StatusUnprocessableEntity)
	}
	if err != nil {
		return fmt.Errorf("handlers: save form: %w", err)
	}
	h.log.Info("contact form saved", "form", f.Slug, "id", f.ID)
	flash(c, "Form \u201c"+f.Name+"\u201d saved.")
	return c.Redirect(http.StatusSeeOther, "/forms/"+strconv.FormatInt(f.ID, 10))
}

func (h *Handler) deleteForm(c echo.Context) error {
	f, err := h.loadForm(c)
	if err != nil {
		return err
	}
	if err := h.forms.DeleteForm(c.Request().Context(), f.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("handlers: delete form: %w", err)
	}
	h.log.Info("contact form deleted", "form", f.Slug, "id", f.ID)
	flash(c, "Form \u201c"+f.Name+"\u201d deleted with its submissions. Messages already queued are still delivered.")
	return c.Redirect(http.StatusSeeOther, "/forms")
}
