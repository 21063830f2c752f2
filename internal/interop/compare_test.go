package interop

import (
	"strings"
	"testing"
)

// TestCompare: a stored copy passes only when it is the sent message after
// the server's own trace fields, LF line ends accepted only when asked.
func TestCompare(t *testing.T) {
	sent := "Subject: x\r\n\r\n.dot\r\nbody\r\n"
	trace := []string{"Received", "X-Sink-Rcpt-To"}
	tests := []struct {
		name   string
		stored string
		lf     bool
		want   string // substring of the error; "" for none
	}{
		{"exact", sent, false, ""},
		{"after trace fields", "Received: from a\r\n\tby b\r\nX-Sink-Rcpt-To: <a@b>\r\n" + sent, false, ""},
		{"LF store", "Received: x\n" + strings.ReplaceAll(sent, "\r\n", "\n"), true, ""},
		{"LF where CRLF is due", strings.ReplaceAll(sent, "\r\n", "\n"), false, "first line"},
		{"untraced field added", "X-Added: 1\r\n" + sent, false, `"X-Added: 1\r\n" before the message`},
		{"dot unstuffed twice", "Subject: x\r\n\r\ndot\r\nbody\r\n", false, "differs from the sent message at byte 14"},
		{"truncated", "Subject: x\r\n\r\n.dot\r\n", false, "stored has 20"},
		{"longer", sent + "more\r\n", false, "differs"},
		{"missing", "Subject: y\r\n", false, "not in the stored copy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Compare([]byte(tt.stored), []byte(sent), trace, tt.lf)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Compare: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Compare passed; want an error with %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Compare: %v\nwant an error with %q", err, tt.want)
			}
		})
	}
}
