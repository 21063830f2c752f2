package views

import (
	"context"
	"strings"
	"testing"
)

// TestUntrusted: escapes come in their own span, the text around them as
// it was (HTML-escaped), nothing else added.
func TestUntrusted(t *testing.T) {
	const span = `<span class="esc" title="a hidden or control character, shown escaped">`
	tests := []struct {
		name, in string
		block    bool
		want     string
	}{
		{"plain", "Grüße <b>", false, "Grüße &lt;b&gt;"},
		{"bidi", "invoice\u202efdp.exe", false, "invoice" + span + `\u202e</span>fdp.exe`},
		{"line break in a line", "a\nb", false, "a" + span + `\x0a</span>b`},
		{"block keeps lines", "a\r\nb\x07", true, "a\nb" + span + `\x07</span>`},
		{"invalid", "\xff", false, span + `\xff</span>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			c := Untrusted(tt.in)
			if tt.block {
				c = UntrustedBlock(tt.in)
			}
			if err := c.Render(context.Background(), &b); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got  %q\nwant %q", b.String(), tt.want)
			}
		})
	}
}
