package handlers_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"sockmail/internal/testenv"
)

// TestPipelinedSendToPostfixPairsEveryCommand sends to the test Postfix
// (PIPELINING and CHUNKING, no TLS), one recipient of three refused
// (relaying), and checks the result page round by round: every command
// shows exactly once, with its own reply beside it, the envelope and the
// message go in one write, and the exports and the history list follow.
func TestPipelinedSendToPostfixPairsEveryCommand(t *testing.T) {
	pf := testenv.Postfix(t)
	host, port := splitHostPort(t, pf.SMTPAddr)
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	form := composeForm(c.csrf("/compose"))
	subject := "paired " + testenv.UniqueToken()
	form.Set("server", "adhoc")
	form.Set("host", host)
	form.Set("port", port)
	form.Set("tls", "none")
	form.Del("verify")
	form.Set("from", "sender@"+pf.Domain)
	form.Set("to", "one@"+pf.Domain+", elsewhere@relay.invalid, two@"+pf.Domain)
	form.Set("subject", subject)
	path := c.send(form)
	r := c.waitDone(path)
	if got := strings.TrimSpace(r.testid(t, "status").Text()); got != "partly sent" {
		t.Errorf("status %q, want partly sent", got)
	}

	// Every client line that is a command shows once, in an exchange,
	// with the reply that answered it.
	type pair struct{ cmd, reply string }
	var pairs []pair
	seen := map[string]int{}
	r.testid(t, "exchange").Each(func(_ int, x *goquery.Selection) {
		cmd := strings.TrimSpace(x.Find(`.x-client > ol [data-testid="event-line"]`).Text())
		reply := x.Find(`.x-server [data-testid="event-line"]`).Last().Text()
		pairs = append(pairs, pair{cmd, reply})
		seen[cmd]++
	})
	want := []struct{ cmd, reply *regexp.Regexp }{
		{regexp.MustCompile(`^$`), regexp.MustCompile(`^220 `)},
		{regexp.MustCompile(`^EHLO `), regexp.MustCompile(`^250 `)},
		{regexp.MustCompile(`^MAIL FROM:<sender@`), regexp.MustCompile(`^250 2\.1\.0`)},
		{regexp.MustCompile(`^RCPT TO:<one@`), regexp.MustCompile(`^250 2\.1\.5`)},
		{regexp.MustCompile(`^RCPT TO:<elsewhere@relay\.invalid>`), regexp.MustCompile(`^554 5\.7\.1 `)},
		{regexp.MustCompile(`^RCPT TO:<two@`), regexp.MustCompile(`^250 2\.1\.5`)},
		{regexp.MustCompile(`^BDAT \d+ LAST$`), regexp.MustCompile(`^250 2\.0\.0 Ok: .*queued as `)},
		{regexp.MustCompile(`^QUIT$`), regexp.MustCompile(`^221 `)},
	}
	if len(pairs) != len(want) {
		t.Fatalf("%d exchanges, want %d: %q\n%s", len(pairs), len(want), pairs, r.testid(t, "transcript").Text())
	}
	for i, w := range want {
		if !w.cmd.MatchString(pairs[i].cmd) || !w.reply.MatchString(pairs[i].reply) {
			t.Errorf("exchange %d: %q => %q, want %v => %v", i, pairs[i].cmd, pairs[i].reply, w.cmd, w.reply)
		}
	}
	for cmd, n := range seen {
		if n != 1 && cmd != "" {
			t.Errorf("%q shown %d times", cmd, n)
		}
	}
	// Each line of the transcript shows once.
	indexes := map[string]bool{}
	r.testid(t, "event").Each(func(_ int, s *goquery.Selection) {
		i, _ := s.Attr("data-index")
		if indexes[i] {
			t.Errorf("line %s shown twice", i)
		}
		indexes[i] = true
	})
	// MAIL, the three RCPT, BDAT with the message and QUIT went in one
	// write: two waits in all after the greeting (EHLO, then this one).
	var envelope *goquery.Selection
	r.testid(t, "round").Each(func(_ int, s *goquery.Selection) {
		if strings.Contains(s.Find(".round-what").Text(), "in one write") {
			envelope = s
		}
	})
	if envelope == nil || envelope.Find(`[data-testid="exchange"]`).Length() != 6 ||
		!strings.Contains(envelope.Find(".round-what").Text(), "MAIL, 3 × RCPT, BDAT, QUIT in one write") || r.testid(t, "round").Length() != 3 {
		t.Errorf("no round with the envelope and the message in one write:\n%s", r.testid(t, "transcript").Text())
	}
	if r.testid(t, "timing-summary").Length() != 1 || r.testid(t, "timing-part").Length() < 4 {
		t.Errorf("timing summary: %q", r.testid(t, "timing-summary").Text())
	}

	// The text export pairs the same way: each pipelined command is
	// followed by its own reply.
	txt := c.get(path + "/transcript.txt").body
	if !regexp.MustCompile(`-> RCPT TO:<elsewhere@relay\.invalid>\n\[[ 0-9.]+ms\] <- 554 5\.7\.1 `).MatchString(txt) ||
		!strings.Contains(txt, "== round 1: before the first command") || !strings.Contains(txt, "== timings: ") {
		t.Errorf("transcript.txt not paired:\n%s", txt)
	}
	var doc struct {
		Events []struct {
			Line string `json:"line"`
		} `json:"events"`
		Exchanges []struct {
			Command int     `json:"command"`
			Reply   []int   `json:"reply"`
			Code    int     `json:"code"`
			WaitMS  float64 `json:"wait_ms"`
		} `json:"exchanges"`
		Timings map[string]float64 `json:"timings_ms"`
	}
	if err := json.Unmarshal([]byte(c.get(path+"/transcript.json").body), &doc); err != nil {
		t.Fatal(err)
	}
	var refused bool
	for _, x := range doc.Exchanges {
		if x.Command >= 0 && strings.HasPrefix(doc.Events[x.Command].Line, "RCPT TO:<elsewhere@") {
			refused = x.Code == 554 && len(x.Reply) == 1 && strings.HasPrefix(doc.Events[x.Reply[0]].Line, "554 ") && x.WaitMS > 0
		}
	}
	if !refused || len(doc.Exchanges) != len(want) || doc.Timings["total"] <= 0 {
		t.Errorf("JSON exchanges %+v timings %v", doc.Exchanges, doc.Timings)
	}

	// The history list draws the stored timings as a bar on this row.
	list := c.get("/history")
	if list.doc(t).Find(`[data-testid="history-row"] [data-testid="timing-mini"]`).Length() != 1 {
		t.Errorf("no timing bar on the history row:\n%s", list.testid(t, "history-list").Text())
	}
}
