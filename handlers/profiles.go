package handlers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"sockmail/internal/store"
	"sockmail/internal/webform"
	"sockmail/views"
)

// ProfileStore is what the server profile pages, and the server choices
// of compose, resend and contact forms, read and write.
type ProfileStore interface {
	SaveProfile(ctx context.Context, p *store.Profile) error
	Profile(ctx context.Context, id int64) (*store.Profile, error)
	Profiles(ctx context.Context) ([]store.Profile, error)
	DeleteUnusedProfile(ctx context.Context, id int64) (store.ProfileUse, error)
}

func (h *Handler) profilesPage(c echo.Context) error {
	return h.showProfiles(c, http.StatusOK, nil)
}

// showProfiles renders the profiles list, with why a profile was not
// deleted when refused is not nil.
func (h *Handler) showProfiles(c echo.Context, status int, refused *views.ProfileRefusal) error {
	list, err := h.profiles.Profiles(c.Request().Context())
	if err != nil {
		return fmt.Errorf("handlers: list profiles: %w", err)
	}
	rows := make([]views.ProfileRow, 0, len(list))
	for _, p := range list {
		rows = append(rows, views.ProfileRow{
			ID: p.ID, Name: p.Name, Addr: net.JoinHostPort(p.Host, strconv.Itoa(p.Port)), TLSMode: p.TLSMode,
			AuthMech: p.AuthMech, Username: p.Username, HasPassword: len(p.PasswordEnc) > 0,
			AllowInsecureAuth: p.AllowInsecureAuth,
		})
	}
	return render(c, status, views.ProfilesPage(h.page(c, "Server profiles", "profiles"), views.ProfileList{Rows: rows, Refused: refused}))
}

func (h *Handler) newProfilePage(c echo.Context) error {
	f := &webform.Profile{Server: webform.Server{Port: "587", TLS: "starttls", Verify: true, AuthMech: "auto"}}
	return render(c, http.StatusOK, views.ProfileForm(h.page(c, "New server profile", "profiles"), views.ProfileEdit{Form: f}))
}

func (h *Handler) loadProfile(c echo.Context) (*store.Profile, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, echo.NewHTTPError(http.StatusNotFound, "There is no such profile.")
	}
	p, err := h.profiles.Profile(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, echo.NewHTTPError(http.StatusNotFound, "There is no such profile.")
	}
	if err != nil {
		return nil, fmt.Errorf("handlers: load profile: %w", err)
	}
	return p, nil
}

// editProfilePage shows a profile's form. The stored password is never
// sent to the browser, only whether there is one.
func (h *Handler) editProfilePage(c echo.Context) error {
	p, err := h.loadProfile(c)
	if err != nil {
		return err
	}
	f := &webform.Profile{Name: p.Name, Server: webform.Server{
		Host: p.Host, Port: strconv.Itoa(p.Port), TLS: p.TLSMode, Verify: !p.InsecureSkipVerify,
		AuthMech: p.AuthMech, Username: p.Username, Helo: p.HeloName, AllowInsecureAuth: p.AllowInsecureAuth,
	}}
	if p.MaxConnections > 0 {
		f.Connections = strconv.Itoa(p.MaxConnections)
	}
	return render(c, http.StatusOK, views.ProfileForm(h.page(c, "Edit server profile", "profiles"),
		views.ProfileEdit{ID: p.ID, Form: f, HasPassword: len(p.PasswordEnc) > 0}))
}

func (h *Handler) createProfile(c echo.Context) error {
	return h.saveProfile(c, &store.Profile{})
}

func (h *Handler) updateProfile(c echo.Context) error {
	p, err := h.loadProfile(c)
	if err != nil {
		return err
	}
	return h.saveProfile(c, p)
}

// saveProfile validates the form and stores p. A typed password is sealed
// with the Sealer before it reaches the store; an empty one keeps the
// stored password unless "remove" is ticked.
func (h *Handler) saveProfile(c echo.Context, p *store.Profile) error {
	f := webform.ReadProfile(c.Request())
	errs := f.Validate()
	title := "Edit server profile"
	if p.ID == 0 {
		title = "New server profile"
	}
	show := func(status int) error {
		return render(c, status, views.ProfileForm(h.page(c, title, "profiles"),
			views.ProfileEdit{ID: p.ID, Form: f, Errors: errs, HasPassword: len(p.PasswordEnc) > 0}))
	}
	if f.ClearPassword && f.Password != "" {
		errs["password"] = "Password: type a new password or tick \"Remove the stored password\", not both."
	}
	if len(errs) > 0 {
		return show(http.StatusUnprocessableEntity)
	}
	p.Name, p.Host, p.Port, p.TLSMode = f.Name, f.Host, f.PortNumber(), f.TLS
	p.InsecureSkipVerify, p.AuthMech, p.Username, p.HeloName = !f.Verify, f.AuthMech, f.Username, f.Helo
	p.AllowInsecureAuth, p.MaxConnections = f.AllowInsecureAuth, f.MaxConnections()
	switch {
	case f.Password != "":
		sealed, err := h.sealer.Seal([]byte(f.Password))
		if err != nil {
			return fmt.Errorf("handlers: seal profile password: %w", err)
		}
		p.PasswordEnc = sealed
	case f.ClearPassword:
		p.PasswordEnc = nil
	}
	err := h.profiles.SaveProfile(c.Request().Context(), p)
	if errors.Is(err, store.ErrExists) {
		errs["name"] = "Name: another profile is already called \"" + f.Name + "\". Choose another name, or edit that profile."
		return show(http.StatusUnprocessableEntity)
	}
	if isStorageFailure(err) {
		// The form again with what was typed, and why nothing was saved.
		errs["form"] = h.storageRefused(c, err)
		return show(http.StatusServiceUnavailable)
	}
	if err != nil {
		return fmt.Errorf("handlers: save profile: %w", err)
	}
	msg := "Profile \"" + p.Name + "\" saved."
	if p.AuthMech != "" && len(p.PasswordEnc) == 0 {
		msg += " It has no stored password: it will try AUTH as \"" + p.Username + "\" with an empty one."
	}
	flash(c, msg)
	return c.Redirect(http.StatusSeeOther, "/profiles")
}

// deleteProfile deletes a profile nothing delivers through any more. A
// profile that contact forms use, or that queued outbox messages are to
// be delivered through, is kept: the page says which forms use it and how
// many messages wait, so that no form breaks and no queued mail is lost.
func (h *Handler) deleteProfile(c echo.Context) error {
	p, err := h.loadProfile(c)
	if err != nil {
		return err
	}
	use, err := h.profiles.DeleteUnusedProfile(c.Request().Context(), p.ID)
	switch {
	case errors.Is(err, store.ErrProfileInUse):
		refused := &views.ProfileRefusal{Name: p.Name, Waiting: use.Waiting}
		for _, f := range use.Forms {
			refused.Forms = append(refused.Forms, views.FormLink{ID: f.ID, Name: f.Name})
		}
		return h.showProfiles(c, http.StatusConflict, refused)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("handlers: delete profile: %w", err)
	}
	flash(c, "Profile \""+p.Name+"\" deleted.")
	return c.Redirect(http.StatusSeeOther, "/profiles")
}
