package benchsink

import (
	"net/smtp"
	"strings"
	"testing"
)

// sendOne sends one message with net/smtp and returns the extensions the
// server offered.
func sendOne(t *testing.T, addr string) map[string]bool {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		t.Fatal(err)
	}
	ext := map[string]bool{}
	for _, k := range []string{"PIPELINING", "CHUNKING", "8BITMIME"} {
		ext[k], _ = c.Extension(k)
	}
	if err := c.Mail("a@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.org"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("Subject: x\r\n\r\n" + strings.Repeat("body\r\n", 1000))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	return ext
}

func TestSinks(t *testing.T) {
	tests := []struct {
		name                 string
		start                func(testing.TB) string
		pipelining, chunking bool
	}{
		{"smtp-sink", func(tb testing.TB) string { return SMTPSink(tb) }, true, false},
		{"smtp-sink -p", func(tb testing.TB) string { return SMTPSink(tb, "-p") }, false, false},
		{"go-smtp", GoSMTP, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ext := sendOne(t, tc.start(t))
			if ext["PIPELINING"] != tc.pipelining || ext["CHUNKING"] != tc.chunking {
				t.Errorf("extensions %v, want PIPELINING %v CHUNKING %v", ext, tc.pipelining, tc.chunking)
			}
		})
	}
}

// TestGoSMTPImmediateCleanup stops the go-smtp sink right after starting
// it, before its goroutine may have reached Serve: the cleanup must not
// hang (it did when only Server.Close was called).
func TestGoSMTPImmediateCleanup(t *testing.T) {
	for i := 0; i < 200; i++ {
		t.Run("", func(t *testing.T) { GoSMTP(t) })
	}
}
