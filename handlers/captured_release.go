package handlers

// Release: a captured message sent on, unchanged, through a saved server
// profile, as a send of its own (source "release") with its transcript in
// the history, through the one send service (delivery).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"sockmail/internal/delivery"
	"sockmail/internal/store"
	"sockmail/smtp"
	"sockmail/views"
)

// Release limits.
const (
	// sourceRelease is the history source of a released message.
	sourceRelease = "release"
	// maxReleaseRcpts bounds the recipients of one release.
	maxReleaseRcpts = 100
	// maxReleaseRcptsField bounds the recipients field, in bytes.
	maxReleaseRcptsField = 10_000
)

// releaseInput is the release form as posted.
type releaseInput struct {
	// Profile is the id of a saved server profile.
	Profile string
	// Rcpts are envelope addresses separated by line breaks, commas,
	// semicolons or spaces.
	Rcpts string
}

// Validate checks the form and returns the profile id and the
// recipients (in order, each once), or the errors by field. Whether the
// profile exists is checked when it is resolved.
func (f *releaseInput) Validate() (int64, []string, map[string]string) {
	errs := map[string]string{}
	id, err := strconv.ParseInt(strings.TrimSpace(f.Profile), 10, 64)
	if err != nil || id <= 0 {
		errs["profile"] = "Choose a server profile."
	}
	var rcpts []string
	switch {
	case len(f.Rcpts) > maxReleaseRcptsField:
		errs["rcpts"] = fmt.Sprintf("The recipients are %d characters long; at most %d.", len(f.Rcpts), maxReleaseRcptsField)
	default:
		seen := map[string]bool{}
		for _, a := range strings.FieldsFunc(f.Rcpts, func(r rune) bool {
			return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\r' || r == '\n'
		}) {
			if err := smtp.CheckAddress(a); err != nil {
				errs["rcpts"] = "Recipient " + strconv.Quote(a) + " cannot be used: " + err.Error() + "."
				break
			}
			if !seen[a] {
				seen[a] = true
				rcpts = append(rcpts, a)
			}
		}
		switch {
		case errs["rcpts"] != "":
		case len(rcpts) == 0:
			errs["rcpts"] = "Enter at least one recipient address."
		case len(rcpts) > maxReleaseRcpts:
			errs["rcpts"] = fmt.Sprintf("%d recipients; at most %d.", len(rcpts), maxReleaseRcpts)
		}
	}
	return id, rcpts, errs
}

// releaseFormView is the release form with the saved profiles to choose
// from.
func (h *Handler) releaseFormView(ctx context.Context, in releaseInput, errs map[string]string, q string) (views.ReleaseForm, error) {
	rf := views.ReleaseForm{Profile: in.Profile, Rcpts: in.Rcpts, Errors: errs, Query: q}
	profiles, err := h.profiles.Profiles(ctx)
	if err != nil {
		return rf, fmt.Errorf("handlers: list profiles: %w", err)
	}
	for _, p := range profiles {
		rf.Profiles = append(rf.Profiles, views.Option{Value: strconv.FormatInt(p.ID, 10),
			Label: p.Name + " (" + net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) + ")"})
	}
	return rf, nil
}

// capturedRelease sends a captured message on through a saved profile
// and shows the send's live result page; a form with errors comes back
// with them.
func (h *Handler) capturedRelease(c echo.Context) error {
	m, err := h.loadCaptured(c)
	if err != nil {
		return err
	}
	in := releaseInput{Profile: c.FormValue("profile"), Rcpts: c.FormValue("rcpts")}
	q := keptQuery(c.FormValue("q"))
	id, rcpts, errs := in.Validate()
	var job *delivery.Job
	if len(errs) == 0 {
		job, err = h.prepareRelease(c, m, id, rcpts)
		var fe fieldError
		if errors.As(err, &fe) {
			errs["profile"] = fe.msg
		} else if err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		v := capturedMessage(m, "", q)
		if v.Release, err = h.releaseFormView(c.Request().Context(), in, errs, q); err != nil {
			return err
		}
		return render(c, http.StatusUnprocessableEntity, views.CapturedView(h.page(c, "Captured mail", "captured"), v))
	}
	sid, err := h.start(c, job)
	if err != nil {
		return err
	}
	h.log.Info("captured message released", "captured", m.ID, "send", sid, "server", job.Config.Addr, "rcpts", len(rcpts))
	return c.Redirect(http.StatusSeeOther, "/sends/"+strconv.FormatInt(sid, 10))
}

// prepareRelease builds the send of a captured message, unchanged, with
// its envelope sender and the recipients given, to the profile's server.
func (h *Handler) prepareRelease(c echo.Context, m *store.Captured, profile int64, rcpts []string) (*delivery.Job, error) {
	cfg, err := h.sends.Resolve(c.Request().Context(), delivery.Target{Kind: delivery.KindProfile, ProfileID: profile})
	if err != nil {
		return nil, targetFieldError(err)
	}
	head, _, _ := bytes.Cut(m.Raw, []byte("\r\n\r\n"))
	utf8Envelope := has8bit([]byte(m.MailFrom)) || has8bit(head)
	for _, r := range rcpts {
		utf8Envelope = utf8Envelope || has8bit([]byte(r))
	}
	env := smtp.Envelope{From: m.MailFrom, To: rcpts, Size: int64(len(m.Raw)), SMTPUTF8: utf8Envelope, EightBit: has8bit(m.Raw)}
	rec := origin(c)
	rec.Source = sourceRelease
	rec.Server, rec.TLS, rec.From, rec.To, rec.Message, rec.MaxStored = cfg.Addr, cfg.TLS, m.MailFrom, rcpts, m.Raw, h.maxStored
	return &delivery.Job{Send: delivery.NewSend(h.now(), rec), Config: cfg, Envelope: env, Message: m.Raw}, nil
}
