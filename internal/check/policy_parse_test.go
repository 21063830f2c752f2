package check

import (
	"slices"
	"strings"
	"testing"
)

func TestParseSTSPolicy(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    STSPolicy
		wantErr string
	}{
		{name: "enforce, CRLF", body: "version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\nmx: *.Example.org.\r\nmax_age: 604800\r\n",
			want: STSPolicy{Mode: "enforce", MX: []string{"mail.example.org", "*.example.org"}, MaxAge: 604800}},
		{name: "testing, LF, unknown key ignored", body: "version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age: 86400\nextension: yes\n",
			want: STSPolicy{Mode: "testing", MX: []string{"mx.example.org"}, MaxAge: 86400}},
		{name: "none needs no mx", body: "version: STSv1\nmode: none\nmax_age: 0\n", want: STSPolicy{Mode: "none"}},
		{name: "empty", body: "\r\n", wantErr: "empty"},
		{name: "version not first", body: "mode: enforce\nversion: STSv1\n", wantErr: "must start with \"version: STSv1\""},
		{name: "wrong version", body: "version: STSv2\nmode: enforce\n", wantErr: "version \"STSv2\""},
		{name: "bad mode", body: "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", wantErr: "mode \"strict\""},
		{name: "two modes", body: "version: STSv1\nmode: enforce\nmode: testing\n", wantErr: "second mode"},
		{name: "no mode", body: "version: STSv1\nmx: a.example\nmax_age: 1\n", wantErr: "no mode"},
		{name: "no max_age", body: "version: STSv1\nmode: enforce\nmx: a.example\n", wantErr: "no max_age"},
		{name: "max_age over a year", body: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", wantErr: "max_age \"31557601\""},
		{name: "max_age negative", body: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", wantErr: "max_age \"-1\""},
		{name: "enforce without mx", body: "version: STSv1\nmode: enforce\nmax_age: 86400\n", wantErr: "names no mx"},
		{name: "bad pattern", body: "version: STSv1\nmode: enforce\nmx: mail.*.example\nmax_age: 1\n", wantErr: "mx \"mail.*.example\""},
		{name: "not key: value", body: "version: STSv1\nmode enforce\n", wantErr: "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSTSPolicy(tt.body)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSTSPolicy = %+v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Mode != tt.want.Mode || got.MaxAge != tt.want.MaxAge || !slices.Equal(got.MX, tt.want.MX) {
				t.Fatalf("ParseSTSPolicy = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestSTSMatch(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"mail.example.org", "mail.example.org", true},
		{"mail.example.org", "MAIL.example.org.", true},
		{"mail.example.org", "mx.example.org", false},
		{"*.example.org", "mx.example.org", true},
		{"*.example.org", "a.b.example.org", false},
		{"*.example.org", "example.org", false},
		{"*.example.org", "mx.example.org.evil.test", false},
		{"*.example.org", ".example.org", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.host, func(t *testing.T) {
			if got := STSMatch(tt.pattern, tt.host); got != tt.want {
				t.Errorf("STSMatch(%q, %q) = %v, want %v", tt.pattern, tt.host, got, tt.want)
			}
		})
	}
}

func TestParseSTSRecord(t *testing.T) {
	tests := []struct {
		rec, want, wantErr string
	}{
		{rec: "v=STSv1; id=20190429T010101;", want: "20190429T010101"},
		{rec: "v=STSv1;id=abc", want: "abc"},
		{rec: "v=STSv1; id=abc; ext=1", want: "abc"},
		{rec: "id=abc; v=STSv1", wantErr: "must start with v=STSv1"},
		{rec: "v=STSv1", wantErr: "no id="},
		{rec: "v=STSv1; id=", wantErr: "not 1 to 32"},
		{rec: "v=STSv1; id=" + strings.Repeat("a", 33), wantErr: "not 1 to 32"},
		{rec: "v=STSv1; id=a-b", wantErr: "not 1 to 32"},
		{rec: "v=STSv1; id=a; id=b", wantErr: "twice"},
		{rec: "v=STSv1; id", wantErr: "not key=value"},
	}
	for _, tt := range tests {
		t.Run(tt.rec, func(t *testing.T) {
			got, err := ParseSTSRecord(tt.rec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSTSRecord = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSTSRecord = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseTLSRPT(t *testing.T) {
	tests := []struct {
		rec     string
		want    []string
		wantErr string
	}{
		{rec: "v=TLSRPTv1; rua=mailto:tls@example.org", want: []string{"mailto:tls@example.org"}},
		{rec: "v=TLSRPTv1;rua=mailto:a@example.org, https://r.example.org/tls", want: []string{"mailto:a@example.org", "https://r.example.org/tls"}},
		{rec: "v=TLSRPTv2; rua=mailto:a@example.org", wantErr: "must start with v=TLSRPTv1"},
		{rec: "v=TLSRPTv1", wantErr: "no rua="},
		{rec: "v=TLSRPTv1; rua=", wantErr: "no rua="},
		{rec: "v=TLSRPTv1; rua=http://r.example.org", wantErr: "\"http://r.example.org\" is not mailto"},
		{rec: "v=TLSRPTv1; rua=mailto:nobody", wantErr: "not mailto"},
	}
	for _, tt := range tests {
		t.Run(tt.rec, func(t *testing.T) {
			got, err := ParseTLSRPT(tt.rec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTLSRPT = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseTLSRPT = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
