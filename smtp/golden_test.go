package smtp

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Golden transcripts: whole conversations rendered as text and JSON, with
// a clock that advances 1 ms a line, checked against testdata/transcript.
// They show in one place what a reader of a transcript sees: redaction,
// escaping, the body summary, info lines. Rewrite with
//
//	go test ./smtp -run TestGoldenTranscripts -update

// measuredSpan is a span's measured duration in the JSON form.
var measuredSpan = regexp.MustCompile(`"took_ms": [0-9.e-]+`)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fakeClock advances one millisecond each time it is read.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// measured matches the durations the client measures with the real clock
// ("in 0.004ms", "(0.026ms)"); they vary from run to run.
var measured = regexp.MustCompile(`\b\d+\.\d{3}ms\b`)

func TestGoldenTranscripts(t *testing.T) {
	tests := []struct {
		name   string
		server string
		cfg    func(*Config)
		env    Envelope
		msg    string
	}{
		{
			name:   "pipelined",
			server: ehloPipelining + "250 2.1.0 Ok\n250 2.1.5 Ok\n250 2.1.5 Ok\n354 End data with <CR><LF>.<CR><LF>\n250 2.0.0 Ok: queued as 4XyZ1k\n221 2.0.0 Bye\n",
			env:    Envelope{From: "a@example.org", To: []string{"b@example.net", "c@example.net"}},
			msg:    "From: a@example.org\nSubject: golden\n\nThe body is summarised.\n.dot line\n",
		},
		{
			name:   "chunking-showbody",
			server: ehloFull + "250 2.1.0 Ok\n250 2.1.5 Ok\n250 2.0.0 Ok: queued as C0FFEE\n221 2.0.0 Bye\n",
			cfg:    func(c *Config) { c.ShowBody = true },
			env:    Envelope{From: "a@example.org", To: []string{"b@example.net"}},
			msg:    "Subject: shown\n\nline one\n.dot line\n",
		},
		{
			name: "auth-login-refused-recipient",
			server: "220 mx.test ESMTP\n250-mx.test\n250-AUTH LOGIN\n250 ENHANCEDSTATUSCODES\n334 VXNlcm5hbWU6\n334 UGFzc3dvcmQ6\n235 2.7.0 ok\n" +
				"250 2.1.0 Ok\n550 5.1.1 <x@example.net>: Recipient address rejected\n250 2.1.5 Ok\n354 go\n250 2.0.0 Ok: queued as A1\n221 Bye\n",
			cfg: func(c *Config) {
				c.Auth = &Auth{Username: authUser, Password: authPass}
				c.AllowInsecureAuth = true
			},
			env: Envelope{From: "a@example.org", To: []string{"x@example.net", "b@example.net"}},
			msg: "Subject: partly\n\nx\n",
		},
		{
			name:   "hostile-server-drop-after-dot",
			server: "220 mx.test \x1b[2J\u202eESMTP\n250-mx.test\n250 PIPELINING\n250 Ok\n250 Ok\n354 go\n",
			env:    Envelope{From: "a@example.org", To: []string{"b@example.net"}},
			msg:    "Subject: lost\n\nx\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaker(tt.server)
			cfg := fakeConfig(f)
			clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			cfg.Transcript.start = clock.t
			cfg.Transcript.now = clock.now
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			_, _ = SendMail(context.Background(), cfg, tt.env, strings.NewReader(tt.msg), SendOptions{})
			var text bytes.Buffer
			if err := cfg.Transcript.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			var paired bytes.Buffer
			if err := WriteRounds(&paired, cfg.Transcript.Events()); err != nil {
				t.Fatal(err)
			}
			js, err := json.MarshalIndent(cfg.Transcript, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			// Blank the measured durations inside the lines, not the offsets.
			blank := func(text string) []byte {
				var txt []byte
				for _, line := range strings.SplitAfter(text, "\n") {
					if line == "" {
						continue
					}
					offset, rest, ok := strings.Cut(line, "] ")
					if !ok { // a round's header
						txt = append(txt, line...)
						continue
					}
					txt = append(txt, offset+"] "+measured.ReplaceAllString(rest, "N.NNNms")...)
				}
				return txt
			}
			txt := blank(text.String())
			js = measured.ReplaceAll(js, []byte("N.NNNms")) // "ms" offsets are numbers
			js = measuredSpan.ReplaceAll(js, []byte(`"took_ms": "N.NNN"`))
			for ext, got := range map[string][]byte{".txt": txt, ".paired.txt": blank(paired.String()), ".json": append(js, '\n')} {
				path := filepath.Join("testdata", "transcript", tt.name+ext)
				if *update {
					if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				// A checkout that turned LF into CRLF would make every
				// comparison fail for the wrong reason: say so.
				if bytes.Contains(want, []byte("\r")) {
					t.Fatalf("%s holds a CR: the golden file was converted to CRLF (git autocrlf?)", path)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs; got:\n%s", path, got)
				}
			}
			assertNoSecrets(t, cfg.Transcript, nil)
		})
	}
}
