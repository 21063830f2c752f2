package handlers

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"

	"sockmail/internal/store"
	"sockmail/internal/webform"
	"sockmail/views"
)

// Accounts is what sign-up, sign-in and sessions read and write.
type Accounts interface {
	CreateUser(ctx context.Context, email, passwordHash string) (*store.User, error)
	UserByEmail(ctx context.Context, email string) (*store.User, error)
	CountUsers(ctx context.Context) (int, error)
	SetSettingIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error)
	CreateSession(ctx context.Context, id string, userID int64, expires time.Time) error
	SessionUser(ctx context.Context, id string, now time.Time) (*store.User, error)
	DeleteSession(ctx context.Context, id string) error
	TakeAttempt(ctx context.Context, limits []store.Limit, at, since time.Time) (*store.Limit, error)
	ReturnAttempt(ctx context.Context, key string, at time.Time) error
	ClearAttempts(ctx context.Context, key string) error
}

// Cookie and session value names.
const (
	sessionCookie = "sockmail_session"
	keySID        = "sid"  // server-side session id (signed in)
	keyCSRF       = "csrf" // CSRF token bound to this cookie session
	ctxSession    = "sockmail.session"
	ctxUser       = "sockmail.user"
)

// Sign-in throttling, after OWASP's authentication cheat sheet. Each
// sign-in takes a slot under its limits before the password is checked;
// a success gives the slots back.
//
// From a browser without a device cookie for the account (device.go):
//   - per account and client (address, or IPv6 /64): the first
//     signinFree tries go at once, then each waits twice as long after
//     the previous one, from signinDelay up to signinMaxDelay, over
//     signinWindow. A guesser gets at most 5 tries in the first minute
//     (three at once, then at 15 s and 45 s) and 11 in the first hour
//     (TestSignInGuessRate).
//   - per account, all clients together: signinAccountMax tries in
//     signinAccountWindow, which one client cannot reach (8 in 15
//     minutes under the delays above), so only a spread-out attack
//     slows new browsers down; it never touches a known device.
//   - per client, all accounts together: signinAddressMax tries in
//     signinAccountWindow (password spraying); it slows only that client.
//
// From a browser with a genuine device cookie for the account: only its
// own growing delays (signinDeviceFree tries at once), so guesses from
// anywhere else never refuse the right password from it.
const (
	signinWindow        = time.Hour
	signinFree          = 3
	signinDelay         = 15 * time.Second
	signinMaxDelay      = 15 * time.Minute
	signinAccountWindow = 15 * time.Minute
	signinAccountMax    = 20
	signinAddressMax    = 20
	signinDeviceFree    = 5
)

// signinLimits are the limits of a sign-in to account (lower case) from
// client, or from a known device.
func signinLimits(account, client, device string) []store.Limit {
	if device != "" {
		return []store.Limit{{Key: "signin:device:" + device, Window: signinWindow, Free: signinDeviceFree, Delay: signinDelay, MaxDelay: signinMaxDelay}}
	}
	return []store.Limit{
		{Key: "signin:client:" + client + "|" + account, Window: signinWindow, Free: signinFree, Delay: signinDelay, MaxDelay: signinMaxDelay},
		{Key: "signin:account:" + account, Window: signinAccountWindow, Max: signinAccountMax},
		{Key: "signin:address:" + client, Window: signinAccountWindow, Max: signinAddressMax},
	}
}

// limitKind names a sign-in limit in logs: client, account, address or
// device.
func limitKind(key string) string {
	_, rest, _ := strings.Cut(key, ":")
	kind, _, _ := strings.Cut(rest, ":")
	return kind
}

// waitText says a wait in words for the sign-in page.
func waitText(d time.Duration) string {
	switch {
	case d <= time.Minute:
		return fmt.Sprintf("%d seconds", int((d+time.Second-1)/time.Second))
	default:
		return fmt.Sprintf("%d minutes", int((d+time.Minute-1)/time.Minute))
	}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// loadSession reads the cookie session, gives it a CSRF token when it has
// none, and saves it (when changed) just before the response is written.
func (h *Handler) loadSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		s, err := h.cookies.Get(c.Request(), sessionCookie)
		if err != nil {
			// A cookie that does not decode (old keys, expired, tampered)
			// starts a new session.
			s, _ = h.cookies.New(c.Request(), sessionCookie)
		}
		dirty := false
		if tok, _ := s.Values[keyCSRF].(string); tok == "" {
			s.Values[keyCSRF] = randomToken()
			dirty = true
		}
		c.Set(ctxSession, s)
		c.Set(ctxSession+".dirty", dirty)
		c.Response().Before(func() {
			if d, _ := c.Get(ctxSession + ".dirty").(bool); d {
				if err := s.Save(c.Request(), c.Response().Writer); err != nil {
					h.log.Error("save session", "err", err)
				}
			}
		})
		return next(c)
	}
}

func session(c echo.Context) *sessions.Session {
	s, _ := c.Get(ctxSession).(*sessions.Session)
	return s
}

func markDirty(c echo.Context) { c.Set(ctxSession+".dirty", true) }

func csrfToken(c echo.Context) string {
	if s := session(c); s != nil {
		tok, _ := s.Values[keyCSRF].(string)
		return tok
	}
	return ""
}

// checkCSRF refuses a state-changing request that comes from another site
// (Sec-Fetch-Site / Origin, through net/http's CrossOriginProtection) or
// that does not carry the session's CSRF token (a double-submit token
// bound to the session cookie, compared in constant time).
func (h *Handler) checkCSRF(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return next(c)
		}
		if err := h.cop.Check(r); err != nil {
			h.log.Warn("cross-origin request refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
			return echo.NewHTTPError(http.StatusForbidden, "Cross-site request refused.")
		}
		want := csrfToken(c)
		got := r.Header.Get("X-CSRF-Token")
		if got == "" {
			got = c.FormValue("_csrf")
		}
		if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
			h.log.Warn("CSRF token missing or wrong", "path", r.URL.Path)
			return echo.NewHTTPError(http.StatusForbidden, "The form has expired or did not come from this site. Reload the page and try again.")
		}
		return next(c)
	}
}

// currentUser returns the signed-in admin, or nil.
func (h *Handler) currentUser(c echo.Context) (*store.User, error) {
	if u, ok := c.Get(ctxUser).(*store.User); ok {
		return u, nil
	}
	s := session(c)
	if s == nil {
		return nil, nil
	}
	sid, _ := s.Values[keySID].(string)
	if sid == "" {
		return nil, nil
	}
	u, err := h.accounts.SessionUser(c.Request().Context(), sid, h.now())
	if errors.Is(err, store.ErrNotFound) {
		// Signed out or expired server-side: the cookie is a replay.
		delete(s.Values, keySID)
		markDirty(c)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("handlers: session user: %w", err)
	}
	c.Set(ctxUser, u)
	return u, nil
}

// requireUser lets only signed-in admins through. Others are sent to the
// sign-in page (GET) or refused with 401.
func (h *Handler) requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, err := h.currentUser(c)
		if err != nil {
			return err
		}
		if u == nil {
			r := c.Request()
			if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
				return c.Redirect(http.StatusSeeOther, "/signin?next="+url.QueryEscape(r.URL.RequestURI()))
			}
			return echo.NewHTTPError(http.StatusUnauthorized, "Sign in first.")
		}
		return next(c)
	}
}

// page builds the layout data for a request.
func (h *Handler) page(c echo.Context, title, section string) views.Page {
	p := views.Page{Title: title, Section: section, CSRF: csrfToken(c)}
	if u, _ := c.Get(ctxUser).(*store.User); u != nil {
		p.User = u.Email
	}
	if s := session(c); s != nil {
		for _, f := range s.Flashes() {
			if str, ok := f.(string); ok {
				p.Flashes = append(p.Flashes, str)
			}
			markDirty(c)
		}
	}
	return p
}

func flash(c echo.Context, msg string) {
	if s := session(c); s != nil {
		s.AddFlash(msg)
		markDirty(c)
	}
}

func (h *Handler) signUpPage(c echo.Context) error {
	n, err := h.accounts.CountUsers(c.Request().Context())
	if err != nil {
		return fmt.Errorf("handlers: count users: %w", err)
	}
	if n > 0 {
		return c.Redirect(http.StatusSeeOther, "/signin")
	}
	return render(c, http.StatusOK, views.SignUp(h.page(c, "Create the admin account", ""), "", "", nil))
}

// signUp creates the first admin account. It works only while no account
// exists, and only with the setup code "sockmail serve" printed at start
// (setup.go); after that accounts are added with "sockmail user add".
func (h *Handler) signUp(c echo.Context) error {
	ctx := c.Request().Context()
	n, err := h.accounts.CountUsers(ctx)
	if err != nil {
		return fmt.Errorf("handlers: count users: %w", err)
	}
	if n > 0 {
		return echo.NewHTTPError(http.StatusForbidden, "The admin account exists already: sign in, or add accounts with \"sockmail user add\".")
	}
	f := webform.ReadAccount(c.Request())
	code := c.Request().PostFormValue("setup_code")
	errs := f.ValidateSignUp()
	if strings.TrimSpace(code) == "" {
		errs["setup_code"] = "Enter the setup code that sockmail printed when it started (see below)."
	} else if len(code) > maxSetupCodeInput {
		errs["setup_code"] = "The setup code has 20 letters and digits (in groups of four)."
	}
	if len(errs) > 0 {
		return render(c, http.StatusUnprocessableEntity, views.SignUp(h.page(c, "Create the admin account", ""), f.Email, code, errs))
	}
	if status, msg, err := h.checkSetupCode(c, code); err != nil {
		return err
	} else if msg != "" {
		return render(c, status, views.SignUp(h.page(c, "Create the admin account", ""), f.Email, code, webform.Errors{"setup_code": msg}))
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(f.Password), h.bcryptCost)
	if err != nil {
		return fmt.Errorf("handlers: hash password: %w", err)
	}
	// Two first visitors racing: only one may claim the sign-up.
	claim := randomToken()
	got, err := h.accounts.SetSettingIfAbsent(ctx, "signup.claimed", []byte(claim))
	if err != nil {
		return fmt.Errorf("handlers: claim sign-up: %w", err)
	}
	if string(got) != claim {
		return echo.NewHTTPError(http.StatusForbidden, "The admin account is being created by someone else. Use \"sockmail user add\" if this is wrong.")
	}
	u, err := h.accounts.CreateUser(ctx, f.Email, string(hash))
	if err != nil {
		return fmt.Errorf("handlers: create user: %w", err)
	}
	h.log.Info("admin account created", "user", u.Email, "remote", c.RealIP())
	if err := h.startSession(c, u); err != nil {
		return err
	}
	h.rememberDevice(c, u)
	flash(c, "Welcome! Your admin account is ready. The built-in capture server is preselected, so you can send right away.")
	return c.Redirect(http.StatusSeeOther, "/compose")
}

// checkSetupCode takes a try under the setup-code limits and compares the
// code. It returns the status and message to show when the code is
// refused, or an empty message when it is right.
func (h *Handler) checkSetupCode(c echo.Context, typed string) (int, string, error) {
	ctx := c.Request().Context()
	now := h.now()
	client := clientKey(c.RealIP())
	over, err := h.accounts.TakeAttempt(ctx, []store.Limit{
		{Key: "signup:code:client:" + client, Max: maxSetupCodesClient},
		{Key: "signup:code:all", Max: maxSetupCodesAll},
	}, now, now.Add(-setupCodeWindow))
	if err != nil {
		return 0, "", fmt.Errorf("handlers: take setup-code attempt: %w", err)
	}
	if over != nil {
		h.log.Warn("setup code: too many wrong codes, sign-up refused for now", "limit", over.Key, "remote", c.RealIP())
		c.Response().Header().Set("Retry-After", fmt.Sprint(int(setupCodeWindow.Seconds())))
		return http.StatusTooManyRequests, "Too many wrong setup codes. Wait 15 minutes, or create the account from a shell with \"sockmail user add\".", nil
	}
	stored, needed, err := h.SetupCode(ctx)
	if err != nil {
		return 0, "", err
	}
	if !needed {
		return 0, "", echo.NewHTTPError(http.StatusForbidden, "The admin account exists already: sign in, or add accounts with \"sockmail user add\".")
	}
	if !setupCodeMatches(typed, stored) {
		h.log.Warn("setup code: a wrong code was entered on the sign-up page", "remote", c.RealIP())
		return http.StatusForbidden, "That is not the setup code. Copy it from the line \"setup code\" that sockmail printed when it started.", nil
	}
	return 0, "", nil
}

func (h *Handler) signInPage(c echo.Context) error {
	ctx := c.Request().Context()
	if n, err := h.accounts.CountUsers(ctx); err != nil {
		return fmt.Errorf("handlers: count users: %w", err)
	} else if n == 0 {
		return c.Redirect(http.StatusSeeOther, "/signup")
	}
	if u, err := h.currentUser(c); err != nil {
		return err
	} else if u != nil {
		return c.Redirect(http.StatusSeeOther, "/compose")
	}
	return render(c, http.StatusOK, views.SignIn(h.page(c, "Sign in", ""), "", safeNext(c.QueryParam("next")), nil))
}

// signIn checks the password under the sign-in limits (signinLimits)
// and starts a new session (a new id: no fixation). Each try takes its
// slots before the password is checked (one transaction, so a burst of
// concurrent guesses cannot pass a limit); a success clears the client's
// or device's failures and gives the account-wide and address-wide slots
// back.
func (h *Handler) signIn(c echo.Context) error {
	ctx := c.Request().Context()
	f := webform.ReadAccount(c.Request())
	next := safeNext(c.FormValue("next"))
	p := h.page(c, "Sign in", "")
	if errs := f.ValidateSignIn(); len(errs) > 0 {
		return render(c, http.StatusUnprocessableEntity, views.SignIn(p, f.Email, next, errs))
	}
	u, err := h.accounts.UserByEmail(ctx, f.Email)
	if errors.Is(err, store.ErrNotFound) {
		u = nil
	} else if err != nil {
		return fmt.Errorf("handlers: find user: %w", err)
	}
	account := strings.ToLower(strings.TrimSpace(f.Email))
	client := clientKey(c.RealIP())
	device, known := h.knownDevice(c, u)
	limits := signinLimits(account, client, device)
	now := h.now()
	over, err := h.accounts.TakeAttempt(ctx, limits, now, now.Add(-signinWindow))
	if err != nil {
		return fmt.Errorf("handlers: take attempt: %w", err)
	}
	if over != nil {
		h.log.Warn("sign-in throttled", "limit", limitKind(over.Key), "account", f.Email, "remote", c.RealIP(),
			"known_device", known, "retry_after", over.RetryAfter)
		c.Response().Header().Set("Retry-After", strconv.Itoa(int((over.RetryAfter+time.Second-1)/time.Second)))
		return render(c, http.StatusTooManyRequests, views.SignIn(p, f.Email, next,
			webform.Errors{"form": "Too many failed sign-ins. Try again in " + waitText(over.RetryAfter) + "."}))
	}
	// An unknown account is compared against a dummy hash, so that it
	// takes as long as a wrong password.
	hash := h.dummyHash
	if u != nil {
		hash = u.PasswordHash
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(f.Password)) != nil || u == nil {
		h.log.Info("sign-in failed", "account", f.Email, "remote", c.RealIP(), "known_device", known)
		return render(c, http.StatusUnauthorized, views.SignIn(p, f.Email, next,
			webform.Errors{"form": "Wrong email or password."}))
	}
	if err := h.accounts.ClearAttempts(ctx, limits[0].Key); err != nil {
		return fmt.Errorf("handlers: clear attempts: %w", err)
	}
	for _, l := range limits[1:] {
		if err := h.accounts.ReturnAttempt(ctx, l.Key, now); err != nil {
			return fmt.Errorf("handlers: return attempt: %w", err)
		}
	}
	if err := h.startSession(c, u); err != nil {
		return err
	}
	h.rememberDevice(c, u)
	h.log.Info("signed in", "user", u.Email, "remote", c.RealIP(), "known_device", known)
	return c.Redirect(http.StatusSeeOther, next)
}

// startSession revokes any previous server session of this cookie and
// starts a fresh one with a new id and a new CSRF token.
func (h *Handler) startSession(c echo.Context, u *store.User) error {
	ctx := c.Request().Context()
	s := session(c)
	if old, _ := s.Values[keySID].(string); old != "" {
		if err := h.accounts.DeleteSession(ctx, old); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("handlers: revoke old session: %w", err)
		}
	}
	sid := randomToken()
	if err := h.accounts.CreateSession(ctx, sid, u.ID, h.now().Add(h.lifetime)); err != nil {
		return fmt.Errorf("handlers: create session: %w", err)
	}
	s.Values[keySID] = sid
	s.Values[keyCSRF] = randomToken()
	markDirty(c)
	c.Set(ctxUser, u)
	return nil
}

// signOut revokes the server-side session, so the cookie is worthless
// even if it was copied, and clears the cookie.
func (h *Handler) signOut(c echo.Context) error {
	s := session(c)
	if sid, _ := s.Values[keySID].(string); sid != "" {
		if err := h.accounts.DeleteSession(c.Request().Context(), sid); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("handlers: delete session: %w", err)
		}
	}
	delete(s.Values, keySID)
	s.Values[keyCSRF] = randomToken()
	h.forgetDefaults(c)
	s.AddFlash("You are signed out.")
	markDirty(c)
	return c.Redirect(http.StatusSeeOther, "/signin")
}

// safeNext keeps a post-sign-in redirect on this site (localTarget).
func safeNext(next string) string {
	return localTarget(next, "/compose")
}
