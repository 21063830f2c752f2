package main

// Tests of running "sockmail send" against a scripted server: exit
// statuses, the live transcript, --count, the output forms.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	"sockmail/smtp"
)

// TestExitStatusPerPhase runs a send against a server scripted to fail at
// each phase in turn and checks the status and the outcome line.
func TestExitStatusPerPhase(t *testing.T) {
	tests := []struct {
		name     string
		replies  map[string]string
		extra    []string
		want     int
		outcome  string // in the last stdout line
		notSent  string // a command the server must not have seen
		mustSend string // a command the server must have seen
	}{
		{"sent", nil, nil, exitOK, "message 1/1: sent (250 2.0.0 Ok: queued as ABC123); queue id ABC123; accepted: b@example.org (250 2.1.5 Ok)", "", "QUIT"},
		{"greeting refused", map[string]string{"GREETING": "554 5.3.2 go away"}, nil, exitGreeting, "permanent failure in greeting", "EHLO", ""},
		{"greeting 421", map[string]string{"GREETING": "421 4.3.2 busy"}, nil, exitGreeting, "temporary failure in greeting", "EHLO", ""},
		{"ehlo refused", map[string]string{"EHLO": "550 no"}, nil, exitEHLO, "in ehlo", "MAIL", ""},
		{"starttls required but not offered", nil, []string{"--tls", "starttls"}, exitStartTLS, "in starttls", "MAIL", ""},
		{"auth refused", map[string]string{"AUTH": "535 5.7.8 Authentication failed"}, []string{"--tls", "none", "--allow-insecure-auth", "--auth-user", "u", "--auth-password", "p"}, exitAuth, "in auth", "MAIL", ""},
		{"mail refused", map[string]string{"MAIL": "550 5.7.1 sender rejected"}, nil, exitMail, "in mail", "", ""},
		{"every rcpt refused", map[string]string{"RCPT": "550 5.1.1 no such user"}, nil, exitRcpt, "refused: b@example.org (550 5.1.1 no such user)", "", ""},
		{"some rcpt refused", map[string]string{"RCPT c@example.org": "550 5.1.1 no such user"}, []string{"--to", "c@example.org"}, exitPartial, "partly sent (250 2.0.0 Ok: queued as ABC123); queue id ABC123; accepted: b@example.org (250 2.1.5 Ok); refused: c@example.org (550 5.1.1 no such user)", "", "QUIT"},
		{"data refused", map[string]string{"DATA": "554 5.5.1 no valid recipients"}, nil, exitData, "in data", "", ""},
		{"message refused", map[string]string{".": "554 5.7.1 spam"}, nil, exitData, "permanent failure in body", "", ""},
		{"message deferred", map[string]string{".": "451 4.3.0 try later"}, nil, exitData, "temporary failure in body", "", ""},
		{"connection lost after the message", map[string]string{".": "<close>"}, nil, exitUnknown, "unknown outcome", "", ""},
		{"quit after ehlo", nil, []string{"--quit-after", "ehlo"}, exitOK, "message 1/1: stopped after ehlo, as asked", "MAIL", "QUIT"},
		{"quit after rcpt", nil, []string{"--quit-after", "rcpt"}, exitOK, "stopped after rcpt, as asked; accepted: b@example.org", "DATA", "RSET"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startScript(t, tc.replies)
			args := append([]string{"--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org", "--timeout", "5s"}, tc.extra...)
			code, stdout, stderr := run(t, args...)
			if code != tc.want {
				t.Errorf("status %d, want %d\nstdout:\n%s\nstderr: %s", code, tc.want, stdout, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if last := lines[len(lines)-1]; !strings.Contains(last, tc.outcome) {
				t.Errorf("outcome line %q lacks %q", last, tc.outcome)
			}
			// Where the time went, from the same Timings as the web page.
			if len(lines) < 2 || !strings.HasPrefix(lines[len(lines)-2], "== timings: ") || !strings.Contains(lines[len(lines)-2], "greeting wait ") {
				t.Errorf("no timings line before the outcome:\n%s", stdout)
			}
			if tc.notSent != "" && srv.count(tc.notSent) > 0 {
				t.Errorf("server saw %s: %q", tc.notSent, srv.received())
			}
			if tc.mustSend != "" && srv.count(tc.mustSend) == 0 {
				t.Errorf("server did not see %s: %q", tc.mustSend, srv.received())
			}
		})
	}
}

func TestConnectFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, stdout, _ := run(t, "--server", addr, "--from", "a@example.org", "--to", "b@example.org", "--timeout", "2s")
	if code != exitConnect {
		t.Fatalf("status %d, want %d\n%s", code, exitConnect, stdout)
	}
	if !strings.Contains(stdout, "== connect to "+addr+" failed") || !strings.Contains(stdout, "in connect") {
		t.Errorf("output lacks the connect failure:\n%s", stdout)
	}
}

// TestInterrupted cancels the send while the server holds its reply to
// MAIL FROM.
func TestInterrupted(t *testing.T) {
	srv := startScript(t, nil)
	release := make(chan struct{})
	srv.hold["MAIL"] = release
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	var code int
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		code = runSend(ctx, []string{"--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org"}, &stdout, &stderr)
	}()
	stdout.waitFor("-> MAIL FROM:", finished)
	cancel()
	<-finished
	if code != exitInterrupted {
		t.Fatalf("status %d, want %d\n%s", code, exitInterrupted, stdout.String())
	}
}

// TestTranscriptIsLive holds the server's reply to MAIL and checks that
// the lines so far are already printed.
func TestTranscriptIsLive(t *testing.T) {
	srv := startScript(t, map[string]string{"EHLO": "250-mx.test\r\n250 8BITMIME"}) // no PIPELINING: MAIL goes alone
	release := make(chan struct{})
	srv.hold["MAIL"] = release
	var stdout, stderr syncBuffer
	var code int
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		code = runSend(context.Background(), []string{"--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org"}, &stdout, &stderr)
	}()
	// The send cannot end while the server holds its reply to MAIL, unless
	// it gives up waiting (--timeout, 30s by default): the line is printed
	// before that, or never.
	if !stdout.waitFor("-> MAIL FROM:<a@example.org>", finished) {
		close(release)
		t.Fatalf("MAIL FROM not printed while the server holds its reply:\n%s", stdout.String())
	}
	if strings.Contains(stdout.String(), "message 1/1") {
		t.Fatal("outcome printed before the send ended")
	}
	close(release)
	<-finished
	if code != 0 {
		t.Fatalf("status %d\n%s", code, stdout.String())
	}
	out := stdout.String()
	for _, want := range []string{"<- 220 mx.test ESMTP", "-> EHLO [127.0.0.1]", "<- 250 2.1.0 Ok", "-> DATA", "-> Subject: sockmail test", "<- 221 2.0.0 Bye", "message 1/1: sent"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestQuietAndShowBody(t *testing.T) {
	srv := startScript(t, nil)
	args := []string{"--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org", "--body", "secret body line"}
	_, stdout, _ := run(t, append(args, "--quiet")...)
	if lines := strings.Split(strings.TrimSpace(stdout), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "message 1/1: sent") {
		t.Errorf("--quiet printed:\n%s", stdout)
	}
	_, stdout, _ = run(t, args...)
	if strings.Contains(stdout, "secret body line") || !strings.Contains(stdout, "the body is not shown") {
		t.Errorf("body shown without --show-body:\n%s", stdout)
	}
	_, stdout, _ = run(t, append(args, "--show-body")...)
	if !strings.Contains(stdout, "-> secret body line") {
		t.Errorf("--show-body did not show the body:\n%s", stdout)
	}
}

func TestCountOverOneConnection(t *testing.T) {
	srv := startScript(t, nil)
	code, stdout, _ := run(t, "--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org", "--count", "3")
	if code != 0 {
		t.Fatalf("status %d\n%s", code, stdout)
	}
	if n := srv.connections(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	if n := srv.count("MAIL FROM"); n != 3 {
		t.Errorf("%d MAIL commands, want 3", n)
	}
	if n := srv.count("QUIT"); n != 1 {
		t.Errorf("%d QUIT commands, want 1", n)
	}
	for i := 1; i <= 3; i++ {
		if want := "message " + string(rune('0'+i)) + "/3: sent"; !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(stdout, "[3/3]") {
		t.Errorf("message subjects are not numbered:\n%s", stdout)
	}
	// Pipelined: the second envelope went before the reply to the end of
	// the first message.
	endOfFirst, secondMail, firstFinal := -1, -1, -1
	mails := 0
	for i, l := range strings.Split(stdout, "\n") {
		switch {
		case endOfFirst < 0 && strings.HasSuffix(l, "-> ."):
			endOfFirst = i
		case strings.Contains(l, "-> MAIL FROM:"):
			if mails++; mails == 2 {
				secondMail = i
			}
		case endOfFirst >= 0 && firstFinal < 0 && strings.Contains(l, "<- 250"):
			firstFinal = i
		}
	}
	if secondMail < 0 || firstFinal < 0 || secondMail > firstFinal {
		t.Errorf("second MAIL at line %d, reply to the first message at line %d: not pipelined\n%s", secondMail, firstFinal, stdout)
	}
}

// TestCountEachMessageItsOwnOutcome: with --count the messages go
// pipelined over one connection, each refusal is that message's, and the
// status is that of the first failure.
func TestCountEachMessageItsOwnOutcome(t *testing.T) {
	srv := startScript(t, map[string]string{".": "554 5.7.1 refused"})
	code, stdout, _ := run(t, "--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org", "--count", "3")
	if code != exitData {
		t.Fatalf("status %d, want %d\n%s", code, exitData, stdout)
	}
	for i := 1; i <= 3; i++ {
		if want := fmt.Sprintf("message %d/3: permanent failure in body: smtp: body: 554 5.7.1 refused", i); !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if srv.connections() != 1 || srv.count("MAIL FROM") != 3 || srv.count("QUIT") != 1 {
		t.Errorf("%d connections, %d MAIL, %d QUIT; want 1, 3, 1: %q", srv.connections(), srv.count("MAIL FROM"), srv.count("QUIT"), srv.received())
	}
}

func TestJSONOutput(t *testing.T) {
	srv := startScript(t, map[string]string{"RCPT c@example.org": "550 5.1.1 no such user"})
	code, stdout, _ := run(t, "--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org,c@example.org", "--json")
	if code != exitPartial {
		t.Fatalf("status %d\n%s", code, stdout)
	}
	var doc struct {
		Server   string `json:"server"`
		ExitCode int    `json:"exit_code"`
		Messages []struct {
			Status     string `json:"status"`
			QueueID    string `json:"queue_id"`
			FinalCode  int    `json:"final_code"`
			Recipients []struct {
				Address  string `json:"address"`
				Accepted bool   `json:"accepted"`
				Code     int    `json:"code"`
			} `json:"recipients"`
		} `json:"messages"`
		Transcript struct {
			Events []struct {
				Dir  string  `json:"dir"`
				Line string  `json:"line"`
				MS   float64 `json:"ms"`
			} `json:"events"`
		} `json:"transcript"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, stdout)
	}
	if doc.Server != srv.addr() || doc.ExitCode != exitPartial || len(doc.Messages) != 1 {
		t.Fatalf("doc %+v", doc)
	}
	m := doc.Messages[0]
	if m.Status != string(smtp.StatusPartial) || m.QueueID != "ABC123" || m.FinalCode != 250 || len(m.Recipients) != 2 || m.Recipients[1].Accepted || m.Recipients[1].Code != 550 {
		t.Errorf("message %+v", m)
	}
	if len(doc.Transcript.Events) < 10 || doc.Transcript.Events[0].Dir != "info" {
		t.Errorf("transcript %+v", doc.Transcript.Events)
	}
}

// TestPasswordNeverPrinted authenticates with each mechanism that sends
// the password and looks for it, and its base64 forms, in all output.
func TestPasswordNeverPrinted(t *testing.T) {
	const user, password = "tester@example.test", "s3cret-Pa55"
	forbidden := []string{
		password,
		base64.StdEncoding.EncodeToString([]byte(password)),
		base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password)),
	}
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		for _, mode := range []string{"text", "json"} {
			t.Run(mech+"/"+mode, func(t *testing.T) {
				srv := startScript(t, nil)
				t.Setenv(passwordEnv, password)
				args := []string{"--server", srv.addr(), "--tls", "none", "--allow-insecure-auth", "--auth-user", user, "--auth-mech", mech, "--from", "a@example.org", "--to", "b@example.org"}
				if mode == "json" {
					args = append(args, "--json")
				}
				code, stdout, stderr := run(t, args...)
				if code != 0 {
					t.Fatalf("status %d\n%s%s", code, stdout, stderr)
				}
				if !strings.Contains(stdout, "********") {
					t.Errorf("no redacted AUTH line:\n%s", stdout)
				}
				// The server did get the credentials.
				var seen bool
				for _, l := range srv.received() {
					for _, f := range forbidden[1:] {
						seen = seen || strings.Contains(l, f)
					}
				}
				if !seen {
					t.Errorf("server never received the credentials: %q", srv.received())
				}
				for _, f := range forbidden {
					if strings.Contains(stdout+stderr, f) {
						t.Errorf("output contains %q:\n%s", f, stdout)
					}
				}
			})
		}
	}
}

// TestHostileServerTextIsEscaped checks that control characters in the
// server's replies cannot reach the terminal raw.
func TestHostileServerTextIsEscaped(t *testing.T) {
	srv := startScript(t, map[string]string{"RCPT": "550 5.1.1 \x1b[2J\x1b]0;owned\x07 gone"})
	_, stdout, _ := run(t, "--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org")
	if strings.ContainsAny(stdout, "\x1b\x07") {
		t.Fatalf("raw control characters printed: %q", stdout)
	}
	if !strings.Contains(stdout, `\x1b[2J`) {
		t.Errorf("escaped text missing: %q", stdout)
	}
}
