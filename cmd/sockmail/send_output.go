package main

// The output of "sockmail send": the outcome lines and the JSON document.
// The transcript itself is printed live by run.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"sockmail/smtp"
)

// outcomeLine describes one message in one line, for example
// "message 1/1: sent; queue id 4Xyz; accepted: a@example.org (250 2.1.5 Ok)".
// Server text is made safe to print.
func outcomeLine(o outcome, count int, stopAfter smtp.Phase) string {
	var b strings.Builder
	fmt.Fprintf(&b, "message %d/%d: ", o.n, count)
	st := smtp.StatusOf(o.result, o.err)
	switch {
	case o.err != nil:
		var e *smtp.Error
		phase := ""
		if errors.As(o.err, &e) {
			phase = " in " + string(e.Phase)
		}
		fmt.Fprintf(&b, "%s%s: %s", st, phase, smtp.SafeText(o.err.Error()))
	case st == smtp.StatusStopped && stopAfter != "":
		fmt.Fprintf(&b, "stopped after %s, as asked", stopAfter)
	default:
		b.WriteString(string(st))
		if r := o.result; r != nil && r.Final != nil {
			fmt.Fprintf(&b, " (%d %s)", r.Final.Code, smtp.SafeText(oneLine(r.Final.Text())))
		}
	}
	r := o.result
	if r == nil {
		return b.String()
	}
	if r.QueueID != "" {
		fmt.Fprintf(&b, "; queue id %s", smtp.SafeText(r.QueueID))
	}
	var acc, ref []string
	for _, rc := range r.Recipients {
		s := fmt.Sprintf("%s (%d %s)", smtp.SafeText(rc.Address), rc.Code, smtp.SafeText(oneLine(rc.Message)))
		if rc.Accepted {
			acc = append(acc, s)
		} else {
			ref = append(ref, s)
		}
	}
	if len(acc) > 0 {
		fmt.Fprintf(&b, "; accepted: %s", strings.Join(acc, ", "))
	}
	if len(ref) > 0 {
		fmt.Fprintf(&b, "; refused: %s", strings.Join(ref, ", "))
	}
	return b.String()
}

// oneLine joins the lines of a reply text.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " / ") }

// jsonError is an error in the JSON output.
type jsonError struct {
	Phase          smtp.Phase `json:"phase,omitempty"`
	Code           int        `json:"code,omitempty"`
	EnhancedCode   string     `json:"enhanced_code,omitempty"`
	Message        string     `json:"message"`
	Temporary      bool       `json:"temporary"`
	OutcomeUnknown bool       `json:"outcome_unknown,omitempty"`
}

// jsonMessage is one message in the JSON output.
type jsonMessage struct {
	N          int                    `json:"n"`
	Status     smtp.Status            `json:"status"`
	QueueID    string                 `json:"queue_id,omitempty"`
	FinalCode  int                    `json:"final_code,omitempty"`
	FinalText  string                 `json:"final_text,omitempty"`
	Recipients []smtp.RecipientResult `json:"recipients"`
	Error      *jsonError             `json:"error,omitempty"`
}

// writeJSON prints the whole run as one JSON document.
func writeJSON(w io.Writer, server string, tr *smtp.Transcript, outs []outcome, count, code int) error {
	doc := struct {
		Server     string           `json:"server,omitempty"`
		Count      int              `json:"count"`
		ExitCode   int              `json:"exit_code"`
		Messages   []jsonMessage    `json:"messages"`
		Transcript *smtp.Transcript `json:"transcript"`
	}{Server: server, Count: count, ExitCode: code, Messages: []jsonMessage{}, Transcript: tr}
	for _, o := range outs {
		m := jsonMessage{N: o.n, Status: smtp.StatusOf(o.result, o.err), Recipients: []smtp.RecipientResult{}}
		if r := o.result; r != nil {
			m.QueueID = r.QueueID
			if r.Recipients != nil {
				m.Recipients = r.Recipients
			}
			if r.Final != nil {
				m.FinalCode, m.FinalText = r.Final.Code, r.Final.Text()
			}
			if doc.Server == "" {
				doc.Server = r.Server
			}
		}
		if o.err != nil {
			je := &jsonError{Message: o.err.Error()}
			var e *smtp.Error
			if errors.As(o.err, &e) {
				je.Phase, je.Code, je.EnhancedCode = e.Phase, e.Code, e.EnhancedCode
				je.Temporary, je.OutcomeUnknown = e.Temporary(), e.OutcomeUnknown
			}
			m.Error = je
		}
		doc.Messages = append(doc.Messages, m)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("send: write JSON: %w", err)
	}
	return nil
}

// lockedWriter serialises writes from the transcript subscriber and the
// outcome lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
