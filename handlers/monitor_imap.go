package handlers

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"sockmail/internal/check"
	"sockmail/internal/store"
	"sockmail/views"
)

// maxIMAPPassword bounds the IMAP password a monitor stores.
const maxIMAPPassword = 512

// readIMAPForm reads the IMAP fieldset of the monitor form.
func readIMAPForm(c echo.Context) views.MonitorIMAPForm {
	v := func(name string) string { return strings.TrimSpace(c.FormValue(name)) }
	return views.MonitorIMAPForm{Host: v("imap_host"), Port: v("imap_port"), User: v("imap_user"), Password: c.FormValue("imap_password"),
		Mailbox: v("imap_mailbox"), ArrivalLateMS: v("arrival_late_ms"), ImplicitTLS: c.FormValue("imap_tls") != ""}
}

// imapForm fills the IMAP fieldset from a stored monitor (never its
// password).
func imapForm(o store.MonitorOptions) views.MonitorIMAPForm {
	f := views.MonitorIMAPForm{ArrivalLateMS: strconv.Itoa(o.ArrivalLateMS)}
	if im := o.IMAP; im != nil {
		f.Host, f.User, f.Mailbox, f.ImplicitTLS, f.HasPassword = im.Host, im.User, im.Mailbox, im.ImplicitTLS, len(im.PasswordEnc) > 0
		if im.Port != 0 {
			f.Port = strconv.Itoa(im.Port)
		}
	}
	return f
}

// runExtra puts a run's check and arrival time on its row.
func runExtra(row *views.MonitorRunRow, r store.MonitorRun) {
	row.ArrivalMS = -1
	if r.CheckID != nil {
		row.CheckID = *r.CheckID
	}
	if r.Arrival != nil {
		row.ArrivalMS = r.Arrival.Milliseconds()
	}
}

// readCheckTarget checks a check monitor's target: a domain, or
// host:port; the port field is its MX hosts' port (empty: 25).
func readCheckTarget(f views.MonitorForm, m *store.Monitor, errs map[string]string) {
	t, err := check.ParseTarget(f.Host)
	if err != nil {
		errs["host"] = "Enter a domain (example.org) or a server as host:port (mail.example.org:587)."
		return
	}
	m.Target = t.String()
	if f.Port != "" && f.Port != "25" {
		n, err := strconv.Atoi(f.Port)
		if err != nil || n < 1 || n > 65535 {
			errs["port"] = "The port must be a whole number from 1 to 65535."
			return
		}
		m.Options.Port = n
	}
}

// monitorIMAP reads the IMAP settings into m: an empty host means none;
// a new password is sealed, an empty one keeps old's. f.HasPassword is
// set for the form shown again.
func (h *Handler) monitorIMAP(f *views.MonitorIMAPForm, m *store.Monitor, old *store.Monitor, errs map[string]string) {
	f.HasPassword = old != nil && old.Options.IMAP != nil && len(old.Options.IMAP.PasswordEnc) > 0
	if f.ArrivalLateMS != "" {
		n, err := strconv.Atoi(f.ArrivalLateMS)
		if err != nil || n < 0 || n > store.MaxMonitorArrivalLateMS {
			errs["arrival_late_ms"] = fmt.Sprintf("The arrival threshold must be a whole number from 0 to %d.", store.MaxMonitorArrivalLateMS)
		}
		m.Options.ArrivalLateMS = n
	}
	if f.Host == "" {
		return
	}
	if m.Kind != store.MonitorSend {
		errs["imap_host"] = "Only a full send can confirm arrival over IMAP: choose a full send, or leave the IMAP host empty."
		return
	}
	im := &store.MonitorIMAP{Host: f.Host, User: f.User, Mailbox: f.Mailbox, ImplicitTLS: f.ImplicitTLS}
	if len(f.Host) > store.MaxMonitorTarget || strings.ContainsAny(f.Host, " /:@") {
		errs["imap_host"] = "Enter the IMAP server's host name or IP address (no port: the port has its own field)."
	}
	if f.Port != "" {
		n, err := strconv.Atoi(f.Port)
		if err != nil || n < 1 || n > 65535 {
			errs["imap_port"] = "The IMAP port must be a whole number from 1 to 65535, or empty."
		}
		im.Port = n
	}
	if f.User == "" || len(f.User) > store.MaxMonitorTarget {
		errs["imap_user"] = fmt.Sprintf("Enter the IMAP user (at most %d characters).", store.MaxMonitorTarget)
	}
	if len(f.Mailbox) > store.MaxMonitorTarget {
		errs["imap_mailbox"] = fmt.Sprintf("The folder name is at most %d characters.", store.MaxMonitorTarget)
	}
	switch {
	case len(f.Password) > maxIMAPPassword:
		errs["imap_password"] = fmt.Sprintf("The IMAP password is at most %d characters.", maxIMAPPassword)
	case f.Password != "":
		sealed, err := h.sealer.Seal([]byte(f.Password))
		if err != nil {
			errs["imap_password"] = "The password could not be stored; try again."
		}
		im.PasswordEnc = sealed
	case old != nil && old.Options.IMAP != nil:
		im.PasswordEnc = old.Options.IMAP.PasswordEnc
	}
	if len(im.PasswordEnc) == 0 && errs["imap_password"] == "" {
		errs["imap_password"] = "Enter the IMAP password."
	}
	m.Options.IMAP = im
}
