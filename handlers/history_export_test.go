package handlers_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"sockmail/internal/safetext"
	"sockmail/internal/store"
	"sockmail/smtp"
)

// TestHistoryJSONExportKeepsBytes: the JSON export keeps invalid UTF-8
// and backslashes escaped (\xHH as the text export shows them, \\ for a
// backslash), never replaced with U+FFFD, and unescaping gives back the
// stored bytes exactly. Both backends.
func TestHistoryJSONExportKeepsBytes(t *testing.T) {
	onBothBackends(t, func(t *testing.T, backend string) {
		a := newHistoryApp(t, historyOptions{backend: backend})
		c := a.client()
		c.signUp()
		hostile := "x\x00y\xff\xfe\x1b[31m\u202eevil C:\\dir \\xff"
		events := hostileEvents()
		events = append(events, smtp.Event{Dir: smtp.DirServer, Phase: smtp.PhaseQuit, Line: "221 " + hostile})
		snd := a.seedSend(store.Send{
			Subject: "subject " + hostile, Server: "mx.example.org:25", Error: "550 " + hostile,
			Status: smtp.StatusPermFail, Events: events,
			Recipients: []smtp.RecipientResult{{Address: "rcpt@example.test", Code: 550, Message: "no " + hostile}},
		})
		r := c.get("/sends/" + strconv.FormatInt(snd.ID, 10) + "/transcript.json")
		if r.status != http.StatusOK {
			t.Fatalf("status %d", r.status)
		}
		if strings.Contains(r.body, "\ufffd") || strings.Contains(r.body, `\ufffd`) {
			t.Error("the JSON export replaced invalid bytes with U+FFFD")
		}
		var v struct {
			Escaping string `json:"escaping"`
			Subject  string `json:"subject"`
			Error    string `json:"error"`
			Events   []struct {
				Line string `json:"line"`
			} `json:"events"`
			Recipients []smtp.RecipientResult `json:"recipients"`
		}
		if err := json.Unmarshal([]byte(r.body), &v); err != nil {
			t.Fatal(err)
		}
		if v.Escaping != "bytes-v1" || len(v.Events) != len(events) || len(v.Recipients) != 1 {
			t.Fatalf("export %+v", v)
		}
		pairs := [][2]string{{v.Subject, snd.Subject}, {v.Error, snd.Error}, {v.Recipients[0].Message, "no " + hostile}}
		for i, ev := range v.Events {
			pairs = append(pairs, [2]string{ev.Line, events[i].Line})
		}
		for _, p := range pairs {
			back, err := safetext.UnescapeBytes(p[0])
			if err != nil || back != p[1] {
				t.Errorf("exported %q unescapes to %q (%v), want %q", p[0], back, err, p[1])
			}
		}
		if !strings.Contains(v.Subject, `\xff\xfe`) || !strings.Contains(v.Subject, `C:\\dir \\xff`) {
			t.Errorf("subject exported as %q", v.Subject)
		}
		// The text export shows the same bytes the same way.
		txt := c.get("/sends/" + strconv.FormatInt(snd.ID, 10) + "/transcript.txt")
		if !strings.Contains(txt.body, `221 x\x00y\xff\xfe`) {
			t.Errorf("text export lacks the escaped bytes:\n%s", txt.body)
		}
	})
}
