package smtp

import (
	"context"
	"strings"
	"testing"
)

func TestAddressLiteral(t *testing.T) {
	tests := []struct{ name, want string }{
		{"mail.example.org", "mail.example.org"},
		{"localhost", "localhost"},
		{"192.0.2.1", "[192.0.2.1]"},
		{"::ffff:192.0.2.1", "[192.0.2.1]"},
		{"2001:db8::1", "[IPv6:2001:db8::1]"},
		{"::1", "[IPv6:::1]"},
		{"[192.0.2.1]", "[192.0.2.1]"},
		{"[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]"},
		{"fe80::1%eth0", "fe80::1%eth0"}, // a zone is no address literal; sent as given
		{"192.0.2", "192.0.2"},
	}
	for _, tt := range tests {
		if got := addressLiteral(tt.name); got != tt.want {
			t.Errorf("addressLiteral(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestIPv6Loopback: a whole send over IPv6, with an IP address as the
// HELO name, which goes out as an RFC 5321 address literal.
func TestIPv6Loopback(t *testing.T) {
	m := &miniServer{ext: []string{"PIPELINING"}}
	addr := serveOn(t, "[::1]:0", m.handle)
	if !strings.HasPrefix(addr, "[::1]:") {
		t.Fatalf("listening on %s", addr)
	}
	tr := NewTranscript()
	res, err := SendMail(context.Background(), Config{Addr: addr, LocalName: "::1", Transcript: tr},
		envelope1, strings.NewReader("over IPv6\n"), SendOptions{})
	if err != nil || StatusOf(res, err) != StatusSent {
		t.Fatalf("err %v\n%s", err, dumpTranscript(tr))
	}
	if got := m.got(); len(got) == 0 || got[0] != "EHLO [IPv6:::1]" {
		t.Errorf("server saw %q first, want EHLO [IPv6:::1]", got)
	}
	for _, want := range []string{"connected to " + addr + " from [::1]:", "sent as the address literal [IPv6:::1]"} {
		if !hasEvent(tr.Events(), DirInfo, want) {
			t.Errorf("transcript lacks %q:\n%s", want, dumpTranscript(tr))
		}
	}
}
