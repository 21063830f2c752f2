package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/check"
	"sockmail/internal/delivery"
	"sockmail/internal/store"
	"sockmail/smtp"
	"sockmail/views"
)

// CheckStore keeps the checks run from the Check page.
type CheckStore interface {
	CreateCheck(ctx context.Context, c *store.Check) error
	FinishCheck(ctx context.Context, id int64, finished time.Time, worst string, report []byte, sends map[int]int64) error
	CreateSend(ctx context.Context, snd *store.Send) error
	Check(ctx context.Context, id int64) (*store.Check, error)
	ListChecks(ctx context.Context, limit int, before int64) ([]store.Check, error)
}

// Bounds of the Check page: checks running at once, checks per page,
// and the SMTP timeouts of a check started from the web.
const (
	maxRunningChecks = 4
	checksPerPage    = 50
	checkConnect     = 20 * time.Second
	checkReply       = 30 * time.Second
)

// checkRunner runs the checks started from the web page in the
// background, at most maxRunningChecks at once, and keeps the report of
// each one running so that its page shows the findings so far.
type checkRunner struct {
	mu      sync.Mutex
	live    map[int64]*liveCheck
	cancels map[int64]context.CancelFunc
	closed  bool
	sem     chan struct{}
	wg      sync.WaitGroup
}

func newCheckRunner() *checkRunner {
	return &checkRunner{live: map[int64]*liveCheck{}, cancels: map[int64]context.CancelFunc{}, sem: make(chan struct{}, maxRunningChecks)}
}

// running returns what a check running in this process found so far.
func (r *checkRunner) running(id int64) *liveCheck {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live[id]
}

// shutdown cancels every running check and waits for them to store what
// they found, until ctx is done.
func (r *checkRunner) shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	for _, cancel := range r.cancels {
		cancel()
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("checks still running: %w", ctx.Err())
	}
}

// checkRoutes registers the Check page's routes in the signed-in group.
func (h *Handler) checkRoutes(g *echo.Group) {
	g.GET("/checks", h.checksPage)
	g.POST("/checks", h.startCheck)
	g.GET("/checks/compare", h.compareChecks)
	g.GET("/checks/:id", h.checkPage)
	g.GET("/checks/:id/events", h.checkEvents)
	g.POST("/checks/:id/rerun", h.rerunCheck)
	g.POST("/checks/:id/profile", h.saveCheckProfile)
}

// checksPage shows the form and the checks run, newest first.
func (h *Handler) checksPage(c echo.Context) error {
	return h.showChecks(c, http.StatusOK, views.CheckForm{Port: "25"})
}

func (h *Handler) showChecks(c echo.Context, status int, form views.CheckForm) error {
	var before int64
	if b := c.QueryParam("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return echo.NewHTTPError(http.StatusBadRequest, "The page cursor (before) must be a positive number.")
		}
		before = n
	}
	rows, err := h.checks.ListChecks(c.Request().Context(), checksPerPage+1, before)
	if err != nil {
		return fmt.Errorf("handlers: list checks: %w", err)
	}
	profiles, err := h.profiles.Profiles(c.Request().Context())
	if err != nil {
		return fmt.Errorf("handlers: list profiles: %w", err)
	}
	for _, p := range profiles {
		form.Profiles = append(form.Profiles, views.Option{Value: strconv.FormatInt(p.ID, 10),
			Label: p.Name + " (" + net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) + ")"})
	}
	v := views.CheckList{Form: form}
	if len(rows) > checksPerPage {
		rows = rows[:checksPerPage]
		v.Next = rows[len(rows)-1].ID
	}
	for i := range rows {
		v.Rows = append(v.Rows, checkRow(&rows[i]))
	}
	return render(c, status, views.CheckListPage(h.page(c, "Check", "checks"), v))
}

// checkRow is a check as a list shows it.
func checkRow(ck *store.Check) views.CheckRow {
	return views.CheckRow{ID: ck.ID, Target: ck.Target, Options: optionsText(ck), Started: ck.Started, Running: ck.Running(), Worst: ck.Worst}
}

// optionsText says how a check was run.
func optionsText(ck *store.Check) string {
	var parts []string
	if !strings.Contains(ck.Target, ":") {
		port := ck.Options.Port
		if port == 0 {
			port = 25
		}
		parts = append(parts, "MX port "+strconv.Itoa(port))
	}
	if ck.Options.ImplicitTLS {
		parts = append(parts, "implicit TLS")
	}
	if o := ck.Options; o.From != "" {
		sender := "sender " + o.From
		if o.IP != "" {
			sender += " from " + o.IP
		}
		if o.DKIMSelector != "" {
			sender += ", DKIM selector " + o.DKIMSelector
		}
		parts = append(parts, sender)
	}
	if ck.Options.RelayTest {
		parts = append(parts, "relay test")
	}
	if o := ck.Options; o.SendTo != "" {
		msg := "test message to " + o.SendTo
		if o.Profile != 0 {
			msg += " through profile #" + strconv.FormatInt(o.Profile, 10)
		}
		parts = append(parts, msg)
	}
	if len(parts) == 0 {
		return "defaults"
	}
	return strings.Join(parts, ", ")
}

// readCheckForm validates the Check form: the target as sockmail check
// reads it, the MX port from 1 to 65535, the sender-side fields, the
// relay test switch and the test message fields as check.Run validates
// them (whether the chosen profile exists is checked when it is
// resolved).
func readCheckForm(c echo.Context) (views.CheckForm, check.Target, store.CheckOptions) {
	return readCheckFields(c.FormValue)
}

// readCheckFields is readCheckForm of fields read by get (the form, or
// an API request's JSON).
func readCheckFields(get func(name string) string) (views.CheckForm, check.Target, store.CheckOptions) {
	f := views.CheckForm{
		Target: strings.TrimSpace(get("target")), Port: strings.TrimSpace(get("port")),
		ImplicitTLS: get("implicit_tls") != "", Errors: map[string]string{},
		From: strings.TrimSpace(get("from_domain")), IP: strings.TrimSpace(get("ip")),
		DKIMSelector: strings.TrimSpace(get("dkim_selector")), RelayTest: get("relay_test") != "",
		SendTo: strings.TrimSpace(get("send_to")), SendFrom: strings.TrimSpace(get("send_from")),
		Profile: strings.TrimSpace(get("send_profile")),
	}
	target, err := check.ParseTarget(f.Target)
	if err != nil {
		f.Errors["target"] = "Target: " + strings.TrimPrefix(err.Error(), "check: ") + "."
	}
	opts := store.CheckOptions{ImplicitTLS: f.ImplicitTLS, RelayTest: f.RelayTest}
	if f.Port == "" {
		f.Port = "25"
	}
	port, err := strconv.Atoi(f.Port)
	if err != nil || port < 1 || port > 65535 {
		f.Errors["port"] = fmt.Sprintf("Port: %q is not a number from 1 to 65535.", clipText(f.Port, 20))
	} else if port != 25 {
		opts.Port = port
	}
	readSenderFields(&f, &opts)
	readTestSendFields(&f, target, &opts)
	return f, target, opts
}

// readSenderFields validates the sender-side fields, naming the field at
// fault.
func readSenderFields(f *views.CheckForm, opts *store.CheckOptions) {
	so := check.SenderOptions{From: f.From, IP: f.IP, DKIMSelector: f.DKIMSelector}
	if so.From == "" && (so.IP != "" || so.DKIMSelector != "") {
		f.Errors["from_domain"] = "From domain: give it to check a sending address or a DKIM selector."
		return
	}
	if err := so.Validate(); err != nil {
		msg := strings.TrimPrefix(err.Error(), "check: ")
		field := "from_domain"
		switch {
		case strings.HasPrefix(msg, "sending address"):
			field = "ip"
		case strings.HasPrefix(msg, "DKIM selector"):
			field = "dkim_selector"
		}
		f.Errors[field] = clipText(upperFirst(msg), 300) + "."
		return
	}
	opts.From, opts.IP, opts.DKIMSelector = so.From, so.IP, so.DKIMSelector
}

// readTestSendFields validates the test message fields, naming the field
// at fault.
func readTestSendFields(f *views.CheckForm, target check.Target, opts *store.CheckOptions) {
	if f.Profile != "" {
		id, err := strconv.ParseInt(f.Profile, 10, 64)
		if err != nil || id <= 0 {
			f.Errors["send_profile"] = "Send through: choose a saved profile from the list."
			return
		}
		if f.SendTo == "" {
			f.Errors["send_to"] = "Send a test message to: give the recipient to send through a profile."
			return
		}
		opts.Profile = id
	}
	if f.Errors["target"] != "" {
		return // the sender default needs the target
	}
	ts := check.TestSendOptions{To: f.SendTo, From: f.SendFrom}
	if err := ts.Validate(opts.From, target); err != nil {
		msg := upperFirst(strings.TrimPrefix(err.Error(), "check: "))
		field := "send_to"
		if strings.Contains(msg, "sender") && !strings.Contains(msg, "needs a recipient") {
			field = "send_from"
		}
		f.Errors[field] = clipText(msg, 300) + "."
		return
	}
	if f.SendTo != "" {
		opts.SendTo, opts.SendFrom = f.SendTo, f.SendFrom
	}
}

// upperFirst capitalises the first letter of an error message.
func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// clipText cuts s to n bytes for an error message.
func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// startCheck starts the check the form asks for and shows its page.
func (h *Handler) startCheck(c echo.Context) error {
	form, target, opts := readCheckForm(c)
	if len(form.Errors) > 0 {
		return h.showChecks(c, http.StatusUnprocessableEntity, form)
	}
	if err := h.launchCheck(c, target, opts); err != nil {
		var pe *profileError
		if errors.As(err, &pe) {
			form.Errors["send_profile"] = pe.msg
			return h.showChecks(c, http.StatusUnprocessableEntity, form)
		}
		return err
	}
	return nil
}

// rerunCheck runs a stored check again, with the same target and options.
func (h *Handler) rerunCheck(c echo.Context) error {
	ck, err := h.loadCheck(c, c.Param("id"))
	if err != nil {
		return err
	}
	target, err := check.ParseTarget(ck.Target)
	if err != nil {
		return fmt.Errorf("handlers: rerun check %d: %w", ck.ID, err)
	}
	return h.launchCheck(c, target, ck.Options)
}

// launchCheck records a check, runs it in the background and redirects
// to its page.
func (h *Handler) launchCheck(c echo.Context, target check.Target, opts store.CheckOptions) error {
	id, err := h.beginCheck(c, target, opts)
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/checks/"+strconv.FormatInt(id, 10))
}

// beginCheck records a check and runs it in the background (the Check
// page's runner), returning its id.
func (h *Handler) beginCheck(c echo.Context, target check.Target, opts store.CheckOptions) (int64, error) {
	r := h.checkRuns
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return 0, echo.NewHTTPError(http.StatusServiceUnavailable, "sockmail is shutting down; try again in a moment.")
	}
	copts := check.Options{
		Resolver: h.checkResolver, MXPort: opts.Port, ImplicitTLS: opts.ImplicitTLS, RootCAs: h.rootCAs,
		Timeouts: smtp.Timeouts{Connect: checkConnect, Greeting: checkReply, Command: checkReply}, Now: h.now,
		Sender:    check.SenderOptions{From: opts.From, IP: opts.IP, DKIMSelector: opts.DKIMSelector},
		RelayTest: opts.RelayTest,
		TestSend:  check.TestSendOptions{To: opts.SendTo, From: opts.SendFrom},
	}
	if opts.Profile != 0 {
		cfg, name, err := h.checkProfile(c.Request().Context(), opts.Profile)
		if err != nil {
			return 0, err
		}
		copts.TestSend.Via, copts.TestSend.ViaName = &cfg, "profile "+name
	}
	ck := &store.Check{Target: target.String(), Options: opts, Started: h.now()}
	if err := h.checks.CreateCheck(c.Request().Context(), ck); err != nil {
		return 0, fmt.Errorf("handlers: start check: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel()
		h.finishCheck(ck.ID, false, nil, "sockmail was shutting down")
		return 0, echo.NewHTTPError(http.StatusServiceUnavailable, "sockmail is shutting down; try again in a moment.")
	}
	live := newLiveCheck()
	r.cancels[ck.ID] = cancel
	r.live[ck.ID] = live
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer cancel()
		h.runCheck(ctx, ck.ID, target, copts, live)
	}()
	return ck.ID, nil
}

// liveCheck is what a running check has found so far, gathered from its
// events (check.Options.OnEvent), which arrive one at a time.
type liveCheck struct {
	mu       sync.Mutex
	resolver string
	hosts    []check.Host
	findings []check.Finding
	lookups  []string
	// changed is closed (and replaced) at each step, to wake the event
	// streams of the check's page; done is closed once its outcome is
	// stored.
	changed chan struct{}
	done    chan struct{}
}

func newLiveCheck() *liveCheck {
	return &liveCheck{changed: make(chan struct{}), done: make(chan struct{})}
}

// wait returns a channel closed at the next step.
func (l *liveCheck) wait() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

func (l *liveCheck) onEvent(ev check.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.changed)
	l.changed = make(chan struct{})
	switch {
	case ev.Host != nil:
		l.hosts = append(l.hosts, *ev.Host)
	case ev.Finding != nil:
		l.findings = append(l.findings, *ev.Finding)
	case ev.Lookup != nil:
		l.lookups = append(l.lookups, smtp.SafeText(ev.Lookup.String()))
		l.resolver = ev.Lookup.Server
	}
}

// fill puts what was found so far on the report page.
func (l *liveCheck) fill(v *views.CheckReport) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v.Resolver = l.resolver
	for _, h := range l.hosts {
		v.Hosts = append(v.Hosts, hostText(h))
	}
	v.Groups = groupFindings(l.hosts, l.findings, nil)
	v.Lookups = append([]string(nil), l.lookups...)
}

// runCheck runs one check once a slot is free and stores its report.
func (h *Handler) runCheck(ctx context.Context, id int64, target check.Target, opts check.Options, live *liveCheck) {
	r := h.checkRuns
	defer func() {
		r.mu.Lock()
		delete(r.live, id)
		delete(r.cancels, id)
		r.mu.Unlock()
		close(live.done)
	}()
	select {
	case r.sem <- struct{}{}:
		defer func() { <-r.sem }()
	case <-ctx.Done():
		h.finishCheck(id, false, nil, "the check was cancelled before it started")
		return
	}
	opts.OnEvent = live.onEvent
	rep, err := check.Run(ctx, target, opts)
	if err != nil {
		h.finishCheck(id, false, nil, strings.TrimPrefix(err.Error(), "check: "))
		return
	}
	h.finishCheck(id, opts.ImplicitTLS, rep, "")
}

// sourceCheck is the history source of a check's SMTP conversations.
const sourceCheck = "check"

// finishCheck stores a check's outcome: each SMTP conversation as a send
// in the history (source "check"), then its report, or why it could not
// run.
func (h *Handler) finishCheck(id int64, implicitTLS bool, rep *check.Report, failure string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	worst, body := "error", []byte(nil)
	var sends map[int]int64
	if rep != nil {
		sends = h.storeConversations(ctx, id, implicitTLS, rep)
		b, err := json.Marshal(rep)
		if err != nil {
			h.log.Error("check: encode report", "check", id, "err", err)
			failure = "the report could not be encoded"
		} else {
			worst, body = string(rep.Worst()), b
		}
	}
	if failure != "" {
		b, _ := json.Marshal(map[string]string{"error": failure})
		worst, body = "error", b
	}
	if err := h.checks.FinishCheck(ctx, id, h.now(), worst, body, sends); err != nil {
		h.log.Error("check: store outcome", "check", id, "err", err)
	}
}

// storeConversations keeps each SMTP conversation of a check as a
// finished send in the history and returns their ids by conversation
// number. A conversation that ended as planned is "stopped" (the checks
// stop before DATA), or "sent" for the test message; one that failed has
// the status its error amounts to (a refusal is permanent) and the error.
func (h *Handler) storeConversations(ctx context.Context, id int64, implicitTLS bool, rep *check.Report) map[int]int64 {
	sends := map[int]int64{}
	for _, conv := range rep.Conversations() {
		events := conv.Transcript.Events()
		var took time.Duration
		if n := len(events); n > 0 {
			took = events[n-1].Offset
		}
		tlsMode := "starttls"
		if implicitTLS || strings.HasSuffix(conv.Addr, ":465") {
			tlsMode = "implicit"
		}
		finished := h.now()
		snd := &store.Send{
			CreatedAt: finished.Add(-took), FinishedAt: &finished, Source: sourceCheck, Server: conv.Addr, TLSMode: tlsMode,
			Subject: fmt.Sprintf("check #%d of %s: %s (%s)", id, rep.Target, conv.Purpose, conv.Host),
			Status:  smtp.StatusStopped, Events: events, DurationMS: smtp.Millis(took),
		}
		if conv.Purpose == check.TestSendPurpose {
			snd.Status = smtp.StatusSent // the test message went through DATA
		}
		if conv.Err != "" {
			snd.Status, snd.Error = conv.Status, conv.Err
			if snd.Status == "" { // a report stored before conversations kept it
				snd.Status = smtp.StatusTempFail
			}
		}
		if err := h.checks.CreateSend(ctx, snd); err != nil {
			h.log.Error("check: store conversation", "check", id, "conversation", conv.ID, "err", err)
			continue
		}
		sends[conv.ID] = snd.ID
	}
	return sends
}

// profileError is a saved profile that cannot carry a check's test
// message; its text is for the form's profile field.
type profileError struct{ msg string }

func (e *profileError) Error() string { return e.msg }

// checkProfile resolves a saved profile to the server configuration its
// sends use (internal/delivery, as compose and release do) and its name.
func (h *Handler) checkProfile(ctx context.Context, id int64) (smtp.Config, string, error) {
	profiles, err := h.profiles.Profiles(ctx)
	if err != nil {
		return smtp.Config{}, "", fmt.Errorf("handlers: list profiles: %w", err)
	}
	name := ""
	for _, p := range profiles {
		if p.ID == id {
			name = p.Name
		}
	}
	if name == "" {
		return smtp.Config{}, "", &profileError{msg: "Send through: there is no such profile; choose one from the list."}
	}
	cfg, err := h.sends.Resolve(ctx, delivery.Target{Kind: delivery.KindProfile, ProfileID: id})
	if err != nil {
		return smtp.Config{}, "", &profileError{msg: fmt.Sprintf("Send through: profile %s cannot be used: %v.", name, err)}
	}
	return cfg, name, nil
}

// loadCheck reads the check named by idText, or answers 404.
// checkAndLive loads a check and what this process's runner has of it
// while it runs. The runner stores a check's outcome before it forgets
// the run, so a run that ends between the two reads is found finished by
// reading the check again; without that, its page (and the API) showed a
// running check as ended with nothing found.
func (h *Handler) checkAndLive(c echo.Context, idText string) (*store.Check, *liveCheck, error) {
	ck, err := h.loadCheck(c, idText)
	if err != nil {
		return nil, nil, err
	}
	live := h.checkRuns.running(ck.ID)
	if live == nil && ck.Running() {
		if ck, err = h.loadCheck(c, idText); err != nil {
			return nil, nil, err
		}
	}
	return ck, live, nil
}

func (h *Handler) loadCheck(c echo.Context, idText string) (*store.Check, error) {
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil || id <= 0 {
		return nil, echo.NewHTTPError(http.StatusNotFound, "There is no such check.")
	}
	ck, err := h.checks.Check(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, echo.NewHTTPError(http.StatusNotFound, "There is no such check.")
	}
	if err != nil {
		return nil, fmt.Errorf("handlers: load check: %w", err)
	}
	return ck, nil
}

// storedReport reads a finished check's report; nil (and the failure)
// when the check could not run.
func storedReport(ck *store.Check) (*check.Report, string, error) {
	if len(ck.Report) == 0 {
		return nil, "", nil
	}
	var failed struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(ck.Report, &failed); err == nil && failed.Error != "" {
		return nil, failed.Error, nil
	}
	rep := &check.Report{}
	if err := json.Unmarshal(ck.Report, rep); err != nil {
		return nil, "", fmt.Errorf("handlers: check %d: %w", ck.ID, err)
	}
	return rep, "", nil
}

// checkPage shows a check: the live report while it runs here, the
// stored one when it is done.
func (h *Handler) checkPage(c echo.Context) error {
	ck, live, err := h.checkAndLive(c, c.Param("id"))
	if err != nil {
		return err
	}
	v := views.CheckReport{CheckRow: checkRow(ck)}
	switch {
	case !ck.Running():
		rep, failure, err := storedReport(ck)
		if err != nil {
			return err
		}
		if failure != "" {
			v.Groups = []views.CheckGroup{{Findings: []views.CheckFinding{{ID: "check.run", Status: "fail", Message: "The check could not run: " + failure + "."}}}}
		}
		if rep != nil {
			fillReport(&v, rep, ck.Sends)
			if s, ok := check.Suggest(rep, ck.Options.ImplicitTLS); ok {
				v.Suggested = &views.CheckSuggestion{Host: s.Host, Port: s.Port, TLSMode: s.TLSMode, AuthMech: s.AuthMech}
			}
		}
	case live != nil:
		live.fill(&v)
	default:
		// Started by another instance, or by one that stopped mid-check.
		v.Running = false
		v.Worst = "unknown: the check runs on another sockmail instance or was interrupted; reload later"
	}
	if !ck.Running() {
		v.Took = ck.Finished.Sub(ck.Started).Round(time.Millisecond).String()
		others, err := h.sameTarget(c.Request().Context(), ck)
		if err != nil {
			return err
		}
		v.Others = others
	}
	p := h.page(c, "Check #"+strconv.FormatInt(ck.ID, 10), "checks")
	if live != nil {
		p.RefreshSeconds = 2
	}
	return render(c, http.StatusOK, views.CheckReportPage(p, v))
}

// fillReport puts a stored report's hosts, findings and lookups on the
// page.
func fillReport(v *views.CheckReport, rep *check.Report, sends map[int]int64) {
	v.Resolver = rep.Resolver
	hosts := rep.Hosts()
	for _, h := range hosts {
		v.Hosts = append(v.Hosts, hostText(h))
	}
	v.Groups = groupFindings(hosts, rep.Findings(), sends)
	for _, l := range rep.Lookups() {
		v.Lookups = append(v.Lookups, smtp.SafeText(l.String()))
	}
}

func hostText(h check.Host) string {
	return fmt.Sprintf("%s (preference %d, port %d)", h.Name, h.Preference, h.Port)
}

// groupFindings groups findings by host: the domain's own first, then
// each host in order, as check.Report.Groups does. Messages quote what
// servers and DNS said: control and bidi characters are shown escaped
// (smtp.SafeText).
func groupFindings(hosts []check.Host, findings []check.Finding, sends map[int]int64) []views.CheckGroup {
	order := []string{""}
	for _, h := range hosts {
		order = append(order, h.Name)
	}
	for _, f := range findings {
		if !slices.Contains(order, f.Host) {
			order = append(order, f.Host)
		}
	}
	var out []views.CheckGroup
	for _, host := range order {
		g := views.CheckGroup{Host: host}
		for _, f := range findings {
			if f.Host == host {
				g.Findings = append(g.Findings, views.CheckFinding{ID: f.ID, Status: string(f.Status), Addr: f.Addr,
					Message: smtp.SafeText(f.Message), Fix: smtp.SafeText(f.Fix), SendID: sends[f.Conversation]})
			}
		}
		if len(g.Findings) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// sameTarget lists the other finished checks of ck's target among the
// most recent ones, newest first.
func (h *Handler) sameTarget(ctx context.Context, ck *store.Check) ([]views.CheckRow, error) {
	rows, err := h.checks.ListChecks(ctx, checksPerPage, 0)
	if err != nil {
		return nil, fmt.Errorf("handlers: list checks: %w", err)
	}
	var out []views.CheckRow
	for i := range rows {
		if rows[i].ID != ck.ID && rows[i].Target == ck.Target && !rows[i].Running() {
			out = append(out, checkRow(&rows[i]))
		}
	}
	return out, nil
}

// compareChecks lists the findings added, removed or changed in status
// from check a to check b, two finished checks of the same target.
func (h *Handler) compareChecks(c echo.Context) error {
	a, err := h.loadCheck(c, c.QueryParam("a"))
	if err != nil {
		return err
	}
	b, err := h.loadCheck(c, c.QueryParam("b"))
	if err != nil {
		return err
	}
	if a.Target != b.Target {
		return echo.NewHTTPError(http.StatusUnprocessableEntity, fmt.Sprintf("Checks #%d (%s) and #%d (%s) are of different targets; compare two checks of one target.", a.ID, a.Target, b.ID, b.Target))
	}
	ra, _, err := storedReport(a)
	if err != nil {
		return err
	}
	rb, _, err := storedReport(b)
	if err != nil {
		return err
	}
	if ra == nil || rb == nil {
		return echo.NewHTTPError(http.StatusUnprocessableEntity, "Both checks must have finished with a report to be compared.")
	}
	added, removed, changed := check.Compare(ra.Findings(), rb.Findings())
	v := views.CheckCompare{A: checkRow(a), B: checkRow(b), Added: changeRows(added), Removed: changeRows(removed), Changed: changeRows(changed)}
	return render(c, http.StatusOK, views.CheckComparePage(h.page(c, "Compare checks", "checks"), v))
}

func changeRows(cs []check.Change) []views.CheckChange {
	var out []views.CheckChange
	for _, ch := range cs {
		row := views.CheckChange{}
		f := ch.New
		if f == nil {
			f = ch.Old
		}
		row.Host, row.Addr, row.ID, row.Message = f.Host, f.Addr, f.ID, f.Message
		if ch.Old != nil {
			row.Old = string(ch.Old.Status)
		}
		if ch.New != nil {
			row.New = string(ch.New.Status)
		}
		out = append(out, row)
	}
	return out
}

// saveCheckProfile saves the profile suggested by a server check and
// opens its edit page, to add credentials.
func (h *Handler) saveCheckProfile(c echo.Context) error {
	ck, err := h.loadCheck(c, c.Param("id"))
	if err != nil {
		return err
	}
	rep, _, err := storedReport(ck)
	if err != nil {
		return err
	}
	var s check.Suggestion
	ok := false
	if rep != nil {
		s, ok = check.Suggest(rep, ck.Options.ImplicitTLS)
	}
	if !ok {
		return echo.NewHTTPError(http.StatusUnprocessableEntity, "This check suggests no profile: only a finished server check that got as far as EHLO does.")
	}
	p := &store.Profile{Name: fmt.Sprintf("%s (check #%d)", ck.Target, ck.ID), Host: s.Host, Port: s.Port, TLSMode: s.TLSMode}
	if s.AuthMech != "" {
		p.AuthMech = s.AuthMech
	}
	if err := h.profiles.SaveProfile(c.Request().Context(), p); err != nil {
		if errors.Is(err, store.ErrExists) {
			flash(c, "A profile named \""+p.Name+"\" exists already.")
			return c.Redirect(http.StatusSeeOther, "/checks/"+strconv.FormatInt(ck.ID, 10))
		}
		return fmt.Errorf("handlers: save suggested profile: %w", err)
	}
	flash(c, "Profile \""+p.Name+"\" saved from check #"+strconv.FormatInt(ck.ID, 10)+". Add its credentials below.")
	return c.Redirect(http.StatusSeeOther, "/profiles/"+strconv.FormatInt(p.ID, 10))
}

// checkEvents streams a running check's page as it fills in: after each
// step a "report" event carries the live part of the page, rendered
// (views.CheckLive); "done" says the check has ended and its full report
// is stored (app.js then reloads the page). A check not running here gets
// "done" at once.
func (h *Handler) checkEvents(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such check.")
	}
	stream := openEventStream(c)
	write := func(event, data string) error { return stream.send(event, []byte(data)) }
	live := h.checkRuns.running(id)
	if live == nil {
		return write("done", "{}")
	}
	ping := time.NewTicker(ssePing)
	defer ping.Stop()
	for {
		changed := live.wait()
		v := views.CheckReport{CheckRow: views.CheckRow{ID: id, Running: true}}
		live.fill(&v)
		var b strings.Builder
		if err := views.CheckLive(v).Render(c.Request().Context(), &b); err != nil {
			return fmt.Errorf("handlers: render check %d: %w", id, err)
		}
		if err := write("report", b.String()); err != nil {
			return err
		}
	wait:
		for {
			select {
			case <-changed:
				break wait
			case <-live.done:
				return write("done", "{}")
			case <-ping.C:
				if stream.ping() != nil {
					return nil // the browser left
				}
			case <-c.Request().Context().Done():
				return nil
			}
		}
	}
}
