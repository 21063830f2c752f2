package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/store"
	"sockmail/static"
	"sockmail/views"
)

// Body limits: most forms are small; the compose form carries attachments.
const smallBodyLimit = 256 << 10

// contentSecurityPolicy allows only the app's own scripts, styles and
// images. srcdoc frames (captured HTML mail) inherit it, so remote content
// in a captured message is blocked too.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; frame-src 'self'"

// clientAddr says where a request comes from, for throttling and logs:
// the TCP peer, or with trusted proxies configured the nearest address in
// X-Forwarded-For that is not one of them. X-Forwarded-For from anyone
// else is ignored, so a visitor cannot pick the address its rate limits
// count against.
func (h *Handler) clientAddr() echo.IPExtractor {
	if len(h.proxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range h.proxies {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// Routes returns the echo router with every route and middleware: the
// one the server runs and the one tests drive.
//
// Routes are in groups, each with its own middleware and body limit; no
// middleware looks at the path to decide whether it applies:
//   - /healthz: any Host, no session, no body, quiet logs;
//   - every other route answers only sockmail's own host names (checkHost);
//   - /static/: no session, no body, quiet logs;
//   - the public contact endpoints (/f/...): no cookie, no CSRF token (they
//     act for nobody signed in and have their own defences, contact.go),
//     the largest body a contact form may accept;
//   - the browser pages (sign-up, sign-in, sign-out): cookie session and
//     CSRF protection, small bodies;
//   - the admin pages: the same plus a signed-in admin;
//   - the HTTP API (/api/v1, api.go): a Bearer token, no cookie, no CSRF
//     token, problem details for errors, small bodies;
//   - compose: the admin group's middleware; its body is read as a stream
//     that keeps the fields of a form with files over the limit.
func (h *Handler) Routes() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.IPExtractor = h.clientAddr()
	e.HTTPErrorHandler = h.handleError
	e.Use(h.recoverPanics, h.logRequests, h.securityHeaders)

	// /healthz answers any Host (load balancers probe by address): it
	// says "ok" or "store unavailable" and nothing else. Everything else
	// answers only its own host names (checkHost, against DNS rebinding).
	e.GET("/healthz", h.healthz, quiet, noStore)
	site := e.Group("", h.checkHost)
	site.GET("/static/*", echo.WrapHandler(http.StripPrefix("/static/", http.FileServerFS(static.FS))), quiet)
	site.GET("/favicon.ico", favicon, quiet)

	h.apiRoutes(h.apiGroup(site))
	h.metricsRoute(site)
	h.contactRoutes(site.Group("/f", noStore, h.limitBody(h.contactMaxBody())))

	pages := site.Group("", noStore, h.limitBody(smallBodyLimit), h.loadSession, h.checkCSRF)
	pages.GET("/signup", h.signUpPage)
	pages.POST("/signup", h.signUp)
	pages.GET("/signin", h.signInPage)
	pages.POST("/signin", h.signIn)
	pages.POST("/signout", h.signOut)

	// The compose body is read as a stream before the CSRF check (which
	// reads the token from it): readComposeForm keeps every field of a
	// form whose files are over the limit, so that it comes back in full.
	upload := site.Group("/compose", noStore, h.loadSession, h.requireUser, h.readComposeForm, h.checkCSRF)
	upload.GET("", h.composePage)
	upload.POST("", h.compose)

	a := pages.Group("", h.requireUser)
	a.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/compose") })
	a.GET("/sends/:id", h.resultPage)
	a.GET("/sends/:id/events", h.events)
	a.POST("/sends/:id/cancel", h.cancelSend)
	a.GET("/sends/:id/transcript.txt", h.transcriptText)
	a.GET("/sends/:id/transcript.json", h.transcriptJSON)
	a.GET("/sends/:id/message.eml", h.messageEML)
	a.GET("/profiles", h.profilesPage)
	a.GET("/profiles/new", h.newProfilePage)
	a.POST("/profiles", h.createProfile)
	a.GET("/profiles/:id", h.editProfilePage)
	a.POST("/profiles/:id", h.updateProfile)
	a.POST("/profiles/:id/delete", h.deleteProfile)
	a.GET("/captured", h.capturedList)
	a.GET("/captured/:id", h.capturedView)
	a.GET("/captured/:id/raw", h.capturedRaw)
	a.GET("/captured/:id/parts/:n", h.capturedPart)
	h.capturedRoutes(a)
	h.historyRoutes(a)
	h.checkRoutes(a)
	h.monitorRoutes(a)
	h.chartRoutes(a)
	h.diagramRoutes(a)
	h.formRoutes(a)
	h.tokenRoutes(a)
	return e
}

// favicon answers /favicon.ico, which browsers ask for by themselves
// (pages link /static/favicon.svg): the same SVG icon.
func favicon(c echo.Context) error {
	b, err := static.FS.ReadFile("favicon.svg")
	if err != nil {
		return fmt.Errorf("handlers: favicon: %w", err)
	}
	return c.Blob(http.StatusOK, "image/svg+xml", b)
}

// writeHealther is a store that tells whether it takes writes
// (*store.Store's WriteHealth: a probe write and the last storage
// failure of any write).
type writeHealther interface {
	WriteHealth(ctx context.Context) error
}

// healthz answers 200 "ok" while the database answers reads and takes
// writes, else 503 with the reason ("database cannot take writes: disk
// full"), so that a monitor or load balancer sees an instance that can
// store nothing.
func (h *Handler) healthz(c echo.Context) error {
	ctx := c.Request().Context()
	if _, err := h.accounts.CountUsers(ctx); err != nil {
		h.log.Error("health check: store", "err", err)
		return c.String(http.StatusServiceUnavailable, "store unavailable\n")
	}
	if wh, ok := h.accounts.(writeHealther); ok {
		if err := wh.WriteHealth(ctx); err != nil {
			h.log.Error("health check: writes", "err", err)
			if se, ok := store.StorageFailure(err); ok {
				return c.String(http.StatusServiceUnavailable, "database cannot take writes: "+se.Reason+"\n")
			}
			return c.String(http.StatusServiceUnavailable, "database cannot take writes\n")
		}
	}
	return c.String(http.StatusOK, "ok\n")
}

func (h *Handler) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				h.log.Error("panic in handler", "panic", r, "path", c.Request().URL.Path)
				err = echo.NewHTTPError(http.StatusInternalServerError)
			}
		}()
		return next(c)
	}
}

// logRequests writes one structured line per request. Query strings are
// not logged (they could carry anything); form bodies never are.
func (h *Handler) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		level := slog.LevelInfo
		if q, _ := c.Get(ctxQuiet).(bool); q {
			level = slog.LevelDebug
		}
		h.log.Log(c.Request().Context(), level, "http request",
			"method", c.Request().Method, "path", c.Request().URL.Path,
			"status", c.Response().Status, "bytes", c.Response().Size,
			"ms", float64(time.Since(start).Microseconds())/1000, "remote", c.RealIP())
		return nil
	}
}

func (h *Handler) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		hd := c.Response().Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		if h.secure {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		return next(c)
	}
}

// ctxQuiet marks a request logged at debug level (quiet).
const ctxQuiet = "sockmail.quiet"

// quiet logs a route's requests at debug level: health checks and static
// files would drown the log.
func quiet(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Set(ctxQuiet, true)
		return next(c)
	}
}

// noStore keeps a route's answers out of caches: pages carry CSRF tokens
// and private data.
func noStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-store")
		return next(c)
	}
}

// limitBody bounds the request bodies of a group to limit bytes.
func (h *Handler) limitBody(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.ContentLength > limit {
				return echo.NewHTTPError(http.StatusRequestEntityTooLarge, "The form is larger than the limit of "+views.Bytes(limit)+".")
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
			return next(c)
		}
	}
}

// handleError is the one error handler: it renders the error page, and
// logs what is not an *echo.HTTPError.
func (h *Handler) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code := http.StatusInternalServerError
	msg := "Something went wrong on our side; the details are in the server log."
	var he *echo.HTTPError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		code = he.Code
		if m, ok := he.Message.(string); ok {
			msg = m
		} else {
			msg = http.StatusText(code)
		}
	case errors.As(err, &mbe):
		code = http.StatusRequestEntityTooLarge
		msg = "The form is larger than the limit of " + views.Bytes(mbe.Limit) + "."
	case errors.Is(err, store.ErrStorage) || isStorageFailure(err):
		// Not the request's fault, and the admin can act on it.
		code = http.StatusServiceUnavailable
		msg = storageMessage(err, false)
		c.Response().Header().Set("Retry-After", "30")
		h.log.Error("request failed: the database cannot take writes", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	default:
		h.log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(code)
		return
	}
	if strings.HasPrefix(c.Request().Header.Get("Accept"), "text/event-stream") || !acceptsHTML(c.Request()) {
		_ = c.String(code, msg+"\n")
		return
	}
	if rerr := render(c, code, views.ErrorPage(h.page(c, http.StatusText(code), ""), code, msg)); rerr != nil {
		h.log.Error("render error page", "err", rerr)
	}
}

// isStorageFailure reports whether err is the database refusing writes
// (store.StorageFailure).
func isStorageFailure(err error) bool {
	_, ok := store.StorageFailure(err)
	return ok
}

// storageMessage tells an admin that the database refused a write and
// why, that nothing was saved, and where what they typed is: kept in the
// form shown again (kept), or in the page they came from.
func storageMessage(err error, kept bool) string {
	reason := "it refused the write"
	if se, ok := store.StorageFailure(err); ok {
		reason = se.Reason
	}
	typed := "go back to keep what you typed, and try again"
	if kept {
		typed = "what you typed is kept below (passwords excepted): try again"
	}
	return "The database cannot take writes right now: " + reason + ". Nothing was saved; " + typed +
		" once it is fixed (the server log has the details)."
}

// storageRefused logs a write the database refused, asks the client to
// retry later (Retry-After) and returns the message for the form that is
// shown again with what was typed.
func (h *Handler) storageRefused(c echo.Context, err error) string {
	h.log.Error("request failed: the database cannot take writes", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	c.Response().Header().Set("Retry-After", "30")
	return storageMessage(err, true)
}

func acceptsHTML(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return a == "" || strings.Contains(a, "text/html") || strings.Contains(a, "*/*")
}
