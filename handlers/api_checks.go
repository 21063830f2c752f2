package handlers

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/api"
	"sockmail/internal/store"
	"sockmail/views"
)

// apiCheckRequest is the body of POST /api/v1/checks: the Check page's
// form fields, as JSON.
type apiCheckRequest struct {
	Target       string `json:"target"`
	Port         int    `json:"port"`
	ImplicitTLS  bool   `json:"implicit_tls"`
	FromDomain   string `json:"from_domain"`
	IP           string `json:"ip"`
	DKIMSelector string `json:"dkim_selector"`
	RelayTest    bool   `json:"relay_test"`
	SendTo       string `json:"send_to"`
	SendFrom     string `json:"send_from"`
	SendProfile  int64  `json:"send_profile"`
}

// fields is the request as the Check form's fields (readCheckFields).
func (r *apiCheckRequest) fields() url.Values {
	v := url.Values{"target": {r.Target}, "from_domain": {r.FromDomain}, "ip": {r.IP},
		"dkim_selector": {r.DKIMSelector}, "send_to": {r.SendTo}, "send_from": {r.SendFrom}}
	if r.Port != 0 {
		v.Set("port", strconv.Itoa(r.Port))
	}
	if r.ImplicitTLS {
		v.Set("implicit_tls", "on")
	}
	if r.RelayTest {
		v.Set("relay_test", "on")
	}
	if r.SendProfile != 0 {
		v.Set("send_profile", strconv.FormatInt(r.SendProfile, 10))
	}
	return v
}

// apiCheck is a check as the API lists it.
type apiCheck struct {
	ID         int64      `json:"id"`
	Target     string     `json:"target"`
	Options    string     `json:"options"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Running    bool       `json:"running"`
	Worst      string     `json:"worst,omitempty"`
	URL        string     `json:"url"`
	Page       string     `json:"page"`
}

// apiCheckFinding is one finding of a check's report.
type apiCheckFinding struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Host    string `json:"host"`
	Addr    string `json:"addr,omitempty"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
	SendURL string `json:"send_url,omitempty"`
}

// apiCheckRoutes adds the check routes: start and read checks (scope
// send to start one, which connects to servers, read to read them).
func (h *Handler) apiCheckRoutes(g *echo.Group) {
	g.POST("/checks", h.apiStartCheck, h.apiGuard(apiBodyLimit, api.ScopeSend)...)
	read := h.apiGuard(apiBodyLimit, api.ScopeRead)
	g.GET("/checks", h.apiListChecks, read...)
	g.GET("/checks/:id", h.apiCheckReport, read...)
}

func apiCheckOf(ck *store.Check) apiCheck {
	id := strconv.FormatInt(ck.ID, 10)
	out := apiCheck{ID: ck.ID, Target: ck.Target, Options: optionsText(ck), StartedAt: ck.Started, Running: ck.Running(),
		Worst: ck.Worst, URL: "/api/v1/checks/" + id, Page: "/checks/" + id}
	if !ck.Running() {
		t := ck.Finished
		out.FinishedAt = &t
	}
	return out
}

// apiStartCheck starts a check as the Check page does (the same
// validation, the same runner) and answers 202 at once with its id and
// URLs.
func (h *Handler) apiStartCheck(c echo.Context) error {
	var req apiCheckRequest
	if err := decodeJSONBody(c, &req, "a check request"); err != nil {
		return err
	}
	v := req.fields()
	form, target, opts := readCheckFields(v.Get)
	if len(form.Errors) == 0 {
		id, err := h.beginCheck(c, target, opts)
		var pe *profileError
		switch {
		case errors.As(err, &pe):
			form.Errors["send_profile"] = pe.msg
		case err != nil:
			return err
		default:
			h.log.Info("check started", "check", id, "token", tokenName(c))
			base := "/api/v1/checks/" + strconv.FormatInt(id, 10)
			c.Response().Header().Set(echo.HeaderLocation, base)
			return c.JSON(http.StatusAccepted, map[string]any{"id": id, "url": base, "page": "/checks/" + strconv.FormatInt(id, 10)})
		}
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(form.Errors)) {
		parts = append(parts, k+": "+form.Errors[k])
	}
	return api.NewProblem("invalid-check", "Invalid check request", http.StatusUnprocessableEntity, strings.Join(parts, " "), "")
}

// apiListChecks lists the checks newest first, by key (before), as the
// Check page does.
func (h *Handler) apiListChecks(c echo.Context) error {
	var before int64
	if b := c.QueryParam("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return api.NewProblem("invalid-filter", "Invalid filter", http.StatusUnprocessableEntity, "before: a positive number.", "")
		}
		before = n
	}
	rows, err := h.checks.ListChecks(c.Request().Context(), checksPerPage+1, before)
	if err != nil {
		return fmt.Errorf("handlers: api list checks: %w", err)
	}
	out := struct {
		Checks []apiCheck `json:"checks"`
		Next   string     `json:"next,omitempty"`
	}{Checks: []apiCheck{}}
	if len(rows) > checksPerPage {
		rows = rows[:checksPerPage]
		out.Next = "/api/v1/checks?before=" + strconv.FormatInt(rows[len(rows)-1].ID, 10)
	}
	for i := range rows {
		out.Checks = append(out.Checks, apiCheckOf(&rows[i]))
	}
	return c.JSON(http.StatusOK, out)
}

// apiCheckReport answers a check with its report: what a check running
// in this process found so far, or the stored report of a finished one
// (the check page's two sources).
func (h *Handler) apiCheckReport(c echo.Context) error {
	ck, live, err := h.checkAndLive(c, c.Param("id"))
	if err != nil {
		return err
	}
	var v views.CheckReport
	out := struct {
		apiCheck
		Error    string            `json:"error,omitempty"`
		Resolver string            `json:"resolver,omitempty"`
		Hosts    []string          `json:"hosts"`
		Findings []apiCheckFinding `json:"findings"`
		Lookups  []string          `json:"lookups"`
	}{apiCheck: apiCheckOf(ck), Hosts: []string{}, Findings: []apiCheckFinding{}, Lookups: []string{}}
	switch {
	case !ck.Running():
		rep, failure, err := storedReport(ck)
		if err != nil {
			return err
		}
		out.Error = failure
		if rep != nil {
			fillReport(&v, rep, ck.Sends)
		}
	case live != nil:
		live.fill(&v)
	default:
		out.Error = "the check runs on another sockmail instance or was interrupted; read it again later"
	}
	out.Resolver = v.Resolver
	out.Hosts = append(out.Hosts, v.Hosts...)
	out.Lookups = append(out.Lookups, v.Lookups...)
	for _, g := range v.Groups {
		for _, f := range g.Findings {
			af := apiCheckFinding{ID: f.ID, Status: f.Status, Host: g.Host, Addr: f.Addr, Message: f.Message, Fix: f.Fix}
			if f.SendID != 0 {
				af.SendURL = "/api/v1/sends/" + strconv.FormatInt(f.SendID, 10)
			}
			out.Findings = append(out.Findings, af)
		}
	}
	return c.JSON(http.StatusOK, out)
}
