package handlers

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"sockmail/internal/store"
	"sockmail/internal/webform"
	"sockmail/smtp"
	"sockmail/smtp/message"
	"sockmail/views"
)

// Compose limits.
const (
	defaultsCookie          = "sockmail_compose"
	maxAttachments          = 20
	defaultMaxStoredMessage = 10 << 20 // .eml kept with a send (Deps.MaxStoredMessage)
	multipartMemory         = 8 << 20  // attachments above this spill to temp files
)

// composeView builds the compose page data.
func (h *Handler) composeView(c echo.Context, f *webform.Compose, errs webform.Errors) (views.Compose, error) {
	profiles, err := h.store.Profiles(c.Request().Context())
	if err != nil {
		return views.Compose{}, fmt.Errorf("handlers: list profiles: %w", err)
	}
	v := views.Compose{Form: f, Errors: errs, BuiltinAddr: h.capture.Addr, MaxUpload: h.maxUp}
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
// or the built-in defaults. The password is never in the cookie.
func (h *Handler) loadDefaults(c echo.Context) *webform.Compose {
	f := webform.NewCompose()
	s, err := h.cookies.Get(c.Request(), defaultsCookie)
	if err != nil {
		return f
	}
	if raw, ok := s.Values["form"].(string); ok {
		saved := webform.NewCompose()
		if json.Unmarshal([]byte(raw), saved) == nil {
			saved.Password = ""
			f = saved
		}
	}
	return f
}

// saveDefaults remembers the form for the next visit: everything but the
// password, the bodies and the attachments (they would not fit a cookie).
func (h *Handler) saveDefaults(c echo.Context, f *webform.Compose) {
	keep := *f
	keep.Password, keep.Text, keep.HTML = "", "", ""
	b, err := json.Marshal(&keep)
	if err != nil || len(b) > 2000 {
		return
	}
	s, _ := h.cookies.New(c.Request(), defaultsCookie)
	s.Options.MaxAge = 180 * 24 * 3600
	s.Values["form"] = string(b)
	if err := s.Save(c.Request(), c.Response().Writer); err != nil {
		h.log.Warn("save compose defaults", "err", err)
	}
}

// upload is an attachment read from the form.
type upload struct {
	name string
	data []byte
}

func readUploads(r *http.Request, limit int64) ([]upload, error) {
	if r.MultipartForm == nil {
		return nil, nil
	}
	files := r.MultipartForm.File["attachments"]
	var out []upload
	var total int64
	for _, fh := range files {
		if fh.Filename == "" && fh.Size == 0 {
			continue // the empty file input
		}
		if len(out) == maxAttachments {
			return nil, fmt.Errorf("at most %d attachments", maxAttachments)
		}
		total += fh.Size
		if total > limit {
			return nil, fmt.Errorf("attachments add up to more than %s", views.Bytes(limit))
		}
		f, err := fh.Open()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", fh.Filename, err)
		}
		data, err := io.ReadAll(io.LimitReader(f, limit+1))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", fh.Filename, err)
		}
		out = append(out, upload{name: fh.Filename, data: data})
	}
	return out, nil
}

// compose validates the form, builds the message and the SMTP
// configuration, records the send and starts it in the background, then
// redirects to its result page, which streams the transcript.
func (h *Handler) compose(c echo.Context) error {
	r := c.Request()
	if err := r.ParseMultipartForm(multipartMemory); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return echo.NewHTTPError(http.StatusBadRequest, "The form could not be read.")
	}
	if r.MultipartForm != nil {
		defer func() { _ = r.MultipartForm.RemoveAll() }()
	}
	f := webform.ReadCompose(r)
	errs := f.Validate()
	uploads, err := readUploads(r, h.maxUp)
	if err != nil {
		errs["attachments"] = "Attachments: " + err.Error() + "."
	}
	var job *sendJob
	if len(errs) == 0 {
		job, err = h.prepareSend(c, f, uploads)
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
	if err := h.start(c, job); err != nil {
		return err
	}
	h.saveDefaults(c, f)
	return c.Redirect(http.StatusSeeOther, "/sends/"+strconv.FormatInt(job.send.ID, 10))
}

// fieldError is a problem to show beside a form field.
type fieldError struct{ field, msg string }

func (e fieldError) Error() string { return e.field + ": " + e.msg }

// sendJob is a send ready to run.
type sendJob struct {
	send *store.Send
	cfg  smtp.Config
	env  smtp.Envelope
	msg  []byte
	opts smtp.SendOptions
}

// prepareSend turns a valid form into a send: the server configuration
// (built-in, profile or ad hoc), the composed message and the envelope.
func (h *Handler) prepareSend(c echo.Context, f *webform.Compose, uploads []upload) (*sendJob, error) {
	ctx := c.Request().Context()
	cfg := smtp.Config{Transcript: smtp.NewTranscript(), ShowBody: f.ShowBody}
	srv := f.Server
	var password string
	switch f.ServerChoice {
	case webform.ServerBuiltin:
		if h.capture.Addr == "" {
			return nil, fieldError{"server", "The built-in capture server is off."}
		}
		cfg.Addr = h.capture.Addr
		password = srv.Password
	case webform.ServerAdhoc:
		cfg.Addr = net.JoinHostPort(srv.Host, srv.Port)
		password = srv.Password
	default:
		id, _ := strconv.ParseInt(f.ServerChoice, 10, 64)
		p, err := h.store.Profile(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fieldError{"server", "This profile no longer exists."}
		}
		if err != nil {
			return nil, fmt.Errorf("handlers: load profile: %w", err)
		}
		cfg.Addr = net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
		srv = webform.Server{TLS: p.TLSMode, Verify: !p.InsecureSkipVerify, AuthMech: p.AuthMech, Username: p.Username, Helo: p.HeloName}
		if len(p.PasswordEnc) > 0 {
			pw, err := h.sealer.Open(p.PasswordEnc)
			if err != nil {
				return nil, fieldError{"server", "The profile's stored password cannot be decrypted (was the data directory's key changed?). Save the profile's password again."}
			}
			password = string(pw)
		}
	}
	mode, err := smtp.ParseTLSMode(srv.TLS)
	if err != nil {
		return nil, fieldError{"tls", "Choose a TLS mode."}
	}
	cfg.TLS = mode
	cfg.InsecureSkipVerify = !srv.Verify
	cfg.LocalName = srv.Helo
	cfg.AllowInsecureAuth = srv.AllowInsecureAuth
	cfg.TLSConfig = &tls.Config{RootCAs: h.roots}
	if srv.AuthMech != "" {
		mech := srv.AuthMech
		if mech == "auto" {
			mech = ""
		}
		cfg.Auth = &smtp.Auth{Mechanism: mech, Username: srv.Username, Password: password}
	}

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
		return nil, fieldError{"headers", strings.TrimPrefix(err.Error(), "message: ")}
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
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	u, _ := c.Get(ctxUser).(*store.User)
	snd := &store.Send{
		CreatedAt: h.now(), Source: "web", ClientAddr: c.RealIP(), Server: cfg.Addr, TLSMode: mode.String(),
		MailFrom: env.From, Rcpts: env.To, Subject: m.Subject, Headers: string(head), Status: store.StatusRunning,
	}
	if u != nil {
		snd.UserID = &u.ID
	}
	if int64(len(raw)) <= h.maxStored {
		snd.Message = raw
	} else {
		snd.Message, snd.MessageTruncated = raw[:h.maxStored], true
	}
	return &sendJob{send: snd, cfg: cfg, env: env, msg: raw, opts: smtp.SendOptions{StopAfter: smtp.Phase(f.StopAfter)}}, nil
}
