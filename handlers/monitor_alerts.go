package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/alert"
	"sockmail/internal/store"
	"sockmail/views"
)

// AlertStore keeps the monitors' alert settings and alerts
// (*store.Store). Monitors.Alerts nil hides alerts.
type AlertStore interface {
	AlertSettings(ctx context.Context, monitorID int64) (*store.AlertSettings, error)
	SaveAlertSettings(ctx context.Context, a *store.AlertSettings) error
	MonitorAlerts(ctx context.Context, monitorID int64, limit int) ([]store.MonitorAlert, error)
}

// monitorAlertsShown is how many recent alerts a monitor's page lists.
const monitorAlertsShown = 50

// defaultAlertForm is the alert part of a new monitor's form.
func defaultAlertForm() views.AlertForm {
	return views.AlertForm{EmailProfile: "0", Repeat: "60", QuietTZ: "UTC", DefaultFrom: alert.DefaultFrom}
}

func fmtMinuteOfDay(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// alertFormOf returns a monitor's stored alert settings as the form
// shows them (the defaults when it has none).
func (h *Handler) alertFormOf(ctx context.Context, id int64) (views.AlertForm, error) {
	f := defaultAlertForm()
	if h.monitors.Alerts == nil {
		return f, nil
	}
	a, err := h.monitors.Alerts.AlertSettings(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("handlers: alert settings of monitor %d: %w", id, err)
	}
	f.EmailTo, f.EmailProfile, f.EmailFrom = strings.Join(a.EmailTo, ", "), strconv.FormatInt(a.EmailProfile, 10), a.EmailFrom
	f.WebhookURL, f.OnDegraded = a.WebhookURL, a.OnDegraded
	if len(a.WebhookSecretEnc) > 0 {
		secret, err := h.sealer.Open(a.WebhookSecretEnc)
		if err != nil {
			// Sealed under another key: the form shows none, and saving
			// makes a new one.
			h.log.Warn("monitor alerts: webhook secret cannot be opened", "monitor", id, "err", err)
		} else {
			f.WebhookSecret = string(secret)
		}
	}
	f.Repeat, f.QuietTZ = strconv.Itoa(a.RepeatMinutes), a.QuietTZ
	if a.QuietStart != a.QuietEnd {
		f.QuietStart, f.QuietEnd = fmtMinuteOfDay(a.QuietStart), fmtMinuteOfDay(a.QuietEnd)
	}
	return f, nil
}

// parseMinuteOfDay reads HH:MM.
func parseMinuteOfDay(s string) (int, bool) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

// readAlertForm reads and checks the alert fieldset into errs. The
// settings' MonitorID is left for the caller; the webhook secret is in
// the form only (saveAlerts seals it).
func readAlertForm(c echo.Context, errs map[string]string) (views.AlertForm, store.AlertSettings) {
	v := func(name string) string { return strings.TrimSpace(c.FormValue(name)) }
	f := views.AlertForm{EmailTo: v("alert_email_to"), EmailProfile: v("alert_email_profile"), EmailFrom: v("alert_email_from"),
		WebhookURL: v("alert_webhook_url"), WebhookSecret: v("alert_webhook_secret"), Repeat: v("alert_repeat"),
		QuietStart: v("alert_quiet_start"), QuietEnd: v("alert_quiet_end"), QuietTZ: v("alert_quiet_tz"),
		OnDegraded: c.FormValue("alert_on_degraded") != "", DefaultFrom: alert.DefaultFrom}
	var a store.AlertSettings
	a.OnDegraded = f.OnDegraded
	for _, part := range strings.Split(f.EmailTo, ",") {
		addr := strings.TrimSpace(part)
		if addr == "" {
			continue
		}
		if p, err := mail.ParseAddress(addr); err != nil || p.Address != addr || len(addr) > store.MaxMonitorTarget {
			errs["alert_email_to"] = "Enter plain addresses separated by commas, like oncall@example.org, or leave it empty."
			break
		}
		a.EmailTo = append(a.EmailTo, addr)
	}
	if len(a.EmailTo) > store.MaxAlertRecipients {
		errs["alert_email_to"] = fmt.Sprintf("Enter at most %d addresses.", store.MaxAlertRecipients)
	}
	if f.EmailProfile == "" {
		f.EmailProfile = "0"
	}
	p, err := strconv.ParseInt(f.EmailProfile, 10, 64)
	if err != nil || p < 0 {
		errs["alert_email_profile"] = "Choose a profile for alert emails."
	}
	a.EmailProfile = p
	if f.EmailFrom != "" {
		if p, err := mail.ParseAddress(f.EmailFrom); err != nil || p.Address != f.EmailFrom || len(f.EmailFrom) > store.MaxMonitorTarget {
			errs["alert_email_from"] = "Enter the alert sender as a plain address, or leave it empty."
		}
	}
	a.EmailFrom = f.EmailFrom
	if f.WebhookURL != "" {
		u, err := url.Parse(f.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(f.WebhookURL) > store.MaxAlertURL {
			errs["alert_webhook_url"] = fmt.Sprintf("Enter an http or https URL of at most %d characters, or leave it empty.", store.MaxAlertURL)
		}
		if f.WebhookSecret == "" {
			if f.WebhookSecret, err = alert.NewSecret(); err != nil {
				errs["alert_webhook_secret"] = "No secret could be made; enter one."
			}
		}
	}
	if len(f.WebhookSecret) > store.MaxAlertSecret || strings.ContainsAny(f.WebhookSecret, "\x00\r\n") {
		errs["alert_webhook_secret"] = fmt.Sprintf("Enter a secret of at most %d characters on one line.", store.MaxAlertSecret)
	}
	a.WebhookURL = f.WebhookURL
	if f.Repeat == "" {
		f.Repeat = "0"
	}
	n, err := strconv.Atoi(f.Repeat)
	if err != nil || n < 0 || n > store.MaxAlertRepeat {
		errs["alert_repeat"] = fmt.Sprintf("The repeat must be a whole number of minutes from 0 to %d.", store.MaxAlertRepeat)
	}
	a.RepeatMinutes = n
	if f.QuietStart != "" || f.QuietEnd != "" {
		start, ok1 := parseMinuteOfDay(f.QuietStart)
		end, ok2 := parseMinuteOfDay(f.QuietEnd)
		if !ok1 {
			errs["alert_quiet_start"] = "Enter the start of the quiet hours as HH:MM (24 hours), or leave both empty."
		}
		if !ok2 {
			errs["alert_quiet_end"] = "Enter the end of the quiet hours as HH:MM (24 hours), or leave both empty."
		}
		a.QuietStart, a.QuietEnd = start, end
	}
	if f.QuietTZ == "" {
		f.QuietTZ = "UTC"
	}
	if _, err := time.LoadLocation(f.QuietTZ); err != nil || len(f.QuietTZ) > 100 {
		errs["alert_quiet_tz"] = "Enter a time zone name like Europe/Paris or UTC."
	}
	a.QuietTZ = f.QuietTZ
	return f, a
}

// saveAlerts stores the alert settings of monitor id with the form's
// webhook secret sealed, if this instance has alerts.
func (h *Handler) saveAlerts(ctx context.Context, id int64, a store.AlertSettings, f views.AlertForm) error {
	if h.monitors.Alerts == nil {
		return nil
	}
	a.MonitorID = id
	if a.WebhookURL != "" {
		sealed, err := h.sealer.Seal([]byte(f.WebhookSecret))
		if err != nil {
			return fmt.Errorf("handlers: seal the webhook secret: %w", err)
		}
		a.WebhookSecretEnc = sealed
	}
	if err := h.monitors.Alerts.SaveAlertSettings(ctx, &a); err != nil {
		return fmt.Errorf("handlers: save alert settings: %w", err)
	}
	return nil
}

// monitorAlerts returns the alert part of a monitor's page.
func (h *Handler) monitorAlerts(ctx context.Context, id int64) (views.MonitorAlerts, error) {
	if h.monitors.Alerts == nil {
		return views.MonitorAlerts{}, nil
	}
	v := views.MonitorAlerts{On: true}
	a, err := h.monitors.Alerts.AlertSettings(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return v, fmt.Errorf("handlers: alert settings of monitor %d: %w", id, err)
	default:
		var parts []string
		if len(a.EmailTo) > 0 {
			parts = append(parts, "email to "+strings.Join(a.EmailTo, ", "))
		}
		if a.WebhookURL != "" {
			parts = append(parts, "webhook "+a.WebhookURL)
		}
		if len(parts) > 0 {
			v.Summary = "Alerts go by " + strings.Join(parts, " and by ")
			if a.RepeatMinutes > 0 {
				v.Summary += fmt.Sprintf(", repeated every %d minutes while down", a.RepeatMinutes)
			}
			if a.QuietStart != a.QuietEnd {
				v.Summary += fmt.Sprintf(", held from %s to %s (%s)", fmtMinuteOfDay(a.QuietStart), fmtMinuteOfDay(a.QuietEnd), a.QuietTZ)
			}
			v.Summary += "."
		}
	}
	list, err := h.monitors.Alerts.MonitorAlerts(ctx, id, monitorAlertsShown)
	if err != nil {
		return v, fmt.Errorf("handlers: alerts of monitor %d: %w", id, err)
	}
	for _, al := range list {
		target := al.URL
		if al.Channel == store.AlertEmail {
			target = strings.Join(al.Rcpts, ", ")
		}
		v.Rows = append(v.Rows, views.AlertRow{Time: fmtWhen(al.CreatedAt), Event: al.Event,
			Transition: string(al.OldState) + " → " + string(al.NewState), Channel: string(al.Channel), Target: target,
			Status: string(al.Status), Reason: al.Reason, LastError: al.LastError, Attempts: al.Attempts})
	}
	return v, nil
}
