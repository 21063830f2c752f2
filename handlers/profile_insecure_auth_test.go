package handlers_test

import (
	"bufio"
	"encoding/base64"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// plainAuthServer is a scripted SMTP server without TLS that offers AUTH
// PLAIN (the test Postfix offers AUTH only after STARTTLS): it accepts any
// credentials and any message, and records every command line it reads.
type plainAuthServer struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
}

func newPlainAuthServer(t *testing.T) *plainAuthServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &plainAuthServer{ln: ln}
	var wg sync.WaitGroup
	conns := make(chan net.Conn, 16)
	t.Cleanup(func() {
		ln.Close()
		close(conns)
		for c := range conns {
			c.Close()
		}
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case conns <- c:
			default:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				s.serve(c)
			}()
		}
	}()
	return s
}

func (s *plainAuthServer) addr() string { return s.ln.Addr().String() }

// commands returns the command lines read so far.
func (s *plainAuthServer) commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

func (s *plainAuthServer) serve(c net.Conn) {
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	reply := func(lines ...string) bool {
		for _, l := range lines {
			w.WriteString(l + "\r\n")
		}
		return w.Flush() == nil
	}
	if !reply("220 scripted.test ESMTP") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		s.mu.Lock()
		s.lines = append(s.lines, line)
		s.mu.Unlock()
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		var ok bool
		switch verb {
		case "EHLO":
			ok = reply("250-scripted.test", "250-AUTH PLAIN LOGIN", "250 8BITMIME")
		case "AUTH":
			ok = reply("235 2.7.0 Authentication successful")
		case "DATA":
			if !reply("354 End data with <CR><LF>.<CR><LF>") {
				return
			}
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			ok = reply("250 2.0.0 Ok: queued as S1")
		case "QUIT":
			reply("221 2.0.0 Bye")
			return
		default:
			ok = reply("250 2.0.0 Ok")
		}
		if !ok {
			return
		}
	}
}

// TestProfileAllowsAuthWithoutTLS: a profile with "Allow AUTH without TLS"
// authenticates over plain text (the server gets the PLAIN credentials);
// the list and the edit page show the option; once it is unticked the same
// send is refused before any credential is written, and the explanation
// names the option and where it is.
func TestProfileAllowsAuthWithoutTLS(t *testing.T) {
	srv := newPlainAuthServer(t)
	onBothBackends(t, func(t *testing.T, backend string) {
		a := newApp(t, appOptions{backend: backend})
		c := a.client()
		c.signUp()
		const user, password = "lab-user", "lab-Pa55word"
		form := profileValues(c.csrf("/profiles/new"), "lab", srv.addr(), user, password)
		form.Set("tls", "none")
		form.Del("verify")
		form.Set("allow_insecure_auth", "on")
		c.saveProfile("/profiles", form)
		p := a.profileByName("lab")
		if !p.AllowInsecureAuth {
			t.Fatal("the option was not stored")
		}
		list := c.get("/profiles")
		if w := list.testid(t, "profile-insecure-auth"); w.Length() != 1 || !strings.Contains(w.Text(), "in clear") {
			t.Errorf("the list does not show the option: %q", list.testid(t, "profile").Text())
		}
		edit := "/profiles/" + strconv.FormatInt(p.ID, 10)
		page := c.get(edit)
		if _, ok := page.testid(t, "input-allow_insecure_auth").Attr("checked"); !ok {
			t.Error("the edit page does not show the option ticked")
		}
		if !strings.Contains(page.testid(t, "insecure-auth-warning").Text(), "cross the network in clear") {
			t.Error("no warning beside the option")
		}

		tests := []struct {
			name     string
			allow    bool
			status   string
			wantAuth bool
		}{
			{"allowed", true, "sent", true},
			{"not allowed", false, "permanent failure", false},
		}
		for _, tt := range tests {
			form := profileValues(c.csrf(edit), "lab", srv.addr(), user, "")
			form.Set("tls", "none")
			form.Del("verify")
			if tt.allow {
				form.Set("allow_insecure_auth", "on")
			}
			c.saveProfile(edit, form)
			if got := a.profileByName("lab").AllowInsecureAuth; got != tt.allow {
				t.Fatalf("%s: stored %v", tt.name, got)
			}
			before := len(srv.commands())
			r := c.sendThrough(p.ID, "ann@example.test", "bob@example.test")
			if got := statusOf(t, r); got != tt.status {
				t.Fatalf("%s: status %q, want %q\n%s", tt.name, got, tt.status, r.testid(t, "transcript").Text())
			}
			var auth []string
			for _, l := range srv.commands()[before:] {
				if strings.HasPrefix(l, "AUTH") {
					auth = append(auth, l)
				}
			}
			want := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password))
			switch {
			case tt.wantAuth && (len(auth) != 1 || auth[0] != want):
				t.Errorf("%s: the server got %q, want %q", tt.name, auth, want)
			case !tt.wantAuth && len(auth) != 0:
				t.Errorf("%s: credentials were sent without TLS: %q", tt.name, auth)
			}
			transcript := r.testid(t, "transcript").Text()
			if strings.Contains(r.body, password) {
				t.Errorf("%s: the page shows the password", tt.name)
			}
			if tt.allow && !strings.Contains(transcript, "WITHOUT TLS") {
				t.Errorf("%s: the transcript does not say the credentials went without TLS", tt.name)
			}
			if !tt.allow {
				ex := r.testid(t, "explanation").Text()
				for _, s := range []string{"Server profiles", `"Allow AUTH without TLS"`, "edit the profile"} {
					if !strings.Contains(ex, s) {
						t.Errorf("%s: the explanation does not say %q: %s", tt.name, s, ex)
					}
				}
			}
		}
	})
}
