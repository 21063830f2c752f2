package handlers

import "testing"

// TestLocalTargetRefusesHostileTargets: every redirect target taken from
// input goes through localTarget; none of these may leave the site, and
// ordinary paths on the site pass unchanged.
func TestLocalTargetRefusesHostileTargets(t *testing.T) {
	const fallback = "/fallback"
	tests := []struct {
		target, want string
	}{
		// Kept.
		{"/compose", "/compose"},
		{"/history?q=hello%20world&page=2", "/history?q=hello%20world&page=2"},
		{"/history/3#events", "/history/3#events"},
		{"/forms/1/outbox?status=failed", "/forms/1/outbox?status=failed"},
		{"/caf%C3%A9", "/caf%C3%A9"},
		{"/next?u=//host", "/next?u=//host"}, // "//" in the query does not move the host
		// Refused.
		{"", fallback},
		{"compose", fallback},
		{"//host", fallback},
		{"//host/path", fallback},
		{"///host", fallback},
		{"/\\host", fallback},
		{"\\\\host", fallback},
		{"/\t/host", fallback},
		{"/\n/host", fallback},
		{"/\r\n/host", fallback},
		{"/%09/host", fallback},
		{"/%0a/host", fallback},
		{"/%0D%0A/host", fallback},
		{"/%2F%2Fhost", fallback},
		{"/%2f/host", fallback},
		{"/%5Chost", fallback},
		{"/%5c%5chost", fallback},
		{"/%252F%252Fhost", fallback},
		{"/%25252F%25252Fhost", fallback},
		{"/%2525252F%2525252Fhost", fallback}, // still encoded after the rounds we decode
		{"/%zz", fallback},
		{"/ host", fallback},
		{"/\x00", fallback},
		{"/\x7f", fallback},
		{"/café", fallback},
		{"https://x", fallback},
		{"http://evil.example/", fallback},
		{"javascript:alert(1)", fallback},
		{"JaVaScRiPt:alert(1)", fallback},
		{"data:text/html,x", fallback},
		{"mailto:a@b", fallback},
		{" /compose", fallback},
		{"/" + string(make([]byte, maxRedirectTarget)), fallback},
	}
	for _, tt := range tests {
		if got := localTarget(tt.target, fallback); got != tt.want {
			t.Errorf("localTarget(%q) = %q, want %q", tt.target, got, tt.want)
		}
	}
}
