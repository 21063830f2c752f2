package main

// The scripted SMTP server and the helpers the send tests share.

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// script is a scripted SMTP server: it answers each command by its verb
// ("EHLO", "MAIL", "RCPT", "DATA", "." for the end of the message,
// "RSET", "QUIT", "AUTH"; "RCPT addr" overrides "RCPT" for one
// recipient) with the reply given, or a default. The reply "<close>"
// closes the connection without a reply. It records every line it reads.
type script struct {
	t        *testing.T
	ln       net.Listener
	greeting string
	replies  map[string]string
	// hold, if set for a verb, is waited on before that verb is answered.
	hold map[string]chan struct{}

	mu    sync.Mutex
	lines []string
	conns int
}

// defaultReplies answer a plain ESMTP server with PIPELINING and AUTH.
func defaultReplies() map[string]string {
	return map[string]string{
		"EHLO": "250-mx.test\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME",
		"HELO": "250 mx.test",
		"MAIL": "250 2.1.0 Ok",
		"RCPT": "250 2.1.5 Ok",
		"DATA": "354 End data with <CR><LF>.<CR><LF>",
		".":    "250 2.0.0 Ok: queued as ABC123",
		"RSET": "250 2.0.0 Ok",
		"QUIT": "221 2.0.0 Bye",
		"AUTH": "235 2.7.0 Authentication successful",
	}
}

func startScript(t *testing.T, overrides map[string]string) *script {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &script{t: t, ln: ln, greeting: "220 mx.test ESMTP", replies: defaultReplies(), hold: map[string]chan struct{}{}}
	for k, v := range overrides {
		if k == "GREETING" {
			s.greeting = v
			continue
		}
		s.replies[k] = v
	}
	t.Cleanup(func() { ln.Close() })
	go s.serve()
	return s
}

func (s *script) addr() string { return s.ln.Addr().String() }

func (s *script) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		go s.session(c)
	}
}

func (s *script) session(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	say := func(reply string) bool {
		if reply == "<close>" {
			return false
		}
		_, err := c.Write([]byte(reply + "\r\n"))
		return err == nil
	}
	if !say(s.greeting) || !strings.HasPrefix(s.greeting, "220") {
		return
	}
	inData, inAuthLogin := false, 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		s.mu.Lock()
		s.lines = append(s.lines, line)
		s.mu.Unlock()
		if inData {
			if line == "." {
				inData = false
				if !say(s.reply(".", "")) {
					return
				}
			}
			continue
		}
		if inAuthLogin > 0 {
			inAuthLogin--
			reply := "334 UGFzc3dvcmQ6"
			if inAuthLogin == 0 {
				reply = s.reply("AUTH", "")
			}
			if !say(reply) {
				return
			}
			continue
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		if ch := s.hold[verb]; ch != nil {
			<-ch
		}
		reply := s.reply(verb, arg)
		switch {
		case verb == "DATA" && strings.HasPrefix(reply, "354"):
			inData = true
		case verb == "AUTH" && strings.HasPrefix(strings.ToUpper(arg), "LOGIN"):
			inAuthLogin = 2
			reply = "334 VXNlcm5hbWU6"
		}
		if !say(reply) || verb == "QUIT" {
			return
		}
	}
}

// reply finds the reply to verb with argument arg.
func (s *script) reply(verb, arg string) string {
	if verb == "RCPT" {
		addr := strings.TrimSuffix(strings.TrimPrefix(strings.SplitN(arg, ":", 2)[len(strings.SplitN(arg, ":", 2))-1], "<"), ">")
		if r, ok := s.replies["RCPT "+addr]; ok {
			return r
		}
	}
	if r, ok := s.replies[verb]; ok {
		return r
	}
	return "502 5.5.2 Error: command not recognized"
}

// received returns the lines the server read.
func (s *script) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

func (s *script) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// count returns how many received lines start with prefix.
func (s *script) count(prefix string) int {
	n := 0
	for _, l := range s.received() {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// syncBuffer is a bytes.Buffer safe for concurrent use that can be
// waited on.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // closed by the next Write, for waitFor
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.written != nil {
		close(b.written)
		b.written = nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the buffer holds s, woken by each write, and
// reports whether it does. It gives up when stop is closed (the writer
// has finished) and s is still not there.
func (b *syncBuffer) waitFor(s string, stop <-chan struct{}) bool {
	for {
		b.mu.Lock()
		if strings.Contains(b.buf.String(), s) {
			b.mu.Unlock()
			return true
		}
		if b.written == nil {
			b.written = make(chan struct{})
		}
		written := b.written
		b.mu.Unlock()
		select {
		case <-written:
		case <-stop:
			return strings.Contains(b.String(), s)
		}
	}
}

// run runs "sockmail send" with args and returns the status and output.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := runSend(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func noEnv(string) string { return "" }

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
