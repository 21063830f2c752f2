package handlers_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"sockmail/internal/store"
	"sockmail/smtp"
)

// stallingServer is a scripted SMTP server on 127.0.0.1:0 that greets,
// answers EHLO, reads MAIL FROM and then never answers: a send to it
// hangs mid-conversation until it is cancelled. closed is closed when
// the client has hung up.
func stallingServer(t *testing.T) (addr string, closed <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		io.WriteString(conn, "220 stall.test ESMTP\r\n")
		if _, err := r.ReadString('\n'); err != nil { // EHLO
			return
		}
		io.WriteString(conn, "250-stall.test\r\n250 8BITMIME\r\n")
		_, _ = r.ReadString('\n')     // MAIL FROM: never answered
		_, _ = io.Copy(io.Discard, r) // until the client hangs up
	}()
	return ln.Addr().String(), done
}

// sseReader reads a send's server-sent events.
type sseReader struct {
	t  *testing.T
	sc *bufio.Scanner
}

// next returns the next event's name and data; "" at the end of the
// stream.
func (s *sseReader) next() (event, data string) {
	s.t.Helper()
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		case line == "" && event != "":
			return event, data
		}
	}
	return "", ""
}

// until reads events until one whose data contains want.
func (s *sseReader) until(want string) {
	s.t.Helper()
	for {
		ev, data := s.next()
		if ev == "" {
			s.t.Fatalf("stream ended before %q", want)
		}
		if strings.Contains(data, want) {
			return
		}
	}
}

func (c *client) events(path string) *sseReader {
	c.a.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.a.srv.URL+path+"/events?after=0", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		c.a.t.Fatal(err)
	}
	c.a.t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		c.a.t.Fatalf("events of %s: %d %q", path, resp.StatusCode, ct)
	}
	return &sseReader{t: c.a.t, sc: bufio.NewScanner(resp.Body)}
}

// TestCancelLiveSend cancels a real send (smtp.SendMail) that hangs at
// MAIL FROM, through the router: the live stream shows where it stopped
// and ends, the connection is closed, the status is aborted and the
// partial transcript is kept and shown. A second cancel says the send
// has ended.
func TestCancelLiveSend(t *testing.T) {
	addr, hungUp := stallingServer(t)
	host, port, _ := net.SplitHostPort(addr)
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	form := composeForm(c.csrf("/compose"))
	form.Set("server", "adhoc")
	form.Set("host", host)
	form.Set("port", port)
	form.Set("tls", "none")
	path := c.send(form)
	stream := c.events(path)
	stream.until("MAIL FROM") // the send now waits for the server's reply

	page := c.get(path)
	if page.testid(t, "cancel").Length() != 1 {
		t.Fatalf("no cancel button on the running send's page:\n%s", page.body)
	}
	tok, _ := page.testid(t, "cancel-form").Find(`input[name="_csrf"]`).Attr("value")
	r := c.post(path+"/cancel", url.Values{"_csrf": {tok}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != path {
		t.Fatalf("cancel: %d %q", r.status, r.header.Get("Location"))
	}
	stream.until("cancelled by " + adminEmail)
	for ev := "line"; ev != "done"; {
		if ev, _ = stream.next(); ev == "" {
			t.Fatal("the stream ended without its done event")
		}
	}
	if ev, _ := stream.next(); ev != "" {
		t.Errorf("the stream went on after done: %q", ev)
	}
	<-hungUp

	page = c.get(path)
	if got := strings.TrimSpace(page.testid(t, "status").Text()); got != string(smtp.StatusAborted) {
		t.Errorf("status %q, want %q", got, smtp.StatusAborted)
	}
	tr := page.testid(t, "transcript").Text()
	for _, want := range []string{"220 stall.test ESMTP", "EHLO", "MAIL FROM:<sender@example.test>", "cancelled by " + adminEmail} {
		if !strings.Contains(tr, want) {
			t.Errorf("transcript lacks %q:\n%s", want, tr)
		}
	}
	if page.testid(t, "explanation").Length() != 0 {
		t.Errorf("a cancelled send explained as a failure: %q", page.testid(t, "explanation").Text())
	}
	if phase, _ := page.doc(t).Find(`[data-testid="event"]:contains("cancelled by")`).Attr("data-phase"); phase != string(smtp.PhaseMail) {
		t.Errorf("the cancel note is in phase %q, want the phase the send stopped in (mail)", phase)
	}
	if page.testid(t, "cancel").Length() != 0 {
		t.Error("the ended send still has a cancel button")
	}
	if flash := page.testid(t, "flash").Text(); !strings.Contains(flash, "was cancelled") {
		t.Errorf("flash %q", flash)
	}

	// Cancelling again: nothing to cancel, said plainly.
	r = c.post(path+"/cancel", url.Values{"_csrf": {tok}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("second cancel: %d", r.status)
	}
	if flash := c.get(path).testid(t, "flash").Text(); !strings.Contains(flash, "already ended") {
		t.Errorf("second cancel: flash %q", flash)
	}
	// A send another instance runs cannot be cancelled from this one.
	other := &store.Send{Source: "web", Status: store.StatusRunning, CreatedAt: time.Now(), Server: "mx.example.test:25",
		MailFrom: "a@example.test", Rcpts: []string{"b@example.test"}}
	if err := a.store.CreateSend(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	otherPath := "/sends/" + strconv.FormatInt(other.ID, 10)
	if r := c.post(otherPath+"/cancel", url.Values{"_csrf": {tok}}); r.status != http.StatusSeeOther {
		t.Fatalf("cancel of a send running elsewhere: %d", r.status)
	}
	if flash := c.get(otherPath).testid(t, "flash").Text(); !strings.Contains(flash, "another sockmail instance") {
		t.Errorf("cancel of a send running elsewhere: flash %q", flash)
	}
	// Without the CSRF token the cancel is refused.
	if r := c.post(path+"/cancel", url.Values{}); r.status != http.StatusForbidden {
		t.Errorf("cancel without a CSRF token: %d", r.status)
	}
}
