package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"sockmail/internal/contact"
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
// with it: no extra step. Tokens are signed per form (internal/contact).
//
// What a post becomes (stored, blocked, refused) is decided by
// internal/contact; this file decodes the request and answers.
//
// The public endpoint is not cookie-authenticated: it sets no cookie and
// reads none, so the admin CSRF check does not apply to it (auth.go skips
// paths under /f/); its defences are the ones above.

// contactPathPrefix starts every public contact path.
const contactPathPrefix = "/f/"

// contactRoutes registers the public endpoint on its group (/f), which
// has no cookie session and no CSRF check (Routes).
func (h *Handler) contactRoutes(g *echo.Group) {
	g.POST("/:slug", h.contactPost)
	g.OPTIONS("/:slug", h.contactPreflight)
	g.GET("/:slug/token", h.contactToken)
	g.OPTIONS("/:slug/token", h.contactPreflight)
	g.GET("/:slug/thanks", h.contactThanks)
}

// contactMaxBody bounds a request to any contact form, before the form
// is known.
func (h *Handler) contactMaxBody() int64 { return contact.MaxBody(h.maxUp) }

// loadPublicForm finds the form of the request's slug.
func (h *Handler) loadPublicForm(c echo.Context) (*store.Form, *contact.Problem) {
	notFound := contact.ErrNotFound()
	slug := c.Param("slug")
	if slug == "" || len(slug) > store.MaxSlugLength {
		return nil, notFound
	}
	f, err := h.forms.PublicForm(c.Request().Context(), slug)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		h.log.Error("contact form: load form", "slug", slug, "err", err)
		return nil, contact.ErrUnavailable()
	}
	return f, nil
}

// selfOrigin reports whether origin is sockmail's own (its confirmation
// page posting back).
func (h *Handler) selfOrigin(r *http.Request, origin string) bool {
	if h.baseURL != "" {
		if o, err := contact.NormalizeOrigin(h.baseURL); err == nil && o == origin {
			return true
		}
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// originAccepted reports whether a submission from origin is accepted:
// any when the form lists no origins, else only those listed and
// sockmail's own. A request without Origin (not from a browser) passes;
// a browser always sends it with a POST.
func (h *Handler) originAccepted(r *http.Request, f *store.Form, origin string) bool {
	return origin == "" || len(f.AllowedOrigins) == 0 || contact.Allowed(f, origin) || h.selfOrigin(r, origin)
}

// setCORS adds the CORS answer headers for an allowed origin.
func setCORS(c echo.Context, f *store.Form) {
	hd := c.Response().Header()
	hd.Add("Vary", "Origin")
	if origin := c.Request().Header.Get("Origin"); contact.Allowed(f, origin) {
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
		return c.NoContent(cerr.Status)
	}
	method := http.MethodPost
	if strings.HasSuffix(r.URL.Path, "/token") {
		method = http.MethodGet
	}
	origin := r.Header.Get("Origin")
	if !contact.Allowed(f, origin) || r.Header.Get("Access-Control-Request-Method") != method {
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
	// AlreadyReceived marks the answer to a repeated post (same token):
	// ok, and nothing was stored or sent again.
	AlreadyReceived bool `json:"already_received,omitempty"`
}

const thanksMessage = "Thank you! Your message has been received and will be delivered shortly."

// contactFail answers with a friendly error: JSON, a redirect to the
// form's error page, or sockmail's own error page with the real status.
func (h *Handler) contactFail(c echo.Context, f *store.Form, e *contact.Problem) error {
	if s := e.RetryAfterSeconds(); s > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(s))
	}
	if wantsJSON(c.Request()) {
		return c.JSON(e.Status, contactJSON{Error: e.Code, Message: e.Message, Field: e.Field})
	}
	if f != nil && f.ErrorURL != "" {
		return c.Redirect(http.StatusSeeOther, withQuery(f.ErrorURL, "error", e.Code))
	}
	name := ""
	if f != nil {
		name = f.Name
	}
	return render(c, e.Status, views.ContactErrorPage(views.ContactPage{Title: "Your message was not sent", FormName: name},
		e.Status, e.Message))
}

// contactSucceed answers an accepted (or quietly blocked, or already
// received) submission. A browser goes to the same thank-you page
// whether or not its post was a repeat.
func (h *Handler) contactSucceed(c echo.Context, f *store.Form, out contact.Outcome) error {
	origin := out.Origin
	if wantsJSON(c.Request()) {
		if out.Kind == contact.AlreadyReceived {
			return c.JSON(http.StatusOK, contactJSON{OK: true, Message: contact.AlreadyReceivedMessage, AlreadyReceived: true})
		}
		return c.JSON(http.StatusOK, contactJSON{OK: true, Message: thanksMessage})
	}
	if f.SuccessURL != "" {
		return c.Redirect(http.StatusSeeOther, f.SuccessURL)
	}
	to := contactPathPrefix + f.Slug + "/thanks"
	if origin != "" && contact.Allowed(f, origin) {
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

// contactPost is POST /f/{slug}.
func (h *Handler) contactPost(c echo.Context) error {
	r := c.Request()
	f, p := h.loadPublicForm(c)
	if p != nil {
		return h.contactFail(c, nil, p)
	}
	setCORS(c, f)
	origin := r.Header.Get("Origin")
	if !h.originAccepted(r, f, origin) {
		h.log.Warn("contact form: origin refused", "form", f.Slug, "origin", origin)
		return h.contactFail(c, f, contact.ErrOriginRefused())
	}
	addr := c.RealIP()
	if p := h.contact.svc.Precheck(r.Context(), f, addr); p != nil {
		return h.contactFail(c, f, p)
	}
	limit := contact.BodyLimit(f)
	if r.ContentLength > limit {
		return h.contactFail(c, f, contact.ErrTooLarge(limit))
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
	body, p := readContactBody(r)
	if r.MultipartForm != nil {
		defer func() { _ = r.MultipartForm.RemoveAll() }()
	}
	if p != nil {
		return h.contactFail(c, f, p)
	}
	out := h.contact.svc.Submit(r.Context(), contact.Input{
		Form: f, Values: body.values, Uploads: body.uploads, ClientAddr: addr,
		Origin: origin, SelfOrigin: h.selfOrigin(r, origin), UserAgent: r.UserAgent(),
	})
	switch {
	case out.OK():
		return h.contactSucceed(c, f, out)
	case out.Confirm != nil && !wantsJSON(r) && !body.json:
		return h.contactConfirm(c, f, out.Confirm)
	}
	return h.contactFail(c, f, out.Problem)
}

// contactConfirm shows sockmail's confirmation page: the message as the
// visitor typed it, a token, and what to fix.
func (h *Handler) contactConfirm(c echo.Context, f *store.Form, cf *contact.Confirmation) error {
	v := views.ContactConfirm{
		Action: contactPathPrefix + f.Slug, FormName: f.Name, Origin: cf.Origin, Token: cf.Token,
		Notice: cf.Notice, EmailError: cf.EmailError, Email: cf.Email, EditEmail: cf.EditEmail,
	}
	for _, fv := range cf.Fields {
		v.Fields = append(v.Fields, views.ContactField{Name: fv.Name, Value: fv.Value})
	}
	for _, file := range cf.Files {
		v.Files = append(v.Files, views.ContactFile{Name: file.Name, ContentType: file.ContentType, Data: file.Data})
	}
	if cf.CaptchaValue != "" {
		v.Captcha = views.ContactField{Name: cf.CaptchaField, Value: cf.CaptchaValue}
	}
	// The confirmation page posts here, and the answer may redirect to
	// the form's own pages: form-action must allow those.
	c.Response().Header().Set("Content-Security-Policy", contactConfirmCSP(f))
	return render(c, cf.Status, views.ContactConfirmPage(views.ContactPage{Title: "Confirm your message", FormName: f.Name}, v))
}

// contactConfirmCSP is the page CSP with form-action widened to the
// form's redirect targets.
func contactConfirmCSP(f *store.Form) string {
	extra := ""
	for _, u := range []string{f.SuccessURL, f.ErrorURL} {
		if o, err := contact.NormalizeOrigin(u); err == nil && !strings.Contains(extra, o) {
			extra += " " + o
		}
	}
	return strings.Replace(contentSecurityPolicy, "form-action 'self'", "form-action 'self'"+extra, 1)
}

// contactTokenJSON is the answer of GET /f/{slug}/token.
type contactTokenJSON struct {
	Token string `json:"token"`
	Field string `json:"field"`
}

// contactToken is GET /f/{slug}/token: a fresh time-trap token for the
// fetch() variant.
func (h *Handler) contactToken(c echo.Context) error {
	f, e := h.loadPublicForm(c)
	if e != nil {
		return c.JSON(e.Status, contactJSON{Error: e.Code, Message: e.Message})
	}
	setCORS(c, f)
	origin := c.Request().Header.Get("Origin")
	if !h.originAccepted(c.Request(), f, origin) {
		p := contact.ErrOriginRefused()
		return c.JSON(p.Status, contactJSON{Error: p.Code, Message: p.Message})
	}
	tok, p := h.contact.svc.NewToken(c.Request().Context(), f)
	if p != nil {
		if s := p.RetryAfterSeconds(); s > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(s))
		}
		return c.JSON(p.Status, contactJSON{Error: p.Code, Message: p.Message})
	}
	// Only what the page needs: the opaque token and the field to post
	// it in (neither the form's internal id nor the server's clock).
	return c.JSON(http.StatusOK, contactTokenJSON{Token: tok.Value, Field: tok.Field})
}

// contactThanks is sockmail's own thank-you page, for forms without a
// success URL. It links back to the site when the origin is one the form
// allows.
func (h *Handler) contactThanks(c echo.Context) error {
	p := views.ContactPage{Title: "Thank you"}
	back := ""
	if f, e := h.loadPublicForm(c); e == nil {
		p.FormName = f.Name
		if o := c.QueryParam("origin"); contact.Allowed(f, o) {
			back = o + "/"
		}
	}
	return render(c, http.StatusOK, views.ContactThanksPage(p, thanksMessage, back))
}
