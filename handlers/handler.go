// Package handlers holds sockmail's echo handlers: one Handler struct
// holding its dependencies, built by New, with one file per area (auth,
// compose, result, profiles, captured mail). The interfaces it consumes are
// declared here, beside it.
package handlers

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/a-h/templ"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"

	"sockmail/internal/api"
	"sockmail/internal/contact"
	"sockmail/internal/delivery"
)

// Store is everything the handlers and the services they build read and
// write; *store.Store is one. Each area of the handlers holds only the
// small interface it needs (Accounts, ProfileStore, HistoryStore,
// CapturedStore, FormStore), declared in its own file.
type Store interface {
	Accounts
	ProfileStore
	HistoryStore
	CapturedStore
	FormStore
	CheckStore
	TokenStore
	delivery.Store
	contact.Attempts
	contact.Settings
	delivery.SendReader
}

// Sealer encrypts stored SMTP passwords. *crypt.Box is one.
type Sealer interface {
	Seal(plaintext []byte) ([]byte, error)
	Open(ciphertext []byte) ([]byte, error)
}

// SendFunc runs one SMTP send. smtp.SendMail is the real one; tests may
// pass another.
type SendFunc = delivery.SendFunc

// CaptureServer describes the built-in capture server, offered on the
// compose page as the default server.
type CaptureServer struct {
	// Addr is its host:port; empty when it is off.
	Addr string
	// Certificate is its self-signed certificate, trusted for sends.
	Certificate *x509.Certificate
	// Notifier, when not nil, wakes the live captured-mail list as soon
	// as the capture server stores a message.
	Notifier CapturedNotifier
}

// Deps is everything a Handler needs.
type Deps struct {
	Store  Store
	Sealer Sealer
	Logger *slog.Logger
	// SessionKeys are the gorilla/securecookie hash key (64 bytes) and
	// block key (32 bytes).
	SessionHashKey, SessionBlockKey []byte
	// SecureCookies marks cookies Secure (the app is served over TLS).
	SecureCookies bool
	// SessionLifetime bounds a sign-in.
	SessionLifetime time.Duration
	// BaseURL is the public origin, trusted for cross-origin checks; its
	// host and port are answered besides the address a request comes in
	// on (hostPolicy, against DNS rebinding).
	BaseURL string
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client's address; with none the TCP peer's address is used.
	TrustedProxies []*net.IPNet
	// Delivery runs and records sends. If nil, New builds one from Store,
	// Sealer, Capture, RootCAs, Send, Now, SendTimeout and Logger, and
	// Handler.Shutdown shuts it down.
	Delivery *delivery.Service
	// SendTimeout bounds one test send.
	SendTimeout time.Duration
	// MaxUpload bounds the attachments of a compose form together, in
	// bytes: the one limit its hint, the browser check and the server
	// error state (the other fields have their own, composeFieldsLimit).
	MaxUpload int64
	// Capture is the built-in capture server.
	Capture CaptureServer
	// RootCAs verifies the servers sends go to; the system pool if nil.
	// The capture server's certificate is added to it.
	RootCAs *x509.CertPool
	// Send runs sends; smtp.SendMail if nil.
	Send SendFunc
	// Now returns the time; time.Now if nil.
	Now func() time.Time
	// BcryptCost is the cost of new password hashes; bcrypt.DefaultCost
	// if 0. Tests lower it.
	BcryptCost int
	// Retention is the history retention policy (ApplyRetention).
	Retention Retention
	// MaxStoredMessage caps the message source kept with a send, in
	// bytes; 10 MiB if 0. A longer message is kept truncated.
	MaxStoredMessage int64

	// Forms, when not nil, replaces Store for contact forms, submissions
	// and the outbox; tests use it to make the database fail.
	Forms FormStore
	// Kicker wakes the outbox worker after a submission; optional.
	Kicker Kicker
	// CaptchaVerifyURLs replaces providers' verification endpoints
	// (DefaultCaptchaVerifyURLs); tests point them at local servers.
	CaptchaVerifyURLs map[string]string
	// HTTPClient makes the captcha verifications; one with a 10 s timeout
	// if nil.
	HTTPClient *http.Client

	// CheckResolver is the DNS resolver (host:port) of checks run from
	// the Check page; empty: the first nameserver of /etc/resolv.conf.
	CheckResolver string

	// CapturedPoll is how often the live captured-mail list looks for
	// mail another instance captured; 5 s if 0.
	CapturedPoll time.Duration

	// Monitors serves the monitor pages; nil: they answer 404.
	Monitors *Monitors

	// Metrics serves /metrics (metrics.Handler) to API tokens with the
	// metrics or admin scope; nil: no /metrics route.
	Metrics http.Handler
}

// Handler serves sockmail's web pages.
type Handler struct {
	// monitors serves the monitor pages (nil: off).
	monitors *Monitors
	// metrics serves /metrics (nil: off; metrics.go).
	metrics  http.Handler
	accounts Accounts
	profiles ProfileStore
	history  HistoryStore
	captured CapturedStore
	sealer   Sealer
	log      *slog.Logger
	cookies  *sessions.CookieStore
	secure   bool
	lifetime time.Duration
	baseURL  string
	proxies  []*net.IPNet
	maxUp    int64
	capture  CaptureServer
	now      func() time.Time
	cop      *http.CrossOriginProtection
	hosts    hostPolicy
	// deviceKey signs device cookies (device.go).
	deviceKey []byte

	bcryptCost int
	dummyHash  string
	retention  Retention
	maxStored  int64

	// Contact forms (forms.go, contact.go).
	forms   FormDefs
	queue   QueueStore
	contact *contactState

	// sends resolves targets, runs sends and records them.
	sends *delivery.Service

	// capturedLive and capturedPoll drive the live captured-mail list
	// (captured.go).
	capturedLive CapturedNotifier
	capturedPoll time.Duration

	// The Check page (check.go).
	checks        CheckStore
	checkRuns     *checkRunner
	checkResolver string
	rootCAs       *x509.CertPool

	// The HTTP API (api.go): its tokens and their rate limit.
	tokens   TokenStore
	apiLimit *api.Limiter
}

// New builds a Handler from its dependencies.
func New(d Deps) (*Handler, error) {
	if d.Store == nil || d.Sealer == nil {
		return nil, errors.New("handlers: a store and a sealer are required")
	}
	if len(d.SessionHashKey) < 32 || len(d.SessionBlockKey) != 32 {
		return nil, errors.New("handlers: session keys must be at least 32 bytes (hash) and exactly 32 bytes (block)")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.SessionLifetime <= 0 {
		d.SessionLifetime = 12 * time.Hour
	}
	if d.SendTimeout <= 0 {
		d.SendTimeout = 2 * time.Minute
	}
	if d.MaxUpload <= 0 {
		d.MaxUpload = 25 << 20
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.CapturedPoll <= 0 {
		d.CapturedPoll = defaultCapturedPoll
	}
	cs := sessions.NewCookieStore(d.SessionHashKey, d.SessionBlockKey)
	cs.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(d.SessionLifetime / time.Second),
		HttpOnly: true,
		Secure:   d.SecureCookies,
		SameSite: http.SameSiteLaxMode,
	}
	cs.MaxAge(cs.Options.MaxAge) // also bounds the signed timestamp inside the cookie
	cop := http.NewCrossOriginProtection()
	if d.BaseURL != "" {
		if err := cop.AddTrustedOrigin(d.BaseURL); err != nil {
			return nil, fmt.Errorf("handlers: base URL as trusted origin: %w", err)
		}
	}
	hosts, err := newHostPolicy(d.BaseURL)
	if err != nil {
		return nil, err
	}
	if d.MaxStoredMessage <= 0 {
		d.MaxStoredMessage = delivery.DefaultMaxStoredMessage
	}
	if d.BcryptCost == 0 {
		d.BcryptCost = bcrypt.DefaultCost
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte(randomToken()), d.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("handlers: dummy hash: %w", err)
	}
	sends := d.Delivery
	if sends == nil {
		sends = delivery.New(delivery.Deps{
			Store: d.Store, Send: d.Send, Now: d.Now, Timeout: d.SendTimeout, Logger: d.Logger,
			Resolver: delivery.NewResolver(delivery.ResolverDeps{Profiles: d.Store, Sends: d.Store, Opener: d.Sealer,
				Capture: delivery.Capture{Addr: d.Capture.Addr, Certificate: d.Capture.Certificate}, RootCAs: d.RootCAs}),
		})
	}
	contactSt, err := newContactState(d)
	if err != nil {
		return nil, err
	}
	return &Handler{
		monitors: d.Monitors, metrics: d.Metrics,
		accounts: d.Store, profiles: d.Store, history: d.Store, captured: d.Store, sealer: d.Sealer, log: d.Logger, cookies: cs, secure: d.SecureCookies,
		lifetime: d.SessionLifetime, baseURL: d.BaseURL, proxies: d.TrustedProxies, maxUp: d.MaxUpload,
		capture: d.Capture, now: d.Now, cop: cop, hosts: hosts, deviceKey: deviceKeyFrom(d.SessionHashKey), bcryptCost: d.BcryptCost, dummyHash: string(dummy),
		retention: d.Retention, maxStored: d.MaxStoredMessage,
		forms: formStoreOf(d), queue: formStoreOf(d), contact: contactSt, sends: sends,
		capturedLive: d.Capture.Notifier, capturedPoll: d.CapturedPoll,
		checks: d.Store, checkRuns: newCheckRunner(), checkResolver: d.CheckResolver, rootCAs: d.RootCAs,
		tokens: d.Store, apiLimit: api.NewLimiter(apiRate, apiBurst, d.Now),
	}, nil
}

// render writes a templ component with the request's context and the
// given status.
func render(c echo.Context, status int, comp templ.Component) error {
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(status)
	if err := comp.Render(c.Request().Context(), c.Response()); err != nil {
		return fmt.Errorf("handlers: render: %w", err)
	}
	return nil
}

// Shutdown cancels running checks (which store what they found), stops
// new sends and waits for those in flight until ctx is
// done; then it aborts them and waits for them to record their (partial)
// transcripts (delivery.Service.Shutdown).
func (h *Handler) Shutdown(ctx context.Context) error {
	checksErr := h.checkRuns.shutdown(ctx)
	if err := h.sends.Shutdown(ctx); err != nil {
		return fmt.Errorf("handlers: %w", err)
	}
	if checksErr != nil {
		return fmt.Errorf("handlers: %w", checksErr)
	}
	return nil
}
