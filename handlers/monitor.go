package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/monitor"
	"sockmail/internal/store"
	"sockmail/views"
)

// MonitorStore keeps monitors and their runs. *store.Store is one.
type MonitorStore interface {
	CreateMonitor(ctx context.Context, m *store.Monitor) error
	UpdateMonitor(ctx context.Context, m *store.Monitor, now time.Time) error
	DeleteMonitor(ctx context.Context, id int64) error
	Monitor(ctx context.Context, id int64) (*store.Monitor, error)
	ListMonitors(ctx context.Context) ([]store.Monitor, error)
	MonitorRuns(ctx context.Context, monitorID int64, limit int, before int64) ([]store.MonitorRun, error)
}

// MonitorRunner runs a monitor at once (*monitor.Scheduler).
type MonitorRunner interface {
	RunNow(ctx context.Context, id int64) (*store.MonitorRun, monitor.State, error)
}

// Monitors is what the monitor pages need; serve builds it with the
// scheduler it runs.
type Monitors struct {
	Store  MonitorStore
	Runner MonitorRunner
	// Alerts keeps the alert settings and history; nil: no alerts.
	Alerts AlertStore
}

// monitorRunsShown is how many recent runs a monitor's page lists.
const monitorRunsShown = 50

// monitorRoutes adds the monitor pages (signed-in admins only).
func (h *Handler) monitorRoutes(g *echo.Group) {
	g.GET("/monitors", h.monitorsPage)
	g.GET("/monitors/new", h.newMonitorPage)
	g.POST("/monitors", h.createMonitor)
	g.GET("/monitors/:id", h.monitorPage)
	g.GET("/monitors/:id/edit", h.editMonitorPage)
	g.POST("/monitors/:id", h.updateMonitor)
	g.POST("/monitors/:id/delete", h.deleteMonitor)
	g.POST("/monitors/:id/run", h.runMonitor)
}

// monitorsOf returns the monitor dependencies, or a 404 when this
// instance runs none.
func (h *Handler) monitorsOf() (*Monitors, error) {
	if h.monitors == nil || h.monitors.Store == nil {
		return nil, echo.NewHTTPError(http.StatusNotFound, "Monitors are not available in this instance.")
	}
	return h.monitors, nil
}

func fmtWhen(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func monitorRow(m store.Monitor) views.MonitorRow {
	target := m.Target
	if m.Kind == store.MonitorQuitAfter && m.Options.Port != 0 {
		target += ":" + strconv.Itoa(m.Options.Port)
	}
	if m.Rcpt != "" {
		target += " → " + m.Rcpt
	}
	return views.MonitorRow{ID: m.ID, Name: m.Name, Kind: string(m.Kind), Target: strings.TrimSpace(target), Interval: m.Interval, Enabled: m.Enabled,
		State: string(m.State), Reason: m.Reason, Since: fmtWhen(m.StateSince), LastRun: fmtWhen(m.LastRun)}
}

func (h *Handler) monitorsPage(c echo.Context) error {
	ms, err := h.monitorsOf()
	if err != nil {
		return err
	}
	list, err := ms.Store.ListMonitors(c.Request().Context())
	if err != nil {
		return fmt.Errorf("handlers: list monitors: %w", err)
	}
	rows := make([]views.MonitorRow, 0, len(list))
	for _, m := range list {
		rows = append(rows, monitorRow(m))
	}
	return render(c, http.StatusOK, views.MonitorsPage(h.page(c, "Monitors", "monitors"), views.MonitorList{Rows: rows}))
}

// monitorByID reads the monitor named by the :id parameter.
func (h *Handler) monitorByID(c echo.Context) (*Monitors, *store.Monitor, error) {
	ms, err := h.monitorsOf()
	if err != nil {
		return nil, nil, err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, nil, echo.NewHTTPError(http.StatusBadRequest, "The monitor id must be a positive number.")
	}
	m, err := ms.Store.Monitor(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, echo.NewHTTPError(http.StatusNotFound, "There is no such monitor.")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("handlers: monitor %d: %w", id, err)
	}
	return ms, m, nil
}

func (h *Handler) monitorPage(c echo.Context) error {
	ms, m, err := h.monitorByID(c)
	if err != nil {
		return err
	}
	runs, err := ms.Store.MonitorRuns(c.Request().Context(), m.ID, monitorRunsShown, 0)
	if err != nil {
		return fmt.Errorf("handlers: runs of monitor %d: %w", m.ID, err)
	}
	v := views.MonitorDetail{Monitor: monitorRow(*m)}
	if v.Alerts, err = h.monitorAlerts(c.Request().Context(), m.ID); err != nil {
		return err
	}
	for _, r := range runs {
		row := views.MonitorRunRow{Started: fmtWhen(r.Started), State: string(r.State), Reason: r.Reason, LatencyMS: r.Latency.Milliseconds()}
		if r.SendID != nil {
			row.SendID = *r.SendID
		}
		runExtra(&row, r)
		v.Runs = append(v.Runs, row)
	}
	if v.Charts, err = h.monitorCharts(c, m); err != nil {
		return err
	}
	return render(c, http.StatusOK, views.MonitorPage(h.page(c, "Monitor "+m.Name, "monitors"), v))
}

// profileOptions lists the profiles a full send can go through, the
// built-in capture server first.
func (h *Handler) profileOptions(ctx context.Context) ([]views.Option, error) {
	list, err := h.profiles.Profiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("handlers: list profiles: %w", err)
	}
	opts := []views.Option{{Value: "0", Label: "Built-in capture server"}}
	for _, p := range list {
		opts = append(opts, views.Option{Value: strconv.FormatInt(p.ID, 10), Label: p.Name})
	}
	return opts, nil
}

func (h *Handler) showMonitorForm(c echo.Context, status int, v views.MonitorEdit) error {
	opts, err := h.profileOptions(c.Request().Context())
	if err != nil {
		return err
	}
	v.Profiles = opts
	v.AlertsOn = h.monitors != nil && h.monitors.Alerts != nil
	title := "New monitor"
	if v.ID != 0 {
		title = "Edit monitor"
	}
	return render(c, status, views.MonitorFormPage(h.page(c, title, "monitors"), v))
}

func (h *Handler) newMonitorPage(c echo.Context) error {
	if _, err := h.monitorsOf(); err != nil {
		return err
	}
	return h.showMonitorForm(c, http.StatusOK, views.MonitorEdit{Form: views.MonitorForm{Kind: string(store.MonitorQuitAfter), Port: "25", Profile: "0",
		Interval: "5", SlowMS: "0", CertDays: "14", Enabled: true}, Alerts: defaultAlertForm()})
}

func (h *Handler) editMonitorPage(c echo.Context) error {
	_, m, err := h.monitorByID(c)
	if err != nil {
		return err
	}
	f := views.MonitorForm{Name: m.Name, Kind: string(m.Kind), Host: m.Target, Port: strconv.Itoa(m.Options.Port), Rcpt: m.Rcpt, MailFrom: m.Options.MailFrom,
		Profile: strconv.FormatInt(m.Profile, 10), Interval: strconv.Itoa(m.Interval), SlowMS: strconv.Itoa(m.SlowMS), CertDays: strconv.Itoa(m.CertDays),
		ImplicitTLS: m.Options.ImplicitTLS, Enabled: m.Enabled, IMAP: imapForm(m.Options)}
	af, err := h.alertFormOf(c.Request().Context(), m.ID)
	if err != nil {
		return err
	}
	return h.showMonitorForm(c, http.StatusOK, views.MonitorEdit{ID: m.ID, Form: f, Alerts: af})
}

// readMonitorForm reads and checks the form; errs names each wrong field.
func readMonitorForm(c echo.Context) (views.MonitorForm, store.Monitor, map[string]string) {
	v := func(name string) string { return strings.TrimSpace(c.FormValue(name)) }
	f := views.MonitorForm{Name: v("name"), Kind: v("kind"), Host: v("host"), Port: v("port"), Rcpt: v("rcpt"), MailFrom: v("mail_from"),
		Profile: v("profile"), Interval: v("interval"), SlowMS: v("slow_ms"), CertDays: v("cert_days"),
		ImplicitTLS: c.FormValue("implicit_tls") != "", Enabled: c.FormValue("enabled") != "", IMAP: readIMAPForm(c)}
	errs := map[string]string{}
	num := func(field, label, s string, lo, hi int) int {
		if s == "" && lo == 0 {
			return 0
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			errs[field] = fmt.Sprintf("%s must be a whole number from %d to %d.", label, lo, hi)
		}
		return n
	}
	m := store.Monitor{Name: f.Name, Kind: store.MonitorKind(f.Kind), Rcpt: f.Rcpt, Enabled: f.Enabled,
		Options: store.MonitorOptions{ImplicitTLS: f.ImplicitTLS, MailFrom: f.MailFrom}}
	if f.Name == "" || len(f.Name) > store.MaxMonitorName {
		errs["name"] = fmt.Sprintf("Enter a name of 1 to %d characters.", store.MaxMonitorName)
	}
	switch m.Kind {
	case store.MonitorQuitAfter:
		m.Target = f.Host
		if f.Host == "" || len(f.Host) > store.MaxMonitorTarget || strings.ContainsAny(f.Host, " /:@") {
			errs["host"] = "Enter the server's host name or IP address (no port: the port has its own field)."
		}
		m.Options.Port = num("port", "The port", f.Port, 1, 65535)
	case store.MonitorSend:
		p, err := strconv.ParseInt(f.Profile, 10, 64)
		if err != nil || p < 0 {
			errs["profile"] = "Choose a profile."
		}
		m.Profile = p
	case store.MonitorCheck:
		readCheckTarget(f, &m, errs)
	default:
		errs["kind"] = "Choose a quit-after test, a full send or a check."
	}
	if a, err := mail.ParseAddress(f.Rcpt); m.Kind != store.MonitorCheck && (err != nil || a.Address != f.Rcpt || len(f.Rcpt) > store.MaxMonitorTarget) {
		errs["rcpt"] = "Enter the recipient as a plain address, like postmaster@example.org."
	}
	if f.MailFrom != "" {
		if a, err := mail.ParseAddress(f.MailFrom); err != nil || a.Address != f.MailFrom || len(f.MailFrom) > store.MaxMonitorTarget {
			errs["mail_from"] = "Enter the sender as a plain address, or leave it empty."
		}
	}
	m.Interval = num("interval", "The interval", f.Interval, store.MinMonitorInterval, store.MaxMonitorInterval)
	m.SlowMS = num("slow_ms", "The slow threshold", f.SlowMS, 0, store.MaxMonitorSlowMS)
	m.CertDays = num("cert_days", "The certificate threshold", f.CertDays, 0, store.MaxMonitorCertDays)
	return f, m, errs
}

func (h *Handler) createMonitor(c echo.Context) error {
	ms, err := h.monitorsOf()
	if err != nil {
		return err
	}
	f, m, errs := readMonitorForm(c)
	h.monitorIMAP(&f.IMAP, &m, nil, errs)
	af, as := readAlertForm(c, errs)
	if len(errs) == 0 {
		m.Created = h.now()
		err := ms.Store.CreateMonitor(c.Request().Context(), &m)
		switch {
		case errors.Is(err, store.ErrExists):
			errs["name"] = "A monitor with this name exists already."
		case err != nil:
			return fmt.Errorf("handlers: create monitor: %w", err)
		default:
			if err := h.saveAlerts(c.Request().Context(), m.ID, as, af); err != nil {
				return err
			}
			flash(c, "Monitor \""+m.Name+"\" created.")
			return c.Redirect(http.StatusSeeOther, "/monitors/"+strconv.FormatInt(m.ID, 10))
		}
	}
	return h.showMonitorForm(c, http.StatusUnprocessableEntity, views.MonitorEdit{Form: f, Errors: errs, Alerts: af})
}

func (h *Handler) updateMonitor(c echo.Context) error {
	ms, old, err := h.monitorByID(c)
	if err != nil {
		return err
	}
	f, m, errs := readMonitorForm(c)
	h.monitorIMAP(&f.IMAP, &m, old, errs)
	af, as := readAlertForm(c, errs)
	if len(errs) == 0 {
		m.ID = old.ID
		err := ms.Store.UpdateMonitor(c.Request().Context(), &m, h.now())
		switch {
		case errors.Is(err, store.ErrExists):
			errs["name"] = "A monitor with this name exists already."
		case errors.Is(err, store.ErrNotFound):
			return echo.NewHTTPError(http.StatusNotFound, "There is no such monitor.")
		case err != nil:
			return fmt.Errorf("handlers: update monitor: %w", err)
		default:
			if err := h.saveAlerts(c.Request().Context(), m.ID, as, af); err != nil {
				return err
			}
			flash(c, "Monitor \""+m.Name+"\" saved.")
			return c.Redirect(http.StatusSeeOther, "/monitors/"+strconv.FormatInt(m.ID, 10))
		}
	}
	return h.showMonitorForm(c, http.StatusUnprocessableEntity, views.MonitorEdit{ID: old.ID, Form: f, Errors: errs, Alerts: af})
}

func (h *Handler) deleteMonitor(c echo.Context) error {
	ms, m, err := h.monitorByID(c)
	if err != nil {
		return err
	}
	if err := ms.Store.DeleteMonitor(c.Request().Context(), m.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("handlers: delete monitor: %w", err)
	}
	flash(c, "Monitor \""+m.Name+"\" deleted.")
	return c.Redirect(http.StatusSeeOther, "/monitors")
}

// runMonitor runs a monitor now and shows its page with the run.
func (h *Handler) runMonitor(c echo.Context) error {
	ms, m, err := h.monitorByID(c)
	if err != nil {
		return err
	}
	if ms.Runner == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "Monitors do not run in this instance.")
	}
	_, st, err := ms.Runner.RunNow(c.Request().Context(), m.ID)
	switch {
	case errors.Is(err, monitor.ErrBusy):
		flash(c, "Monitor \""+m.Name+"\" is running already; its run will show here when it ends.")
	case err != nil:
		return fmt.Errorf("handlers: run monitor: %w", err)
	default:
		msg := "Monitor \"" + m.Name + "\" ran: " + string(st.State)
		if st.Reason != "" {
			msg += ": " + st.Reason
		}
		flash(c, msg+".")
	}
	return c.Redirect(http.StatusSeeOther, "/monitors/"+strconv.FormatInt(m.ID, 10))
}
