package handlers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/store"
	"sockmail/views"
)

// The public contact form endpoint, POST /f/{slug}.
//
// A site's page posts its form here; sockmail checks it (origin, rate
// limits, size limits, honeypot, time trap, captcha), composes the message
// with smtp/message, commits the submission and its outbox item in one
// transaction, wakes the outbox worker, and only then answers success: a
// 303 redirect for a browser form, JSON for a script. When the database
// is down the answer is 503, never a success.
//
// The time trap without JavaScript. A static page cannot hold a fresh
// token without running code, and a token pasted into the snippet would
// age past its two hours. So a plain form posts without one, and sockmail
// answers with a small confirmation page of its own: the message as the
// visitor typed it (in hidden fields; files base64-encoded), a fresh
// token and a Send button. Pressing Send posts again, same origin, with
// the token, and the visitor lands on the thank-you page. A person reads
// the page for a moment; a script that posts at once gets the same page
// back (its token is still too young) and has to come back later, which
// costs a spammer far more than it costs a visitor one click. The fetch()
// variant asks GET /f/{slug}/token when the page loads and posts JSON
// with it: no extra step. Tokens are signed per form (contact_token.go).
//
// The public endpoint is not cookie-authenticated: it sets no cookie and
// reads none, so the admin CSRF check does not apply to it (auth.go skips
// paths under /f/); its defences are the ones above.

// contactPathPrefix starts every public contact path.
const contactPathPrefix = "/f/"

// contactRateWindow is the window of the per-hour rate limits.
const contactRateWindow = time.Hour

// Submission statuses set by the endpoint.
const (
	submissionQueued  = "queued"
	submissionBlocked = "blocked"
)

// Block reasons kept with a blocked submission.
const (
	blockHoneypot = "honeypot"
	blockForged   = "forged token"
)

// contactRoutes registers the public endpoint on its group (/f), which
// has no cookie session and no CSRF check (Routes).
func (h *Handler) contactRoutes(g *echo.Group) {
	g.POST("/:slug", h.contactPost)
	g.OPTIONS("/:slug", h.contactPreflight)
	g.GET("/:slug/token", h.contactToken)
	g.OPTIONS("/:slug/token", h.contactPreflight)
	g.GET("/:slug/thanks", h.contactThanks)
}

// loadPublicForm finds the form of the request's slug.
func (h *Handler) loadPublicForm(c echo.Context) (*store.Form, *contactError) {
	notFound := cerr(http.StatusNotFound, "not_found", "This contact form does not exist. Please tell the site's owner that its form is broken.")
	slug := c.Param("slug")
	if slug == "" || len(slug) > store.MaxSlugLength {
		return nil, notFound
	}
	f, err := h.forms.FormBySlug(c.Request().Context(), slug)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		h.log.Error("contact form: load form", "slug", slug, "err", err)
		return nil, errUnavailable()
	}
	return f, nil
}

// selfOrigin reports whether origin is sockmail's own (its confirmation
// page posting back).
func (h *Handler) selfOrigin(r *http.Request, origin string) bool {
	if h.baseURL != "" {
		if o, err := normalizeOrigin(h.baseURL); err == nil && o == origin {
			return true
		}
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// corsAllowed reports whether origin may read the form's answers.
func corsAllowed(f *store.Form, origin string) bool {
	if origin == "" {
		return false
	}
	for _, o := range f.AllowedOrigins {
		if o == origin {
			return true
		}
	}
	return false
}

// originAccepted reports whether a submission from origin is accepted:
// any when the form lists no origins, else only those listed and
// sockmail's own. A request without Origin (not from a browser) passes;
// a browser always sends it with a POST.
func (h *Handler) originAccepted(r *http.Request, f *store.Form, origin string) bool {
	return origin == "" || len(f.AllowedOrigins) == 0 || corsAllowed(f, origin) || h.selfOrigin(r, origin)
}

// setCORS adds the CORS answer headers for an allowed origin.
func setCORS(c echo.Context, f *store.Form) {
	hd := c.Response().Header()
	hd.Add("Vary", "Origin")
	if origin := c.Request().Header.Get("Origin"); corsAllowed(f, origin) {
		hd.Set("Access-Control-Allow-Origin", origin)
		hd.Set("Access-Control-Expose-Headers", "Retry-After")
	}
}

// contactPreflight answers a CORS preflight: allowed only for the form's
// allowed origins, the one method of the path, and simple headers.
func (h *Handler) contactPreflight(c echo.Context) error {
	r := c.Request()
	c.Response().Header().Add("Vary", "Origin")
	f, cerr := h.loadPublicForm(c)
	if cerr != nil {
		return c.NoContent(cerr.status)
	}
	method := http.MethodPost
	if strings.HasSuffix(r.URL.Path, "/token") {
		method = http.MethodGet
	}
	origin := r.Header.Get("Origin")
	if !corsAllowed(f, origin) || r.Header.Get("Access-Control-Request-Method") != method {
		h.log.Info("contact form: preflight refused", "form", f.Slug, "origin", origin)
		return c.NoContent(http.StatusForbidden)
	}
	hd := c.Response().Header()
	hd.Set("Access-Control-Allow-Origin", origin)
	hd.Set("Access-Control-Allow-Methods", method)
	hd.Set("Access-Control-Allow-Headers", "Content-Type, Accept")
	hd.Set("Access-Control-Max-Age", "600")
	return c.NoContent(http.StatusNoContent)
}

// wantsJSON reports whether the answer should be JSON: a JSON body, or an
// Accept header asking for JSON rather than HTML.
func wantsJSON(r *http.Request) bool {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	if strings.HasPrefix(ct, "application/json") {
		return true
	}
	a := strings.ToLower(r.Header.Get("Accept"))
	return strings.Contains(a, "application/json") && !strings.Contains(a, "text/html")
}

// contactJSON is the JSON answer of the endpoint.
type contactJSON struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

const thanksMessage = "Thank you! Your message has been received and will be delivered shortly."

// contactFail answers with a friendly error: JSON, a redirect to the
// form's error page, or sockmail's own error page with the real status.
func (h *Handler) contactFail(c echo.Context, f *store.Form, e *contactError) error {
	if e.retryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	if wantsJSON(c.Request()) {
		return c.JSON(e.status, contactJSON{Error: e.code, Message: e.msg, Field: e.field})
	}
	if f != nil && f.ErrorURL != "" {
		return c.Redirect(http.StatusSeeOther, withQuery(f.ErrorURL, "error", e.code))
	}
	name := ""
	if f != nil {
		name = f.Name
	}
	return render(c, e.status, views.ContactErrorPage(views.ContactPage{Title: "Your message was not sent", FormName: name},
		e.status, e.msg))
}

// contactSucceed answers an accepted (or quietly blocked) submission.
func (h *Handler) contactSucceed(c echo.Context, f *store.Form, origin string) error {
	if wantsJSON(c.Request()) {
		return c.JSON(http.StatusOK, contactJSON{OK: true, Message: thanksMessage})
	}
	if f.SuccessURL != "" {
		return c.Redirect(http.StatusSeeOther, f.SuccessURL)
	}
	to := contactPathPrefix + f.Slug + "/thanks"
	if origin != "" && corsAllowed(f, origin) {
		to += "?origin=" + url.QueryEscape(origin)
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// withQuery adds key=value to the query of u.
func withQuery(u, key, value string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := p.Query()
	q.Set(key, value)
	p.RawQuery = q.Encode()
	return p.String()
}

// rateKey is the throttling key of a client address: IPv4 addresses as
// they are, IPv6 addresses by their /64 (one host usually has a whole
// /64 to pick from).
func rateKey(addr string) string {
	ip := net.ParseIP(addr)
	if ip == nil {
		return "contact:addr:" + addr
	}
	if ip.To4() != nil {
		return "contact:addr:" + ip.String()
	}
	return "contact:addr:" + ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

func formRateKey(id int64) string { return "contact:form:" + strconv.FormatInt(id, 10) }

// contactLimits are the form's per-address and per-form limits (a Max of
// 0 is no limit).
func contactLimits(f *store.Form, addr string) []store.Limit {
	return []store.Limit{{Key: rateKey(addr), Max: f.RatePerAddr}, {Key: formRateKey(f.ID), Max: f.RatePerForm}}
}

// rateLimited is the answer to a submission over limit l.
func (h *Handler) rateLimited(f *store.Form, l store.Limit, count int) *contactError {
	msg := "This form has received many messages in the last hour. Please try again later."
	if l.Key != formRateKey(f.ID) {
		msg = "You have sent several messages in a short time. Please wait a while before sending another one."
	}
	retry := min(max(int(contactRateWindow.Seconds())/l.Max, 60), int(contactRateWindow.Seconds()))
	h.log.Warn("contact form: rate limited", "form", f.Slug, "key", l.Key, "count", count, "limit", l.Max)
	return &contactError{status: http.StatusTooManyRequests, code: "rate_limited", msg: msg, retryAfter: retry}
}

// checkRates refuses, before the body is read, a submission already over
// the form's per-address or per-form limit. Counts are in the database,
// shared by every instance. It is the cheap early answer; takeRates,
// when the submission is stored, is the exact one.
func (h *Handler) checkRates(ctx context.Context, f *store.Form, addr string) *contactError {
	since := h.now().Add(-contactRateWindow)
	for _, l := range contactLimits(f, addr) {
		if l.Max <= 0 {
			continue
		}
		n, err := h.store.CountAttempts(ctx, l.Key, since)
		if err != nil {
			h.log.Error("contact form: count attempts", "form", f.Slug, "err", err)
			return errUnavailable()
		}
		if n >= l.Max {
			return h.rateLimited(f, l, n)
		}
	}
	return nil
}

// takeRates counts a submission against the form's limits, or refuses it
// when one is reached: the count and the record are one transaction, so
// a burst of concurrent posts cannot pass a limit.
func (h *Handler) takeRates(ctx context.Context, f *store.Form, addr string) *contactError {
	now := h.now()
	over, err := h.store.TakeAttempt(ctx, contactLimits(f, addr), now, now.Add(-contactRateWindow))
	if err != nil {
		h.log.Error("contact form: take attempt", "form", f.Slug, "err", err)
		return errUnavailable()
	}
	if over != nil {
		return h.rateLimited(f, *over, over.Max)
	}
	return nil
}

// contactPost is POST /f/{slug}.
func (h *Handler) contactPost(c echo.Context) error {
	r := c.Request()
	ctx := r.Context()
	f, e := h.loadPublicForm(c)
	if e != nil {
		return h.contactFail(c, nil, e)
	}
	setCORS(c, f)
	origin := r.Header.Get("Origin")
	if !h.originAccepted(r, f, origin) {
		h.log.Warn("contact form: origin refused", "form", f.Slug, "origin", origin)
		return h.contactFail(c, f, cerr(http.StatusForbidden, "origin_refused",
			"This form does not take messages from this website."))
	}
	if !f.Enabled {
		return h.contactFail(c, f, cerr(http.StatusForbidden, "form_disabled",
			"This form is not taking messages at the moment. Please contact the site's owner another way."))
	}
	addr := c.RealIP()
	if e := h.checkRates(ctx, f, addr); e != nil {
		return h.contactFail(c, f, e)
	}
	limit := contactBodyLimit(f)
	if r.ContentLength > limit {
		return h.contactFail(c, f, tooLarge(limit))
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
	in, e := readContactInput(r, f)
	if r.MultipartForm != nil {
		defer func() { _ = r.MultipartForm.RemoveAll() }()
	}
	if e != nil {
		return h.contactFail(c, f, e)
	}
	sub := &store.Submission{
		FormID: f.ID, CreatedAt: h.now(), ClientAddr: addr,
		Origin: recordedOrigin(in, origin, h.selfOrigin(r, origin), f), UserAgent: truncateUTF8(oneLine(r.UserAgent(), 512), 512),
		Fields: in.fields, Files: in.files, Status: submissionQueued,
	}
	key, err := h.contact.keys.get(ctx, h.store)
	if err != nil {
		h.log.Error("contact form: time-trap key", "err", err)
		return h.contactFail(c, f, errUnavailable())
	}

	// Spam checks that block quietly: the sender gets the answer of a
	// success and learns nothing; the admin can release the submission.
	if in.honeypot != "" {
		return h.storeBlocked(c, f, in, sub, blockHoneypot)
	}
	verdict, issued := checkToken(key, f.ID, in.token, h.now())
	if verdict == tokenForged {
		return h.storeBlocked(c, f, in, sub, blockForged)
	}

	if len(nonEmpty(in.fields)) == 0 && len(in.files) == 0 {
		return h.contactFail(c, f, &contactError{status: http.StatusUnprocessableEntity, code: "empty",
			msg: "Your message is empty. Please fill in the form."})
	}
	rt, rtErr := replyTo(in)
	if verdict != tokenOK || rtErr != nil {
		return h.contactRetry(c, f, in, sub, key, verdict, issued, rtErr)
	}
	if f.CaptchaProvider != "" {
		if e := h.checkCaptcha(ctx, f, in, addr); e != nil {
			return h.contactFail(c, f, e)
		}
	}
	if rt != nil {
		sub.ReplyTo = rt.Address
	}
	item, err := composeContact(f, in, sub, rt, sub.CreatedAt)
	if err != nil {
		// Only the form's own settings can make this fail.
		h.log.Error("contact form: cannot compose; check the form's settings", "form", f.Slug, "err", err)
		return h.contactFail(c, f, cerr(http.StatusInternalServerError, "form_misconfigured",
			"Sorry, this form is not set up correctly, so your message was not sent. Please contact the site's owner another way."))
	}
	if e := h.enqueue(ctx, f, sub, item, addr); e != nil {
		return h.contactFail(c, f, e)
	}
	h.log.Info("contact form: submission queued", "form", f.Slug, "submission", sub.ID, "outbox", item.ID, "remote", addr)
	if h.contact.kick != nil {
		h.contact.kick.Kick()
	}
	return h.contactSucceed(c, f, sub.Origin)
}

// enqueue counts the submission against the rate limits, or refuses it,
// and stores it with its outbox item, durably, in one transaction.
func (h *Handler) enqueue(ctx context.Context, f *store.Form, sub *store.Submission, item *store.OutboxItem, addr string) *contactError {
	if e := h.takeRates(ctx, f, addr); e != nil {
		return e
	}
	if err := h.forms.EnqueueSubmission(ctx, sub, item); err != nil {
		h.log.Error("contact form: store submission", "form", f.Slug, "submission_status", sub.Status, "err", err)
		return errUnavailable()
	}
	return nil
}

// storeBlocked keeps a submission caught by a spam check, with the reason,
// and answers as for a success. Its message is composed all the same, so
// that an admin can release it as it is.
func (h *Handler) storeBlocked(c echo.Context, f *store.Form, in *contactInput, sub *store.Submission, reason string) error {
	ctx := c.Request().Context()
	rt, _ := replyTo(in)
	if rt != nil {
		sub.ReplyTo = rt.Address
	}
	sub.Status, sub.BlockReason = submissionBlocked, reason
	item, err := composeContact(f, in, sub, rt, sub.CreatedAt)
	if err != nil {
		h.log.Error("contact form: cannot compose; check the form's settings", "form", f.Slug, "err", err)
		item = nil
	}
	if e := h.enqueue(ctx, f, sub, item, sub.ClientAddr); e != nil {
		return h.contactFail(c, f, e)
	}
	h.log.Warn("contact form: submission blocked", "form", f.Slug, "submission", sub.ID, "reason", reason, "remote", sub.ClientAddr)
	return h.contactSucceed(c, f, sub.Origin)
}

// contactRetry answers a submission that needs another step: no token
// yet (a plain form), a token too young or too old, or an email address
// to fix. Scripts (JSON) get an error to show; browsers get the
// confirmation page.
func (h *Handler) contactRetry(c echo.Context, f *store.Form, in *contactInput, sub *store.Submission, key []byte,
	verdict tokenVerdict, issued time.Time, rtErr *contactError) error {
	if wantsJSON(c.Request()) || in.json {
		switch verdict {
		case tokenMissing:
			return h.contactFail(c, f, cerr(http.StatusUnprocessableEntity, "token_missing",
				"The form was sent without its token. Please reload the page and try again."))
		case tokenTooFast:
			return h.contactFail(c, f, cerr(http.StatusUnprocessableEntity, "too_fast",
				"That was quick! Please wait a few seconds, then send your message again."))
		case tokenExpired:
			return h.contactFail(c, f, cerr(http.StatusUnprocessableEntity, "expired",
				"This page was open for a long time. Please reload it and send your message again."))
		}
		return h.contactFail(c, f, rtErr)
	}
	v := views.ContactConfirm{
		Action: contactPathPrefix + f.Slug, FormName: f.Name, Origin: sub.Origin,
		Token: signToken(key, f.ID, h.now()),
	}
	status := http.StatusOK
	switch verdict {
	case tokenTooFast:
		// Keep the token: its age keeps growing, so the next press works.
		v.Token = in.token
		v.Notice = "Please take a moment to check your message, then press Send."
	case tokenExpired:
		v.Notice = "This page was open for a long time. Please check your message and press Send again."
	}
	if rtErr != nil {
		status = rtErr.status
		v.EmailError = rtErr.msg
	}
	for _, fv := range in.fields {
		if fv.Name == fieldEmail && rtErr != nil {
			v.Email = fv.Value
			v.EditEmail = true
			continue
		}
		v.Fields = append(v.Fields, views.ContactField{Name: fv.Name, Value: fv.Value})
	}
	for _, file := range in.files {
		v.Files = append(v.Files, views.ContactFile{Name: file.Name, ContentType: file.ContentType, Data: file.Data})
	}
	if in.captcha != "" {
		v.Captcha = views.ContactField{Name: captchaFields[f.CaptchaProvider], Value: in.captcha}
	}
	// The confirmation page posts here, and the answer may redirect to
	// the form's own pages: form-action must allow those.
	c.Response().Header().Set("Content-Security-Policy", contactConfirmCSP(f))
	return render(c, status, views.ContactConfirmPage(views.ContactPage{Title: "Confirm your message", FormName: f.Name}, v))
}

// contactConfirmCSP is the page CSP with form-action widened to the
// form's redirect targets.
func contactConfirmCSP(f *store.Form) string {
	extra := ""
	for _, u := range []string{f.SuccessURL, f.ErrorURL} {
		if o, err := normalizeOrigin(u); err == nil && !strings.Contains(extra, o) {
			extra += " " + o
		}
	}
	return strings.Replace(contentSecurityPolicy, "form-action 'self'", "form-action 'self'"+extra, 1)
}

// recordedOrigin is the origin kept with a submission: the Origin header,
// or, for a post from sockmail's confirmation page, the site's origin the
// page carried (when the form accepts it).
func recordedOrigin(in *contactInput, origin string, self bool, f *store.Form) string {
	if self {
		if o, err := normalizeOrigin(in.origin); err == nil && (len(f.AllowedOrigins) == 0 || corsAllowed(f, o)) {
			return o
		}
	}
	return truncateUTF8(oneLine(origin, 200), 200)
}

// nonEmpty returns the fields that hold something.
func nonEmpty(fields []store.FieldValue) []store.FieldValue {
	var out []store.FieldValue
	for _, f := range fields {
		if strings.TrimSpace(f.Value) != "" {
			out = append(out, f)
		}
	}
	return out
}

// checkCaptcha verifies the captcha answer with the form's provider.
func (h *Handler) checkCaptcha(ctx context.Context, f *store.Form, in *contactInput, addr string) *contactError {
	secret, err := h.sealer.Open(f.CaptchaSecretEnc)
	if err != nil {
		h.log.Error("contact form: captcha secret cannot be decrypted; save it again", "form", f.Slug, "err", err)
		return errUnavailable()
	}
	ok, err := h.contact.captcha.verify(ctx, f.CaptchaProvider, string(secret), in.captcha, addr)
	if err != nil {
		h.log.Error("contact form: captcha verification", "form", f.Slug, "err", err)
		return &contactError{status: http.StatusServiceUnavailable, code: "captcha_unavailable", retryAfter: 60,
			msg: "Sorry, the anti-spam check is not answering right now, so your message was not sent. Please try again in a few minutes."}
	}
	if !ok {
		return &contactError{status: http.StatusUnprocessableEntity, code: "captcha_failed", field: captchaFields[f.CaptchaProvider],
			msg: "The anti-spam check did not pass. Please solve it again, then send your message."}
	}
	return nil
}

// contactToken is GET /f/{slug}/token: a fresh time-trap token for the
// fetch() variant.
func (h *Handler) contactToken(c echo.Context) error {
	f, e := h.loadPublicForm(c)
	if e != nil {
		return c.JSON(e.status, contactJSON{Error: e.code, Message: e.msg})
	}
	setCORS(c, f)
	origin := c.Request().Header.Get("Origin")
	if !h.originAccepted(c.Request(), f, origin) {
		return c.JSON(http.StatusForbidden, contactJSON{Error: "origin_refused", Message: "This form does not take messages from this website."})
	}
	if !f.Enabled {
		return c.JSON(http.StatusForbidden, contactJSON{Error: "form_disabled", Message: "This form is not taking messages at the moment."})
	}
	key, err := h.contact.keys.get(c.Request().Context(), h.store)
	if err != nil {
		h.log.Error("contact form: time-trap key", "err", err)
		e := errUnavailable()
		c.Response().Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
		return c.JSON(e.status, contactJSON{Error: e.code, Message: e.msg})
	}
	return c.JSON(http.StatusOK, map[string]any{
		"token": signToken(key, f.ID, h.now()), "field": fieldToken,
		"min_wait_ms": tokenMinAge.Milliseconds(), "max_age_s": int(tokenMaxAge.Seconds()),
	})
}

// contactThanks is sockmail's own thank-you page, for forms without a
// success URL. It links back to the site when the origin is one the form
// allows.
func (h *Handler) contactThanks(c echo.Context) error {
	p := views.ContactPage{Title: "Thank you"}
	back := ""
	if f, e := h.loadPublicForm(c); e == nil {
		p.FormName = f.Name
		if o := c.QueryParam("origin"); corsAllowed(f, o) {
			back = o + "/"
		}
	}
	return render(c, http.StatusOK, views.ContactThanksPage(p, thanksMessage, back))
}

// normalizeOrigin returns the serialized origin of an http(s) URL,
// "scheme://host[:port]" as browsers send it: lower case, default port
// dropped.
func normalizeOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("not an http(s) origin: %q", s)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "80" && scheme == "http" || port == "443" && scheme == "https" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}
