package webform

import "testing"

// TestProfileConnections: the profile form's connection limit is empty
// (the default) or 1 to 64.
func TestProfileConnections(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		invalid bool
	}{
		{in: "", want: 0},
		{in: "1", want: 1},
		{in: "64", want: 64},
		{in: "0", invalid: true},
		{in: "65", invalid: true},
		{in: "-2", invalid: true},
		{in: "four", invalid: true},
	}
	for _, tt := range tests {
		p := &Profile{Name: "relay", Server: Server{Host: "smtp.example.org", Port: "587", TLS: "starttls", AuthMech: "auto", Username: "u"}, Connections: tt.in}
		errs := p.Validate()
		if got := errs["connections"] != ""; got != tt.invalid {
			t.Errorf("%q: error %q, want invalid %v", tt.in, errs["connections"], tt.invalid)
		}
		if !tt.invalid && p.MaxConnections() != tt.want {
			t.Errorf("%q: MaxConnections %d, want %d", tt.in, p.MaxConnections(), tt.want)
		}
	}
}
