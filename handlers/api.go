package handlers

// The HTTP API under /api/v1: JSON for scripts and CI, authenticated by
// a Bearer token only (no cookie, no session, no CSRF token), each route
// needing a scope, each token rate limited, every error an RFC 9457
// problem details object. The handlers are thin: they read what the
// pages read (the same store queries, the same exports).

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/api"
	"sockmail/internal/store"
)

// API limits: requests per second and burst per token (in memory, per
// instance), the body of an API request, and how often a token's last
// use is written.
const (
	apiRate        = 10
	apiBurst       = 20
	apiBodyLimit   = 256 << 10
	apiTouchPeriod = time.Minute
)

// ctxToken holds the *store.APIToken of an API request.
const ctxToken = "sockmail.apitoken"

// TokenStore is what the API and the tokens page read and write.
type TokenStore interface {
	CreateAPIToken(ctx context.Context, t *store.APIToken) error
	APITokenByHash(ctx context.Context, hash string) (*store.APIToken, error)
	APITokens(ctx context.Context) ([]*store.APIToken, error)
	RevokeAPIToken(ctx context.Context, id int64, at time.Time) error
	TouchAPIToken(ctx context.Context, id int64, at time.Time) error
}

// openAPIDoc is the OpenAPI 3.1 document of the API, served at
// /api/v1/openapi.json (kept true by TestOpenAPIMatchesRoutes).
//
//go:embed api_openapi.json
var openAPIDoc []byte

// apiRoutes adds the API's routes to g (/api/v1). Each route carries its
// body limit, the token check and its scope as route middleware (not
// sub-groups, whose catch-all routes would answer an unknown path with a
// scope's 403 instead of a 404).
func (h *Handler) apiRoutes(g *echo.Group) {
	g.GET("/openapi.json", func(c echo.Context) error { return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPIDoc) })
	g.POST("/sends", h.apiStartSend, h.apiGuard(h.apiSendBodyLimit(), api.ScopeSend)...)
	read := h.apiGuard(apiBodyLimit, api.ScopeRead)
	g.GET("/sends", h.apiListSends, read...)
	g.GET("/sends/:id", h.transcriptJSON, read...)
	g.GET("/sends/:id/events", h.events, read...)
	g.GET("/sends/:id/transcript", h.apiTranscript, read...)
	g.GET("/sends/:id/message.eml", h.messageEML, read...)
	g.POST("/sends/:id/cancel", h.apiCancelSend, h.apiGuard(apiBodyLimit, api.ScopeSend)...)
	h.apiCapturedRoutes(g)
	h.apiOutboxRoutes(g)
	h.apiCheckRoutes(g)
}

// apiGuard is the middleware of an API route: its body limit, a usable
// token (apiAuth) and the scope.
func (h *Handler) apiGuard(bodyLimit int64, scope string) []echo.MiddlewareFunc {
	return []echo.MiddlewareFunc{h.limitBody(bodyLimit), h.apiAuth, apiScope(scope)}
}

// apiGroup returns the /api/v1 group: problem details for every error,
// no caching. apiRoutes bounds bodies route by route: small, but a send's
// attachments' limit for POST /sends.
func (h *Handler) apiGroup(site *echo.Group) *echo.Group {
	return site.Group("/api/v1", h.apiProblems, noStore)
}

// apiProblems answers every error of the routes after it as an RFC 9457
// problem details object (application/problem+json).
func (h *Handler) apiProblems(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err == nil || c.Response().Committed {
			return err
		}
		p := h.problemOf(c, err)
		c.Response().Header().Set(echo.HeaderContentType, api.ContentTypeProblem)
		return c.JSON(p.Status, p)
	}
}

// problemOf turns a handler's error into a problem: a *api.Problem as it
// is, an echo.HTTPError by its status and message, anything else a 500
// (logged) or a 503 when the store cannot be used.
func (h *Handler) problemOf(c echo.Context, err error) *api.Problem {
	inst := c.Request().URL.Path
	var p *api.Problem
	var he *echo.HTTPError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &p):
		p.Instance = inst
		return p
	case errors.As(err, &mbe):
		return api.NewProblem("too-large", "Request body too large", http.StatusRequestEntityTooLarge,
			fmt.Sprintf("The body is larger than the limit of %d bytes.", mbe.Limit), inst)
	case errors.As(err, &he):
		msg, _ := he.Message.(string)
		kind := map[int]string{http.StatusNotFound: "not-found", http.StatusBadRequest: "bad-request",
			http.StatusRequestEntityTooLarge: "too-large", http.StatusServiceUnavailable: "unavailable",
			http.StatusMethodNotAllowed: "method-not-allowed"}[he.Code]
		if kind == "" {
			kind = "http-" + strconv.Itoa(he.Code)
		}
		return api.NewProblem(kind, http.StatusText(he.Code), he.Code, msg, inst)
	case errors.Is(err, store.ErrStorage) || isStorageFailure(err):
		h.log.Error("api request", "path", inst, "err", err)
		return api.NewProblem("unavailable", "Storage unavailable", http.StatusServiceUnavailable,
			"The database cannot be used at the moment; the details are in the server log.", inst)
	}
	h.log.Error("api request", "path", inst, "err", err)
	return api.NewProblem("internal", "Internal error", http.StatusInternalServerError,
		"Something went wrong on our side; the details are in the server log.", inst)
}

// apiAuth admits a request that carries "Authorization: Bearer <token>"
// of a token neither revoked nor expired, within the token's rate limit.
// Cookies are not read: a request with only a session cookie gets 401.
func (h *Handler) apiAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		unauthorized := func(detail string) error {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="sockmail"`)
			return api.NewProblem("unauthorized", "Unauthorized", http.StatusUnauthorized, detail, "")
		}
		raw, ok := api.BearerToken(c.Request().Header.Get(echo.HeaderAuthorization))
		if !ok {
			return unauthorized("The API needs an \"Authorization: Bearer <token>\" header with an API token; cookies are not accepted.")
		}
		ctx := c.Request().Context()
		tok, err := h.tokens.APITokenByHash(ctx, api.HashToken(raw))
		if errors.Is(err, store.ErrNotFound) {
			return unauthorized("The token is not known.")
		}
		if err != nil {
			return fmt.Errorf("handlers: api token: %w", err)
		}
		now := h.now()
		if why := tok.Usable(now); why != "" {
			return unauthorized("The token is " + why + ".")
		}
		if ok, wait := h.apiLimit.Allow(tok.ID); !ok {
			secs := int(wait/time.Second) + 1
			c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
			return api.NewProblem("rate-limited", "Too many requests", http.StatusTooManyRequests,
				fmt.Sprintf("The token may make %d requests a second (bursts of %d); try again in %d s.", apiRate, apiBurst, secs), "")
		}
		if tok.LastUsedAt == nil || now.Sub(*tok.LastUsedAt) >= apiTouchPeriod {
			if err := h.tokens.TouchAPIToken(ctx, tok.ID, now); err != nil {
				h.log.Warn("api token last use", "token", tok.Name, "err", err)
			}
		}
		c.Set(ctxToken, tok)
		return next(c)
	}
}

// apiScope refuses (403) a token without the scope.
func apiScope(scope string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			tok, _ := c.Get(ctxToken).(*store.APIToken)
			if tok == nil || !api.HasScope(tok.Scopes, scope) {
				return api.NewProblem("forbidden", "Forbidden", http.StatusForbidden,
					fmt.Sprintf("This request needs a token with the %q scope.", scope), "")
			}
			return next(c)
		}
	}
}

// apiSend is a send as the API lists it.
type apiSend struct {
	ID         int64     `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	Source     string    `json:"source"`
	Server     string    `json:"server"`
	TLSMode    string    `json:"tls_mode"`
	MailFrom   string    `json:"mail_from"`
	Rcpts      []string  `json:"rcpts"`
	Subject    string    `json:"subject"`
	Status     string    `json:"status"`
	QueueID    string    `json:"queue_id,omitempty"`
	DurationMS float64   `json:"duration_ms"`
	Refused    int       `json:"refused"`
	ParentID   int64     `json:"parent_id,omitempty"`
	URL        string    `json:"url"`
}

// apiListSends lists the history with the /history page's filters and
// keyset pagination (before=<id>), the same store query.
func (h *Handler) apiListSends(c echo.Context) error {
	f := readHistoryForm(c.QueryParams())
	sf, errs := f.Validate(time.Local) // dates as the /history page reads them
	if len(errs) > 0 {
		for _, k := range []string{"status", "source", "recipient", "sender", "server", "q", "since", "until"} {
			if msg, ok := errs[k]; ok {
				return api.NewProblem("invalid-filter", "Invalid filter", http.StatusUnprocessableEntity, k+": "+msg, "")
			}
		}
		return api.NewProblem("invalid-filter", "Invalid filter", http.StatusUnprocessableEntity, fmt.Sprint(errs), "")
	}
	page, err := h.history.ListSends(c.Request().Context(), sf)
	if err != nil {
		return fmt.Errorf("handlers: api list sends: %w", err)
	}
	out := struct {
		Sends       []apiSend `json:"sends"`
		Total       int       `json:"total"`
		TotalCapped bool      `json:"total_capped"`
		Next        string    `json:"next,omitempty"`
	}{Sends: []apiSend{}, Total: page.Total, TotalCapped: page.TotalCapped}
	for i := range page.Sends {
		r := historyRow(&page.Sends[i])
		out.Sends = append(out.Sends, apiSend{ID: r.ID, CreatedAt: r.CreatedAt, Source: r.Source, Server: r.Server, TLSMode: r.TLSMode,
			MailFrom: r.MailFrom, Rcpts: r.Rcpts, Subject: r.Subject, Status: r.Status, QueueID: r.QueueID, DurationMS: r.DurationMS,
			Refused: r.Refused, ParentID: r.ParentID, URL: "/api/v1/sends/" + strconv.FormatInt(r.ID, 10)})
	}
	if page.NextBefore > 0 {
		q := f.values()
		q.Set("before", strconv.FormatInt(page.NextBefore, 10))
		out.Next = "/api/v1/sends?" + q.Encode()
	}
	return c.JSON(http.StatusOK, out)
}

// apiTranscript answers a send's transcript as JSON (the default) or as
// text (format=text), the result page's two exports.
func (h *Handler) apiTranscript(c echo.Context) error {
	switch c.QueryParam("format") {
	case "", "json":
		return h.transcriptJSON(c)
	case "text":
		return h.transcriptText(c)
	}
	return api.NewProblem("bad-request", "Bad request", http.StatusBadRequest, `format must be "json" or "text".`, "")
}
