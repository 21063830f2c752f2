package handlers

// History: every stored send, for admins. A filtered, searchable list with
// keyset pagination; a detail page (the result page's body, plus where the
// send came from, its phase timings, header and resends); re-send to the
// same or another server; two transcripts side by side; delete; and the
// retention policy. Exports are the result page's downloads, which serve
// stored sends.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"sockmail/internal/delivery"
	"sockmail/internal/mailread"
	"sockmail/internal/monitor"
	"sockmail/internal/store"
	"sockmail/smtp"
	"sockmail/views"
)

// History limits.
const (
	historyPageSize = 50
	// maxFilterField bounds each filter field; maxQuery the search text.
	maxFilterField = 200
	maxQuery       = 500
	// maxAlign bounds the work of aligning two transcripts phase by phase
	// (runs of one send times runs of the other); beyond it runs are
	// paired in order.
	maxAlign = 250_000
	// remoteGrace is how long after its send timeout a send still marked
	// running may be running elsewhere (another instance or process).
	remoteGrace = time.Minute
)

// Retention is the history retention policy. Zero fields do not limit.
type Retention struct {
	// MaxAge deletes the sends older than it, and the contact
	// submissions and outbox messages older than it that are done with:
	// delivered, cancelled, or blocked and never released. Failed and
	// unknown deliveries stay for an admin. Captured mail older than it
	// goes too.
	MaxAge time.Duration
	// MaxSends keeps only the newest MaxSends sends.
	MaxSends int
}

// String describes the policy in a sentence, "" when there is none.
func (r Retention) String() string {
	var parts []string
	if r.MaxAge > 0 {
		days := r.MaxAge.Hours() / 24
		parts = append(parts, "sends older than "+strconv.FormatFloat(days, 'f', -1, 64)+
			" days are deleted, with captured mail and the contact messages that were delivered, cancelled or blocked of that age")
	}
	if r.MaxSends > 0 {
		parts = append(parts, "only the newest "+strconv.Itoa(r.MaxSends)+" sends are kept")
	}
	if len(parts) == 0 {
		return ""
	}
	s := strings.Join(parts, ", and ") + "."
	return strings.ToUpper(s[:1]) + s[1:]
}

// HistoryStore is what the history and result pages read and delete.
type HistoryStore interface {
	Send(ctx context.Context, id int64) (*store.Send, error)
	ListSends(ctx context.Context, f store.SendFilter) (store.SendPage, error)
	Resends(ctx context.Context, id int64) ([]store.SendSummary, error)
	DeleteSend(ctx context.Context, id int64) error
	ApplyRetention(ctx context.Context, olderThan time.Time, keepMax int) (int, error)
	UserByID(ctx context.Context, id int64) (*store.User, error)
}

func (h *Handler) historyRoutes(g *echo.Group) {
	g.GET("/history", h.historyList)
	g.GET("/history/compare", h.historyCompare)
	g.POST("/history/retention", h.historyRetention)
	g.GET("/history/:id", h.historyDetail)
	g.POST("/history/:id/resend", h.historyResend)
	g.POST("/history/:id/delete", h.historyDelete)
}

// historyForm is the list's filter form, read from the query string.
type historyForm struct {
	views.HistoryFilter
	Before int64
}

func readHistoryForm(q url.Values) historyForm {
	f := historyForm{HistoryFilter: views.HistoryFilter{
		Status: q.Get("status"), Source: q.Get("source"), Recipient: strings.TrimSpace(q.Get("recipient")),
		Sender: strings.TrimSpace(q.Get("sender")), Server: strings.TrimSpace(q.Get("server")),
		Query: strings.TrimSpace(q.Get("q")), Since: strings.TrimSpace(q.Get("since")), Until: strings.TrimSpace(q.Get("until")),
	}}
	f.Before, _ = strconv.ParseInt(q.Get("before"), 10, 64)
	return f
}

var (
	historyStatuses = []smtp.Status{smtp.StatusSent, smtp.StatusPartial, smtp.StatusTempFail,
		smtp.StatusPermFail, smtp.StatusUnknown, smtp.StatusAborted, smtp.StatusStopped, store.StatusRunning}
	historySources = []string{"web", "cli", "contact", "alert", monitor.SourceMonitor, sourceRelease, sourceCheck, sourceAPIAny}
)

// sourceAPIAny is the source filter of every send started through the
// API (whose sources are "api:<token name>").
const sourceAPIAny = "api:*"

// apiTokenSource reports whether source names the sends of one API
// token: "api:<token name>", the name without wildcards.
func apiTokenSource(source string) bool {
	name, ok := strings.CutPrefix(source, "api:")
	return ok && name != "" && len(source) <= maxFilterField && !strings.Contains(name, "*") && utf8.ValidString(name)
}

// Validate checks the form and returns the store filter it asks for.
// Dates are days in loc, both inclusive.
func (f *historyForm) Validate(loc *time.Location) (store.SendFilter, map[string]string) {
	errs := map[string]string{}
	sf := store.SendFilter{Status: smtp.Status(f.Status), Source: f.Source, Recipient: f.Recipient, Sender: f.Sender,
		Server: f.Server, Query: f.Query, Limit: historyPageSize}
	if f.Status != "" && !slices.Contains(historyStatuses, smtp.Status(f.Status)) {
		errs["status"] = "Choose a status from the list."
	}
	if f.Source != "" && !slices.Contains(historySources, f.Source) && !apiTokenSource(f.Source) {
		errs["source"] = "Choose a source from the list, or api:<token name> for one API token."
	}
	for name, v := range map[string]string{"recipient": f.Recipient, "sender": f.Sender, "server": f.Server} {
		if len(v) > maxFilterField {
			errs[name] = fmt.Sprintf("At most %d characters.", maxFilterField)
		}
	}
	if len(f.Query) > maxQuery {
		errs["q"] = fmt.Sprintf("At most %d characters.", maxQuery)
	}
	day := func(name, v string) time.Time {
		if v == "" {
			return time.Time{}
		}
		t, err := time.ParseInLocation("2006-01-02", v, loc)
		if err != nil || t.Year() < 1970 || t.Year() > 9999 {
			errs[name] = "A date like 2025-06-30."
			return time.Time{}
		}
		return t
	}
	sf.Since = day("since", f.Since)
	if u := day("until", f.Until); !u.IsZero() {
		sf.Until = u.AddDate(0, 0, 1) // the whole day
	}
	if !sf.Since.IsZero() && !sf.Until.IsZero() && !sf.Since.Before(sf.Until) {
		errs["until"] = "The end date is before the start date."
	}
	if f.Before > 0 {
		sf.Before = f.Before
	}
	return sf, errs
}

// values is the form as a query string, without the cursor.
func (f *historyForm) values() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"q": f.Query, "status": f.Status, "source": f.Source, "recipient": f.Recipient,
		"sender": f.Sender, "server": f.Server, "since": f.Since, "until": f.Until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

func (h *Handler) historyList(c echo.Context) error {
	f := readHistoryForm(c.QueryParams())
	sf, errs := f.Validate(time.Local)
	v := views.HistoryList{Filter: f.HistoryFilter, Errors: errs, Retention: h.retention.String()}
	p := h.page(c, "History", "history")
	if len(errs) > 0 {
		return render(c, http.StatusUnprocessableEntity, views.HistoryListPage(p, v))
	}
	page, err := h.history.ListSends(c.Request().Context(), sf)
	if err != nil {
		return fmt.Errorf("handlers: list sends: %w", err)
	}
	for i := range page.Sends {
		v.Rows = append(v.Rows, historyRow(&page.Sends[i]))
	}
	v.Total, v.TotalCapped = page.Total, page.TotalCapped
	q := f.values()
	v.FirstURL = "/history"
	if len(q) > 0 {
		v.FirstURL += "?" + q.Encode()
	}
	v.Paged = f.Before > 0
	if page.NextBefore > 0 {
		q.Set("before", strconv.FormatInt(page.NextBefore, 10))
		v.NextURL = "/history?" + q.Encode()
	}
	return render(c, http.StatusOK, views.HistoryListPage(p, v))
}

// historyRow is a send as a list shows it, every text made safe to show.
func historyRow(s *store.SendSummary) views.HistoryRow {
	r := views.HistoryRow{
		ID: s.ID, CreatedAt: s.CreatedAt, Source: smtp.SafeText(s.Source), Server: smtp.SafeText(s.Server),
		TLSMode: smtp.SafeText(s.TLSMode), MailFrom: smtp.SafeText(s.MailFrom), Rcpts: safeAll(s.Rcpts),
		Subject: smtp.SafeText(s.Subject), Status: smtp.SafeText(string(s.Status)), StatusClass: historyStatusClass(s.Status),
		QueueID: smtp.SafeText(s.QueueID), DurationMS: s.DurationMS, Timings: s.Timings,
	}
	if s.ParentID != nil {
		r.ParentID = *s.ParentID
	}
	for _, rc := range s.Recipients {
		if !rc.Accepted {
			r.Refused++
		}
	}
	return r
}

func historyStatusClass(status smtp.Status) string {
	if status == store.StatusRunning {
		return "running"
	}
	return statusClass(string(status), false)
}

func safeAll(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = smtp.SafeText(s)
	}
	return out
}

// safeResult makes every text of a result page that a server, a form or
// a stored row supplied safe to show (resultView applies it): templ
// escapes HTML, SafeText shows control characters, invalid UTF-8 and bidi
// controls as escapes, so a hostile server's queue id or reply cannot
// reorder or hide what the page says. Transcript lines are made safe
// where they are shown (views.Line).
func safeResult(r views.Result) views.Result {
	r.Status, r.Server, r.TLSMode = smtp.SafeText(r.Status), smtp.SafeText(r.Server), smtp.SafeText(r.TLSMode)
	r.MailFrom, r.Rcpts, r.Subject = smtp.SafeText(r.MailFrom), safeAll(r.Rcpts), smtp.SafeText(r.Subject)
	r.QueueID, r.Error = smtp.SafeText(r.QueueID), smtp.SafeText(r.Error)
	r.Explanation = safeExplanation(r.Explanation)
	rows := make([]views.RecipientRow, len(r.Recipients))
	for i, rc := range r.Recipients {
		rc.Address, rc.EnhancedCode, rc.Message = smtp.SafeText(rc.Address), smtp.SafeText(rc.EnhancedCode), smtp.SafeText(rc.Message)
		rc.Explanation = safeExplanation(rc.Explanation)
		rows[i] = rc
	}
	r.Recipients = rows
	return r
}

// safeExplanation makes an explanation, which may quote a reply, safe to
// show.
func safeExplanation(e *views.Explanation) *views.Explanation {
	if e == nil {
		return nil
	}
	x := *e
	x.Title, x.Detail, x.Code, x.Try = smtp.SafeText(x.Title), smtp.SafeText(x.Detail), smtp.SafeText(x.Code), safeAll(x.Try)
	return &x
}

// safeBlock makes a multi-line text safe to show, keeping its lines.
func safeBlock(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		lines[i] = smtp.SafeText(l)
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// runningElsewhere reports whether a send marked running, but not running
// here, may still be running in another instance or process.
func (h *Handler) runningElsewhere(snd *store.Send, ls *delivery.Live) bool {
	return snd.Status == store.StatusRunning && ls == nil &&
		h.now().Sub(snd.CreatedAt) < h.sends.Timeout()+remoteGrace
}

// historyDetailView builds the detail page of a stored send.
func (h *Handler) historyDetailView(ctx context.Context, snd *store.Send, ls *delivery.Live, rf views.ResendForm) (views.HistoryDetail, error) {
	d := views.HistoryDetail{
		Result: resultView(snd, ls), Source: smtp.SafeText(snd.Source),
		ClientAddr: smtp.SafeText(snd.ClientAddr), Headers: safeBlock(mailread.HeaderText(snd.Headers)), MessageTruncated: snd.MessageTruncated,
	}
	if h.runningElsewhere(snd, ls) {
		d.RemoteRunning = true
		d.Status, d.StatusClass = "running elsewhere (another sockmail instance runs it): reload to see the outcome", "running"
	}
	if snd.ParentID != nil {
		d.ParentID = *snd.ParentID
	}
	if snd.UserID != nil {
		u, err := h.history.UserByID(ctx, *snd.UserID)
		switch {
		case err == nil:
			d.User = u.Email
		case !errors.Is(err, store.ErrNotFound):
			return d, fmt.Errorf("handlers: user of send %d: %w", snd.ID, err)
		}
	}
	kids, err := h.history.Resends(ctx, snd.ID)
	if err != nil {
		return d, fmt.Errorf("handlers: resends: %w", err)
	}
	for i := range kids {
		d.Resends = append(d.Resends, historyRow(&kids[i]))
	}
	profiles, err := h.profiles.Profiles(ctx)
	if err != nil {
		return d, fmt.Errorf("handlers: list profiles: %w", err)
	}
	for _, p := range profiles {
		rf.Profiles = append(rf.Profiles, views.Option{Value: strconv.FormatInt(p.ID, 10), Label: p.Name + " (" + net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) + ")"})
	}
	rf.BuiltinAddr = h.capture.Addr
	switch {
	case len(snd.Message) == 0:
		rf.Reason = "This send kept no message, so it cannot be re-sent."
	case snd.MessageTruncated:
		rf.Reason = "Only the beginning of this message was kept (it was larger than the storage limit), so it cannot be re-sent."
	case len(snd.Rcpts) == 0:
		rf.Reason = "This send has no recipient, so it cannot be re-sent."
	default:
		rf.Possible = true
	}
	d.Resend = rf
	return d, nil
}

// defaultResend is the re-send form as first shown: the same server with
// the same TLS mode.
func defaultResend(snd *store.Send) views.ResendForm {
	rf := views.ResendForm{Server: "same", TLS: snd.TLSMode, Verify: true}
	if host, port, err := net.SplitHostPort(snd.Server); err == nil {
		rf.Host, rf.Port = host, port
	}
	if _, err := smtp.ParseTLSMode(rf.TLS); err != nil {
		rf.TLS = smtp.TLSStartTLS.String()
	}
	return rf
}

func (h *Handler) historyDetail(c echo.Context) error {
	snd, ls, err := h.loadSend(c)
	if err != nil {
		return err
	}
	d, err := h.historyDetailView(c.Request().Context(), snd, ls, defaultResend(snd))
	if err != nil {
		return err
	}
	p := h.page(c, "Send #"+strconv.FormatInt(snd.ID, 10), "history")
	if d.Running {
		p.RefreshSeconds = 2
	}
	return render(c, http.StatusOK, views.HistoryDetailPage(p, d))
}

// resendForm is the re-send form as posted.
type resendForm struct {
	// Server is "same", "builtin", "adhoc" or a profile id.
	Server, Host, Port, TLS string
	Verify                  bool
}

func readResendForm(c echo.Context) resendForm {
	return resendForm{
		Server: c.FormValue("server"), Host: strings.TrimSpace(c.FormValue("host")),
		Port: strings.TrimSpace(c.FormValue("port")), TLS: c.FormValue("tls"), Verify: c.FormValue("verify") == "on",
	}
}

// Validate checks the form; profile ids are checked against the store
// later.
func (f *resendForm) Validate() map[string]string {
	errs := map[string]string{}
	switch f.Server {
	case "same", "builtin", "adhoc":
	default:
		if id, err := strconv.ParseInt(f.Server, 10, 64); err != nil || id <= 0 {
			errs["server"] = "Choose a server."
		}
	}
	if _, err := smtp.ParseTLSMode(f.TLS); err != nil {
		errs["tls"] = "Choose a TLS mode."
	}
	if f.Server == "adhoc" {
		switch {
		case f.Host == "":
			errs["host"] = "Enter the server's host name or IP address."
		case len(f.Host) > 253 || strings.ContainsAny(f.Host, " \t\r\n\x00/@") || !utf8.ValidString(f.Host):
			errs["host"] = "A host name or IP address, without spaces."
		}
		if n, err := strconv.Atoi(f.Port); err != nil || n < 1 || n > 65535 {
			errs["port"] = "A port from 1 to 65535."
		}
	}
	return errs
}

func (h *Handler) historyResend(c echo.Context) error {
	snd, ls, err := h.loadSend(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	f := readResendForm(c)
	errs := f.Validate()
	var job *delivery.Job
	if len(errs) == 0 {
		job, err = h.prepareResend(c, snd, ls, &f)
		var fe fieldError
		if errors.As(err, &fe) {
			errs[fe.field] = fe.msg
		} else if err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		rf := views.ResendForm{Server: f.Server, Host: f.Host, Port: f.Port, TLS: f.TLS, Verify: f.Verify, Errors: errs}
		d, err := h.historyDetailView(ctx, snd, ls, rf)
		if err != nil {
			return err
		}
		return render(c, http.StatusUnprocessableEntity, views.HistoryDetailPage(h.page(c, "Send #"+strconv.FormatInt(snd.ID, 10), "history"), d))
	}
	id, err := h.start(c, job)
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/history/"+strconv.FormatInt(id, 10))
}

// resendTarget is the server a valid re-send form names.
func resendTarget(snd *store.Send, f *resendForm) delivery.Target {
	t := delivery.Target{TLS: f.TLS, Verify: f.Verify}
	switch f.Server {
	case "same":
		t.Kind, t.SendID = delivery.KindSameAs, snd.ID
	case "builtin":
		t.Kind = delivery.KindCapture
	case "adhoc":
		t.Kind, t.Host, t.Port = delivery.KindServer, f.Host, f.Port
	default:
		t.Kind = delivery.KindProfile
		t.ProfileID, _ = strconv.ParseInt(f.Server, 10, 64)
	}
	return t
}

// prepareResend builds a new send of snd's stored message, with its
// envelope, to the server the form names, linked to snd by ParentID.
func (h *Handler) prepareResend(c echo.Context, snd *store.Send, ls *delivery.Live, f *resendForm) (*delivery.Job, error) {
	switch {
	case len(snd.Message) == 0 || snd.MessageTruncated || len(snd.Rcpts) == 0:
		return nil, fieldError{"server", "This send cannot be re-sent: its whole message was not kept."}
	case snd.Status == store.StatusRunning && (ls != nil || h.runningElsewhere(snd, ls)):
		return nil, fieldError{"server", "This send is still running; re-send it once it has ended."}
	}
	cfg, err := h.sends.Resolve(c.Request().Context(), resendTarget(snd, f))
	if err != nil {
		return nil, targetFieldError(err)
	}
	env := smtp.Envelope{From: snd.MailFrom, To: snd.Rcpts, Size: int64(len(snd.Message)),
		SMTPUTF8: needsSMTPUTF8(snd), EightBit: has8bit(snd.Message)}
	rec := origin(c)
	parent := snd.ID
	rec.ParentID = &parent
	rec.Server, rec.TLS, rec.From, rec.To, rec.Message, rec.MaxStored = cfg.Addr, cfg.TLS, snd.MailFrom, snd.Rcpts, snd.Message, h.maxStored
	return &delivery.Job{Send: delivery.NewSend(h.now(), rec), Config: cfg, Envelope: env, Message: snd.Message}, nil
}

// has8bit reports whether a message has bytes beyond ASCII, which need
// 8BITMIME (RFC 6152).
func has8bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// needsSMTPUTF8 reports whether a stored send needs SMTPUTF8 (RFC 6531):
// a non-ASCII envelope address or header.
func needsSMTPUTF8(snd *store.Send) bool {
	for _, a := range append([]string{snd.MailFrom, snd.Headers}, snd.Rcpts...) {
		if has8bit([]byte(a)) {
			return true
		}
	}
	head, _, _ := bytes.Cut(snd.Message, []byte("\r\n\r\n"))
	return has8bit(head)
}

// historyDelete deletes a send and its transcript.
func (h *Handler) historyDelete(c echo.Context) error {
	snd, ls, err := h.loadSend(c)
	if err != nil {
		return err
	}
	if snd.Status == store.StatusRunning && (ls != nil || h.runningElsewhere(snd, ls)) {
		return echo.NewHTTPError(http.StatusConflict, "This send is still running; delete it once it has ended.")
	}
	err = h.history.DeleteSend(c.Request().Context(), snd.ID)
	if errors.Is(err, store.ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such send.")
	}
	if err != nil {
		return fmt.Errorf("handlers: delete send: %w", err)
	}
	h.log.Info("send deleted", "send", snd.ID)
	flash(c, fmt.Sprintf("Send #%d and its transcript were deleted.", snd.ID))
	return c.Redirect(http.StatusSeeOther, "/history")
}

// ApplyRetention applies the retention policy once and returns how many
// sends it deleted. serve runs it at start and every hour.
func (h *Handler) ApplyRetention(ctx context.Context) (int, error) {
	if h.retention.MaxAge <= 0 && h.retention.MaxSends <= 0 {
		return 0, nil
	}
	var older time.Time
	if h.retention.MaxAge > 0 {
		older = h.now().Add(-h.retention.MaxAge)
	}
	n, err := h.history.ApplyRetention(ctx, older, h.retention.MaxSends)
	if err != nil {
		return n, fmt.Errorf("handlers: retention: %w", err)
	}
	var items, subs, captured int
	if !older.IsZero() {
		if items, err = h.queue.PurgeOutbox(ctx, older); err != nil {
			return n, fmt.Errorf("handlers: retention: %w", err)
		}
		if subs, err = h.queue.PurgeSubmissions(ctx, older); err != nil {
			return n, fmt.Errorf("handlers: retention: %w", err)
		}
		// Captured mail ages like the history (its count and size
		// limits are the capture server's own).
		if captured, err = h.captured.PruneCaptured(ctx, store.CapturedLimits{OlderThan: older}); err != nil {
			return n, fmt.Errorf("handlers: retention: %w", err)
		}
	}
	if n > 0 || items > 0 || subs > 0 || captured > 0 {
		h.log.Info("retention applied", "sends", n, "outbox", items, "submissions", subs, "captured", captured,
			"max_age", h.retention.MaxAge, "max_sends", h.retention.MaxSends)
	}
	return n, nil
}

// historyRetention applies the retention policy now.
func (h *Handler) historyRetention(c echo.Context) error {
	if h.retention.String() == "" {
		return echo.NewHTTPError(http.StatusConflict, "There is no retention policy to apply.")
	}
	n, err := h.ApplyRetention(c.Request().Context())
	if err != nil {
		return err
	}
	flash(c, fmt.Sprintf("Retention policy applied: %d sends deleted.", n))
	return c.Redirect(http.StatusSeeOther, "/history")
}

// historyCompare shows two sends' transcripts side by side, aligned by
// phase.
func (h *Handler) historyCompare(c echo.Context) error {
	var snds [2]*store.Send
	var lives [2]*delivery.Live
	for i, name := range []string{"a", "b"} {
		id, err := strconv.ParseInt(strings.TrimSpace(c.QueryParam(name)), 10, 64)
		if err != nil || id <= 0 {
			return echo.NewHTTPError(http.StatusBadRequest, "Give the numbers of two sends to compare.")
		}
		snd, ls, err := h.readSend(c.Request().Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("There is no send #%d.", id))
		}
		if err != nil {
			return fmt.Errorf("handlers: load send: %w", err)
		}
		snds[i], lives[i] = snd, ls
	}
	side := func(snd *store.Send, ls *delivery.Live) (views.CompareSide, views.Result) {
		r := resultView(snd, ls)
		s := views.CompareSide{HistoryRow: views.HistoryRow{
			ID: snd.ID, CreatedAt: snd.CreatedAt, Source: smtp.SafeText(snd.Source), Server: r.Server, TLSMode: r.TLSMode,
			MailFrom: r.MailFrom, Rcpts: r.Rcpts, Subject: r.Subject, Status: r.Status, StatusClass: r.StatusClass,
			QueueID: r.QueueID, DurationMS: snd.DurationMS,
		}, Error: r.Error}
		return s, r
	}
	a, ra := side(snds[0], lives[0])
	b, rb := side(snds[1], lives[1])
	v := views.HistoryCompare{A: a, B: b, Rows: alignPhases(views.Groups(ra.Events), views.Groups(rb.Events)),
		Timings: views.CompareTimings(views.Rounds(ra.Events).Timings, views.Rounds(rb.Events).Timings)}
	da, db := views.DiagramFor(ra), views.DiagramFor(rb)
	da.ID, db.ID, da.Narrow, db.Narrow = "diagram-a", "diagram-b", true, true
	v.DiagramA, v.DiagramB = views.DiagramsOnOneScale(da, db)
	return render(c, http.StatusOK, views.HistoryComparePage(h.page(c, fmt.Sprintf("Send #%d and #%d", a.ID, b.ID), "history"), v))
}

// alignPhases pairs the phase runs of two transcripts: a longest common
// subsequence of their phase names, so that EHLO meets EHLO and DATA meets
// DATA even when one send has a STARTTLS or AUTH the other lacks. A run
// only one send has gets a row of its own.
func alignPhases(a, b []views.PhaseGroup) []views.CompareRow {
	row := func(l, r *views.PhaseGroup) views.CompareRow {
		cr := views.CompareRow{Left: l, Right: r}
		if l != nil {
			cr.Phase = l.Phase
		} else {
			cr.Phase = r.Phase
		}
		cr.Differs = l != nil && r != nil && !sameLines(l.Events, r.Events)
		return cr
	}
	var out []views.CompareRow
	if len(a)*len(b) > maxAlign {
		for i := 0; i < max(len(a), len(b)); i++ {
			var l, r *views.PhaseGroup
			if i < len(a) {
				l = &a[i]
			}
			if i < len(b) {
				r = &b[i]
			}
			if l != nil && r != nil && l.Phase != r.Phase {
				out = append(out, row(l, nil), row(nil, r))
				continue
			}
			out = append(out, row(l, r))
		}
		return out
	}
	// lcs[i][j] is the LCS length of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i].Phase == b[j].Phase {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i].Phase == b[j].Phase:
			out = append(out, row(&a[i], &b[j]))
			i++
			j++
		case j == len(b) || i < len(a) && lcs[i+1][j] >= lcs[i][j+1]:
			out = append(out, row(&a[i], nil))
			i++
		default:
			out = append(out, row(nil, &b[j]))
			j++
		}
	}
	return out
}

// sameLines reports whether two runs said the same on the wire: their
// client and server lines are equal (information lines carry times and
// addresses, which differ from send to send).
func sameLines(a, b []views.IndexedEvent) bool {
	wire := func(evs []views.IndexedEvent) []string {
		var out []string
		for _, e := range evs {
			if e.Dir != smtp.DirInfo {
				out = append(out, string(e.Dir)+" "+e.Line)
			}
		}
		return out
	}
	wa, wb := wire(a), wire(b)
	if len(wa) != len(wb) {
		return false
	}
	for i := range wa {
		if wa[i] != wb[i] {
			return false
		}
	}
	return true
}

// phaseTiming is one run of a phase in the JSON export.
type phaseTiming struct {
	Phase smtp.Phase `json:"phase"`
	MS    float64    `json:"ms"`
}

// phaseTimings derives the time each run of a phase took.
func phaseTimings(events []smtp.Event) []phaseTiming {
	out := []phaseTiming{}
	for _, t := range smtp.PhaseTimings(events) {
		out = append(out, phaseTiming{Phase: t.Phase, MS: float64(t.Duration.Microseconds()) / 1000})
	}
	return out
}
