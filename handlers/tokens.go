package handlers

// The API tokens page (/tokens): admins make tokens, each shown once in
// the answer to the form that made it (it is stored only as a hash, so
// it cannot be shown again), list them with their last use, and revoke
// them.

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"sockmail/internal/api"
	"sockmail/internal/store"
	"sockmail/views"
)

// Token form limits: a name's length and the longest lifetime in days.
const (
	maxTokenName    = 64
	maxTokenDays    = 3650
	maxTokenScopes  = 8
	tokensPageTitle = "API tokens"
)

func (h *Handler) tokenRoutes(g *echo.Group) {
	g.GET("/tokens", h.tokensPage)
	g.POST("/tokens", h.createToken)
	g.POST("/tokens/:id/revoke", h.revokeToken)
}

// tokensView lists the tokens around the form f.
func (h *Handler) tokensView(c echo.Context, f views.TokenForm) (views.TokenList, error) {
	list, err := h.tokens.APITokens(c.Request().Context())
	if err != nil {
		return views.TokenList{}, fmt.Errorf("handlers: list api tokens: %w", err)
	}
	v := views.TokenList{Form: f, Scopes: api.AllScopes()}
	now := h.now()
	for _, t := range list {
		state := "active"
		if why := t.Usable(now); why != "" {
			state = why
		}
		v.Rows = append(v.Rows, views.TokenRow{ID: t.ID, Name: t.Name, Scopes: t.Scopes, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt,
			ExpiresAt: t.ExpiresAt, LastUsed: t.LastUsedAt, State: state})
	}
	return v, nil
}

func (h *Handler) tokensPage(c echo.Context) error {
	v, err := h.tokensView(c, views.TokenForm{Scopes: []string{api.ScopeRead}})
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.TokensPage(h.page(c, tokensPageTitle, "tokens"), v))
}

// readTokenForm reads and checks the new-token form.
func readTokenForm(c echo.Context) (views.TokenForm, []string, *time.Duration) {
	f := views.TokenForm{Name: strings.TrimSpace(c.FormValue("name")), Expires: strings.TrimSpace(c.FormValue("expires")), Errors: map[string]string{}}
	form, _ := c.FormParams()
	raw := form["scopes"]
	if len(raw) > maxTokenScopes {
		raw = raw[:maxTokenScopes]
	}
	f.Scopes = raw
	switch {
	case f.Name == "":
		f.Errors["name"] = "Give the token a name, such as the script that will use it."
	case !utf8.ValidString(f.Name) || utf8.RuneCountInString(f.Name) > maxTokenName:
		f.Errors["name"] = fmt.Sprintf("At most %d characters.", maxTokenName)
	case strings.ContainsFunc(f.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		f.Errors["name"] = "No control characters."
	}
	scopes, err := api.ParseScopes(strings.Join(raw, ","))
	if err != nil {
		f.Errors["scopes"] = "Choose at least one scope from the list."
	}
	var life *time.Duration
	if f.Expires != "" {
		days, err := strconv.Atoi(f.Expires)
		if err != nil || days < 1 || days > maxTokenDays {
			f.Errors["expires"] = fmt.Sprintf("A number of days from 1 to %d, or empty for a token that does not expire.", maxTokenDays)
		} else {
			d := time.Duration(days) * 24 * time.Hour
			life = &d
		}
	}
	return f, scopes, life
}

// createToken makes a token and shows it, this once.
func (h *Handler) createToken(c echo.Context) error {
	f, scopes, life := readTokenForm(c)
	p := h.page(c, tokensPageTitle, "tokens")
	if len(f.Errors) == 0 {
		raw, hash, err := api.NewToken()
		if err != nil {
			return fmt.Errorf("handlers: %w", err)
		}
		t := &store.APIToken{Name: f.Name, Hash: hash, Scopes: scopes, CreatedBy: p.User, CreatedAt: h.now()}
		if life != nil {
			exp := h.now().Add(*life)
			t.ExpiresAt = &exp
		}
		err = h.tokens.CreateAPIToken(c.Request().Context(), t)
		switch {
		case errors.Is(err, store.ErrExists):
			f.Errors["name"] = "A token of that name exists; choose another name."
		case err != nil:
			return fmt.Errorf("handlers: create api token: %w", err)
		default:
			h.log.Info("api token made", "name", t.Name, "scopes", strings.Join(scopes, ","), "by", p.User)
			v, err := h.tokensView(c, views.TokenForm{Scopes: []string{api.ScopeRead}})
			if err != nil {
				return err
			}
			v.NewName, v.NewToken = t.Name, raw
			return render(c, http.StatusCreated, views.TokensPage(p, v))
		}
	}
	v, err := h.tokensView(c, f)
	if err != nil {
		return err
	}
	return render(c, http.StatusUnprocessableEntity, views.TokensPage(p, v))
}

// revokeToken revokes a token; it stops working at once.
func (h *Handler) revokeToken(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such token.")
	}
	err = h.tokens.RevokeAPIToken(c.Request().Context(), id, h.now())
	if errors.Is(err, store.ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such token.")
	}
	if err != nil {
		return fmt.Errorf("handlers: revoke api token: %w", err)
	}
	flash(c, "The token was revoked; requests with it are refused from now on.")
	return c.Redirect(http.StatusSeeOther, "/tokens")
}
