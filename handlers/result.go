package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/delivery"
	"sockmail/internal/explain"
	"sockmail/internal/safetext"
	"sockmail/internal/store"
	"sockmail/smtp"
	"sockmail/views"
)

// start records the send and runs it in the background (delivery),
// returning its id.
func (h *Handler) start(c echo.Context, job *delivery.Job) (int64, error) {
	id, err := h.sends.Start(c.Request().Context(), job)
	if errors.Is(err, delivery.ErrClosed) {
		return 0, echo.NewHTTPError(http.StatusServiceUnavailable, "sockmail is shutting down; try again in a moment.")
	}
	if err != nil {
		return 0, fmt.Errorf("handlers: %w", err)
	}
	return id, nil
}

// cancelOutcome is what a cancel request came to.
type cancelOutcome int

const (
	// cancelDone: the send was running here; it is aborted and its
	// outcome stored (or the request ended first).
	cancelDone cancelOutcome = iota
	// cancelEnded: the send had already ended.
	cancelEnded
	// cancelElsewhere: the send runs on another instance.
	cancelElsewhere
)

// cancelRunning aborts snd when it runs in this process (ls), noting who
// cancelled it in its transcript, and waits for its outcome to be stored.
// The result page's Cancel and the API's share it.
func (h *Handler) cancelRunning(c echo.Context, snd *store.Send, ls *delivery.Live, who string) cancelOutcome {
	switch {
	case ls != nil:
		if err := h.sends.Cancel(snd.ID, who); err != nil {
			return cancelEnded
		}
		select { // the outcome is stored quickly once the connection is closed
		case <-ls.Done():
		case <-c.Request().Context().Done():
		}
		return cancelDone
	case h.runningElsewhere(snd, ls):
		return cancelElsewhere
	}
	return cancelEnded
}

// cancelSend aborts a send running in this process, then shows its
// result page: the transcript up to where it stopped, status aborted.
func (h *Handler) cancelSend(c echo.Context) error {
	snd, ls, err := h.loadSend(c)
	if err != nil {
		return err
	}
	back := "/sends/" + strconv.FormatInt(snd.ID, 10)
	who := "an admin"
	if u, _ := c.Get(ctxUser).(*store.User); u != nil {
		who = u.Email
	}
	switch h.cancelRunning(c, snd, ls, who) {
	case cancelDone:
		flash(c, fmt.Sprintf("Send #%d was cancelled.", snd.ID))
	case cancelElsewhere:
		flash(c, fmt.Sprintf("Send #%d runs on another sockmail instance and cannot be cancelled from this one; it ends at its time limit.", snd.ID))
	case cancelEnded:
		if ls != nil {
			flash(c, fmt.Sprintf("Send #%d had already ended.", snd.ID))
		} else {
			flash(c, fmt.Sprintf("Send #%d had already ended; there is nothing to cancel.", snd.ID))
		}
	}
	return c.Redirect(http.StatusSeeOther, back)
}

// loadSend reads the send named in the URL, with its live state when it
// runs in this process.
func (h *Handler) loadSend(c echo.Context) (*store.Send, *delivery.Live, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, nil, echo.NewHTTPError(http.StatusNotFound, "There is no such send.")
	}
	snd, ls, err := h.readSend(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, echo.NewHTTPError(http.StatusNotFound, "There is no such send.")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("handlers: load send: %w", err)
	}
	return snd, ls, nil
}

// readSend reads a stored send and its live state. The live state is
// looked up first: run stores the outcome before it drops the live
// state, so a send found not live here is read as it ended, never as a
// stale "running" row without its transcript. Callers use the live state
// returned, not a later lookup.
func (h *Handler) readSend(ctx context.Context, id int64) (*store.Send, *delivery.Live, error) {
	ls := h.sends.Live(id)
	snd, err := h.history.Send(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if snd.Status != store.StatusRunning {
		ls = nil
	}
	return snd, ls, nil
}

// resultPage renders a send. While it runs the page shows the transcript
// so far; app.js streams the rest and reloads at the end, and without
// JavaScript a <noscript> refresh reloads the page every 2 seconds until
// the send has ended.
func (h *Handler) resultPage(c echo.Context) error {
	snd, ls, err := h.loadSend(c)
	if err != nil {
		return err
	}
	r := resultView(snd, ls)
	if h.runningElsewhere(snd, ls) {
		// Another instance behind the load balancer runs it.
		r.Status, r.StatusClass = "running elsewhere (another sockmail instance runs it): reload to see the outcome", "running"
	}
	p := h.page(c, "Send #"+strconv.FormatInt(snd.ID, 10), "compose")
	if r.Running {
		p.RefreshSeconds = 2
	}
	return render(c, http.StatusOK, views.ResultPage(p, r))
}

// resultView builds the result page data of a send, live or finished.
func resultView(snd *store.Send, ls *delivery.Live) views.Result {
	r := views.Result{
		ID: snd.ID, Status: string(snd.Status), Server: snd.Server, TLSMode: snd.TLSMode, MailFrom: snd.MailFrom,
		Rcpts: snd.Rcpts, Subject: snd.Subject, QueueID: snd.QueueID, Error: snd.Error, Started: snd.CreatedAt,
		DurationMS: snd.DurationMS, Events: snd.Events, HasMessage: len(snd.Message) > 0, Failure: snd.Failure,
	}
	running := snd.Status == store.StatusRunning
	if running && ls != nil {
		r.Running = true
		r.Events = ls.Transcript().Events()
		r.Dropped = ls.Transcript().Dropped()
	} else if running {
		r.Status = "interrupted (sockmail stopped during the send)"
	}
	r.StatusClass = statusClass(r.Status, r.Running)
	for _, rc := range snd.Recipients {
		row := views.RecipientRow{RecipientResult: rc}
		if !rc.Accepted && rc.Code != 0 {
			row.Explanation = (*views.Explanation)(explain.Recipient(rc))
		}
		r.Recipients = append(r.Recipients, row)
	}
	if snd.Error != "" && snd.Status != smtp.StatusAborted { // an abort needs no explaining
		r.Explanation = (*views.Explanation)(explain.Send(snd.Failure, snd.Error))
	} else {
		for _, row := range r.Recipients {
			if row.Explanation != nil {
				r.Explanation = row.Explanation
				break
			}
		}
	}
	for _, ev := range r.Events {
		if ev.Dir == smtp.DirInfo && (strings.HasPrefix(ev.Line, "TLS ") || strings.HasPrefix(ev.Line, "certificate") || strings.Contains(ev.Line, "WITHOUT encryption")) {
			r.TLSInfo = append(r.TLSInfo, smtp.SafeText(ev.Line))
		}
	}
	return safeResult(r)
}

func statusClass(status string, running bool) string {
	if running {
		return "running"
	}
	switch smtp.Status(status) {
	case smtp.StatusSent, smtp.StatusStopped:
		return "ok"
	case smtp.StatusPartial, smtp.StatusTempFail, smtp.StatusUnknown:
		return "warn"
	}
	return "fail"
}

// sseRounds is a "rounds" event of the stream: the transcript's rounds
// from From on, rendered by the same component as the finished page
// (views.RoundSection), to replace the page's rounds from From on; Count
// is how many events they show in all.
type sseRounds struct {
	From  int    `json:"from"`
	Count int    `json:"count"`
	HTML  string `json:"html"`
}

// maxResumeAfter bounds ?after=: no transcript holds more events.
const maxResumeAfter = 1 << 20

// events streams a running send's transcript as server-sent events:
// "rounds" events carrying the HTML of the rounds that changed since the
// page's first ?after= events (views.RoundSection, the finished page's
// own component, so the live and the finished view agree to the line),
// then "done". A finished send gets "done" at once.
func (h *Handler) events(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such send.")
	}
	after, err := strconv.Atoi(c.QueryParam("after"))
	if c.QueryParam("after") != "" && (err != nil || after < 0 || after > maxResumeAfter) {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("after must be a count of transcript lines from 0 to %d.", maxResumeAfter))
	}
	stream := openEventStream(c)
	ls := h.sends.Live(id)
	if ls == nil {
		return stream.send("done", []byte("{}"))
	}
	// The subscriber runs under the transcript's lock: it only queues.
	var (
		mu      sync.Mutex
		pending []smtp.Event
		stopped bool
		wake    = make(chan struct{}, 1)
	)
	past, unsubscribe := ls.Transcript().Subscribe(func(ev smtp.Event) {
		mu.Lock()
		if !stopped {
			pending = append(pending, ev)
		}
		mu.Unlock()
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer unsubscribe()
	defer func() { mu.Lock(); stopped, pending = true, nil; mu.Unlock() }()
	all := past
	shown := min(after, len(all)) // the events the page shows
	send := func() error {
		if len(all) <= shown {
			return nil
		}
		tr := views.Rounds(all)
		from := len(tr.Rounds)
		for i := shown; i < len(all); i++ {
			from = min(from, tr.RoundOf[i])
		}
		var html strings.Builder
		for _, rd := range tr.Rounds[from:] {
			if err := views.RoundSection(rd).Render(c.Request().Context(), &html); err != nil {
				return fmt.Errorf("handlers: render rounds: %w", err)
			}
		}
		b, err := json.Marshal(sseRounds{From: from, Count: len(all), HTML: html.String()})
		if err != nil {
			return fmt.Errorf("handlers: encode rounds: %w", err)
		}
		shown = len(all)
		return stream.send("rounds", b)
	}
	drain := func() error {
		mu.Lock()
		all = append(all, pending...)
		pending = nil
		mu.Unlock()
		return send()
	}
	if err := send(); err != nil {
		return err
	}
	ping := time.NewTicker(ssePing)
	defer ping.Stop()
	for {
		select {
		case <-wake:
			if err := drain(); err != nil {
				return err
			}
		case <-ls.Done():
			if err := drain(); err != nil {
				return err
			}
			return stream.send("done", []byte("{}"))
		case <-ping.C:
			if stream.ping() != nil {
				return nil // the browser left
			}
		case <-c.Request().Context().Done():
			return nil
		case <-h.sends.Closing():
			return nil
		}
	}
}

// sendEvents returns a send's transcript, live or stored.
func sendEvents(snd *store.Send, ls *delivery.Live) []smtp.Event {
	if ls != nil && snd.Status == store.StatusRunning {
		return ls.Transcript().Events()
	}
	return snd.Events
}

// transcriptText downloads the transcript as swaks-like text.
func (h *Handler) transcriptText(c echo.Context) error {
	snd, ls, err := h.loadSend(c)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "== sockmail send #%d to %s (%s): %s\n", snd.ID, smtp.SafeText(snd.Server), smtp.SafeText(snd.TLSMode), smtp.SafeText(string(snd.Status)))
	if snd.QueueID != "" {
		fmt.Fprintf(&b, "== queue id %s\n", smtp.SafeText(snd.QueueID))
	}
	if snd.Error != "" {
		fmt.Fprintf(&b, "== error: %s\n", smtp.SafeText(snd.Error))
	}
	events := sendEvents(snd, ls)
	if parts := smtp.Converse(events).Timings().String(); parts != "" {
		fmt.Fprintf(&b, "== timings: %s\n", parts)
	}
	// Round by round, each command followed by its own reply.
	if err := smtp.WriteRounds(&b, events); err != nil {
		return fmt.Errorf("handlers: transcript text: %w", err)
	}
	attachment(c, fmt.Sprintf("sockmail-send-%d.txt", snd.ID))
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", []byte(b.String()))
}

// exportExchange is a command and its reply in the JSON export: indexes
// into its "events" (command -1 for a reply nobody asked for, such as
// the greeting), the reply's code (0 without a reply) and the round trip.
type exportExchange struct {
	Command int        `json:"command"`
	Body    []int      `json:"body,omitempty"`
	Reply   []int      `json:"reply"`
	Code    int        `json:"code"`
	Partial bool       `json:"partial,omitempty"`
	WaitMS  float64    `json:"wait_ms"`
	Phase   smtp.Phase `json:"phase"`
}

// exportExchanges pairs the commands of events with their replies.
func exportExchanges(events []smtp.Event) ([]exportExchange, map[string]float64) {
	cv := smtp.Converse(events)
	out := make([]exportExchange, len(cv.Exchanges))
	for i, x := range cv.Exchanges {
		reply := x.Reply
		if reply == nil {
			reply = []int{}
		}
		out[i] = exportExchange{Command: x.Command, Body: x.Body, Reply: reply, Code: x.Code, Partial: x.Partial,
			WaitMS: smtp.Millis(x.Wait()), Phase: x.Phase}
	}
	t := cv.Timings()
	timings := map[string]float64{"total": smtp.Millis(t.Total)}
	for _, p := range t.Parts() {
		timings[p.Key] = smtp.Millis(p.Duration)
	}
	return out, timings
}

// jsonEscaping names how the JSON export keeps bytes that are not UTF-8
// (JSON cannot carry them): in every string, `\\` is a backslash and
// `\xHH` such a byte (safetext.EscapeBytes; safetext.UnescapeBytes
// reverses it). The text export shows them with the same `\xHH`.
const jsonEscaping = "bytes-v1"

// exportEvent is a transcript event in the JSON export, its line escaped
// (jsonEscaping).
type exportEvent struct {
	MS     float64        `json:"ms"`
	Dir    smtp.Direction `json:"dir"`
	Phase  smtp.Phase     `json:"phase"`
	Line   string         `json:"line"`
	Secret bool           `json:"secret,omitempty"`
}

// transcriptJSON downloads the send and its transcript as JSON. Every
// string keeps its bytes (jsonEscaping), so a hostile server's invalid
// UTF-8 is exported as it came, not replaced.
func (h *Handler) transcriptJSON(c echo.Context) error {
	snd, ls, err := h.loadSend(c)
	if err != nil {
		return err
	}
	esc := safetext.EscapeBytes
	escAll := func(list []string) []string {
		out := make([]string, len(list))
		for i, s := range list {
			out[i] = esc(s)
		}
		return out
	}
	events := sendEvents(snd, ls)
	evs := make([]exportEvent, len(events))
	for i, ev := range events {
		evs[i] = exportEvent{MS: float64(ev.Offset.Microseconds()) / 1000, Dir: ev.Dir, Phase: ev.Phase, Line: esc(ev.Line), Secret: ev.Secret}
	}
	rcpts := make([]smtp.RecipientResult, len(snd.Recipients))
	for i, r := range snd.Recipients {
		r.Address, r.EnhancedCode, r.Message = esc(r.Address), esc(r.EnhancedCode), esc(r.Message)
		rcpts[i] = r
	}
	v := struct {
		Escaping   string                 `json:"escaping"`
		ID         int64                  `json:"id"`
		CreatedAt  time.Time              `json:"created_at"`
		FinishedAt *time.Time             `json:"finished_at,omitempty"`
		Server     string                 `json:"server"`
		TLSMode    string                 `json:"tls_mode"`
		MailFrom   string                 `json:"mail_from"`
		Rcpts      []string               `json:"rcpts"`
		Subject    string                 `json:"subject"`
		Status     smtp.Status            `json:"status"`
		QueueID    string                 `json:"queue_id,omitempty"`
		Error      string                 `json:"error,omitempty"`
		DurationMS float64                `json:"duration_ms"`
		Recipients []smtp.RecipientResult `json:"recipients"`
		Events     []exportEvent          `json:"events"`
		// Where the send came from, and the time each phase took.
		Source           string        `json:"source"`
		ClientAddr       string        `json:"client_addr,omitempty"`
		UserID           *int64        `json:"user_id,omitempty"`
		ParentID         *int64        `json:"parent_id,omitempty"`
		MessageTruncated bool          `json:"message_truncated,omitempty"`
		PhaseTimings     []phaseTiming `json:"phase_timings"`
		// Each command with the reply that answered it (indexes into
		// events), and where the time went (smtp.Timings, in ms).
		Exchanges []exportExchange   `json:"exchanges"`
		Timings   map[string]float64 `json:"timings_ms"`
		// The failure as data (phase, codes, kind), when the send failed.
		Failure *smtp.Failure `json:"failure,omitempty"`
	}{jsonEscaping, snd.ID, snd.CreatedAt, snd.FinishedAt, esc(snd.Server), esc(snd.TLSMode), esc(snd.MailFrom), escAll(snd.Rcpts), esc(snd.Subject),
		snd.Status, esc(snd.QueueID), esc(snd.Error), snd.DurationMS, rcpts, evs,
		esc(snd.Source), esc(snd.ClientAddr), snd.UserID, snd.ParentID, snd.MessageTruncated, phaseTimings(events), nil, nil, nil}
	v.Exchanges, v.Timings = exportExchanges(events)
	if !snd.Failure.IsZero() {
		f := snd.Failure
		f.EnhancedCode = esc(f.EnhancedCode)
		v.Failure = &f
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("handlers: encode send: %w", err)
	}
	attachment(c, fmt.Sprintf("sockmail-send-%d.json", snd.ID))
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, append(b, '\n'))
}

// messageEML downloads the message as sent.
func (h *Handler) messageEML(c echo.Context) error {
	snd, _, err := h.loadSend(c)
	if err != nil {
		return err
	}
	if len(snd.Message) == 0 {
		return echo.NewHTTPError(http.StatusNotFound, "This send kept no message.")
	}
	attachment(c, fmt.Sprintf("sockmail-send-%d.eml", snd.ID))
	return c.Blob(http.StatusOK, "message/rfc822", snd.Message)
}

// attachment makes the response a download with a plain ASCII name.
func attachment(c echo.Context, name string) {
	c.Response().Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
}
