package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/delivery"
	"sockmail/internal/store"
	"sockmail/internal/webform"
	"sockmail/smtp"
	"sockmail/smtp/message"
	"sockmail/views"
)

// Compose limits.
const (
	defaultsCookie = "sockmail_compose"
	maxAttachments = 20
)

// composeView builds the compose page data.
func (h *Handler) composeView(c echo.Context, f *webform.Compose, errs webform.Errors) (views.Compose, error) {
	profiles, err := h.profiles.Profiles(c.Request().Context())
	if err != nil {
		return views.Compose{}, fmt.Errorf("handlers: list profiles: %w", err)
	}
	v := views.Compose{Form: f, Errors: errs, BuiltinAddr: h.capture.Addr, MaxUpload: h.maxUp, MaxFiles: maxAttachments}
	for _, p := range profiles {
		v.Profiles = append(v.Profiles, views.Option{Value: strconv.FormatInt(p.ID, 10), Label: p.Name + " (" + net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) + ")"})
	}
	if f.ServerChoice == webform.ServerBuiltin && h.capture.Addr == "" {
		f.ServerChoice = webform.ServerAdhoc
	}
	return v, nil
}

func (h *Handler) composePage(c echo.Context) error {
	f := h.loadDefaults(c)
	v, err := h.composeView(c, f, nil)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.ComposePage(h.page(c, "Compose", "compose"), v))
}

// loadDefaults returns the form as last sent (from the defaults cookie),
// or the built-in defaults. The password and the SMTP user are never in
// the cookie.
func (h *Handler) loadDefaults(c echo.Context) *webform.Compose {
	f := webform.NewCompose()
	s, err := h.cookies.Get(c.Request(), defaultsCookie)
	if err != nil {
		return f
	}
	if raw, ok := s.Values["form"].(string); ok {
		saved := webform.NewCompose()
		if json.Unmarshal([]byte(raw), saved) == nil {
			saved.Password, saved.Username = "", ""
			f = saved
		}
	}
	return f
}

// saveDefaults remembers the form for the next visit, for as long as a
// sign-in lasts (sign-out clears it: forgetDefaults): everything but the
// password and the SMTP user (secrets, or half of one), the bodies and
// the attachments (they would not fit a cookie).
func (h *Handler) saveDefaults(c echo.Context, f *webform.Compose) {
	keep := *f
	keep.Password, keep.Username, keep.Text, keep.HTML = "", "", "", ""
	b, err := json.Marshal(&keep)
	if err != nil || len(b) > 2000 {
		return
	}
	s, _ := h.cookies.New(c.Request(), defaultsCookie)
	s.Options.MaxAge = int(h.lifetime / time.Second)
	s.Values["form"] = string(b)
	if err := s.Save(c.Request(), c.Response().Writer); err != nil {
		h.log.Warn("save compose defaults", "err", err)
	}
}

// forgetDefaults deletes the remembered compose settings (server,
// recipients...): sign-out calls it, so that the next person at the
// browser does not see them.
func (h *Handler) forgetDefaults(c echo.Context) {
	s, _ := h.cookies.New(c.Request(), defaultsCookie)
	s.Options.MaxAge = -1
	if err := s.Save(c.Request(), c.Response().Writer); err != nil {
		h.log.Warn("forget compose defaults", "err", err)
	}
}

// upload is an attachment read from the form.
type upload struct {
	name string
	data []byte
}

// uploadsError says what is wrong with the files chosen, or "" when
// nothing is. A browser cannot keep chosen files when a form comes back,
// so every message says to choose them again.
func uploadsError(up *composeUploads, limit int64) string {
	switch {
	case up == nil:
		return ""
	case up.over:
		return fmt.Sprintf("Attachments: the %s chosen %s; together they may be at most %s. Nothing was sent. Choose the files again, fewer or smaller (a browser cannot keep chosen files after sending).",
			plural(up.count, "file", "files"), addUpTo(up, limit), views.Bytes(limit))
	case up.count > maxAttachments:
		return fmt.Sprintf("Attachments: %d files were chosen; at most %d can be attached (together at most %s). Nothing was sent. Choose the files again, at most %d (a browser cannot keep chosen files after sending).",
			up.count, maxAttachments, views.Bytes(limit), maxAttachments)
	}
	return ""
}

// addUpTo says how large the chosen files were, as far as they were read.
func addUpTo(up *composeUploads, limit int64) string {
	verb := "add up to"
	if up.count == 1 {
		verb = "is"
	}
	size, _ := webform.Sizes(up.total, limit)
	if up.truncated {
		return verb + " more than " + size
	}
	return verb + " " + size
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return strconv.Itoa(n) + " " + many
}

// compose validates the form, builds the message and the SMTP
// configuration, records the send and starts it in the background, then
// redirects to its result page, which streams the transcript.
func (h *Handler) compose(c echo.Context) error {
	r := c.Request()
	f := webform.ReadCompose(r)
	errs := f.Validate()
	up, _ := c.Get(ctxComposeUploads).(*composeUploads)
	if msg := uploadsError(up, h.maxUp); msg != "" {
		errs["attachments"] = msg
		if up.truncated {
			errs["attachments"] += " The form was too large to read to its end: the fields after Attachments (custom headers, DSN and test settings) may be back to their defaults; check them."
		}
	}
	var job *delivery.Job
	var err error
	if len(errs) == 0 {
		var files []upload
		if up != nil {
			files = up.files
		}
		job, err = h.prepareSend(c, f, files)
		var fe fieldError
		if errors.As(err, &fe) {
			errs[fe.field] = fe.msg
		} else if err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		v, err := h.composeView(c, f, errs)
		if err != nil {
			return err
		}
		return render(c, http.StatusUnprocessableEntity, views.ComposePage(h.page(c, "Compose", "compose"), v))
	}
	id, err := h.start(c, job)
	if isStorageFailure(err) {
		// The form again with what was typed, and why nothing was sent.
		errs["form"] = h.storageRefused(c, err)
		v, verr := h.composeView(c, f, errs)
		if verr != nil {
			return verr
		}
		return render(c, http.StatusServiceUnavailable, views.ComposePage(h.page(c, "Compose", "compose"), v))
	}
	if err != nil {
		return err
	}
	h.saveDefaults(c, f)
	return c.Redirect(http.StatusSeeOther, "/sends/"+strconv.FormatInt(id, 10))
}

// fieldError is a problem to show beside a form field.
type fieldError struct{ field, msg string }

func (e fieldError) Error() string { return e.field + ": " + e.msg }

// composeTarget is the server a valid form names.
func composeTarget(f *webform.Compose) delivery.Target {
	srv := f.Server
	t := delivery.Target{TLS: srv.TLS, Verify: srv.Verify, Helo: srv.Helo, AuthMech: srv.AuthMech,
		Username: srv.Username, Password: srv.Password, AllowInsecureAuth: srv.AllowInsecureAuth}
	switch f.ServerChoice {
	case webform.ServerBuiltin:
		t.Kind = delivery.KindCapture
	case webform.ServerAdhoc:
		t.Kind, t.Host, t.Port = delivery.KindServer, srv.Host, srv.Port
	default:
		t.Kind = delivery.KindProfile
		t.ProfileID, _ = strconv.ParseInt(f.ServerChoice, 10, 64)
	}
	return t
}

// targetFieldError turns a target that cannot be resolved into a problem
// beside a form field.
func targetFieldError(err error) error {
	var te *delivery.TargetError
	if errors.As(err, &te) {
		return fieldError{te.Field, te.Msg}
	}
	return fmt.Errorf("handlers: %w", err)
}

// origin is where a web send comes from: the signed-in admin's address.
func origin(c echo.Context) delivery.Record {
	r := delivery.Record{Source: delivery.SourceWeb, ClientAddr: c.RealIP()}
	if u, _ := c.Get(ctxUser).(*store.User); u != nil {
		r.UserID = &u.ID
	}
	return r
}

// prepareSend turns a valid form into a send: the server configuration
// (built-in, profile or ad hoc), the composed message and the envelope.
func (h *Handler) prepareSend(c echo.Context, f *webform.Compose, uploads []upload) (*delivery.Job, error) {
	cfg, err := h.sends.Resolve(c.Request().Context(), composeTarget(f))
	if err != nil {
		return nil, targetFieldError(err)
	}
	cfg.ShowBody = f.ShowBody

	from, _ := f.FromAddress()
	to, cc, bcc, replyTo := f.Lists()
	headers, _ := f.HeaderFields()
	m := &message.Message{
		From: from, To: to, Cc: cc, Bcc: bcc, ReplyTo: replyTo,
		Subject: strings.TrimSpace(f.Subject), Headers: headers,
		Text: strings.ReplaceAll(f.Text, "\r\n", "\n"), HTML: strings.ReplaceAll(f.HTML, "\r\n", "\n"),
	}
	for _, u := range uploads {
		m.Attachments = append(m.Attachments, message.BytesAttachment(u.name, u.data))
	}
	if err := m.Validate(); err != nil {
		// The form's fields were checked: what is left is a custom
		// header the message writes itself (From, Bcc, Content-Type...).
		return nil, fieldError{"headers", "Custom headers: " + strings.TrimPrefix(err.Error(), "message: ") +
			". Remove that line: From, To, Cc, Bcc, Reply-To and Subject come from the form's own fields, and sockmail writes Date, Message-ID and the MIME headers."}
	}
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		return nil, fieldError{"attachments", "The message could not be composed: " + strings.TrimPrefix(err.Error(), "message: ")}
	}
	raw := buf.Bytes()
	env := smtp.Envelope{
		From: m.EnvelopeFrom(), To: m.Recipients(), Size: int64(len(raw)),
		SMTPUTF8: m.NeedsSMTPUTF8(), EightBit: m.Needs8BitMIME(), DSN: f.DSN(),
	}
	rec := origin(c)
	rec.Server, rec.TLS, rec.From, rec.To, rec.Message, rec.MaxStored = cfg.Addr, cfg.TLS, env.From, env.To, raw, h.maxStored
	snd := delivery.NewSend(h.now(), rec)
	return &delivery.Job{Send: snd, Config: cfg, Envelope: env, Message: raw, Options: smtp.SendOptions{StopAfter: smtp.Phase(f.StopAfter)}}, nil
}
