package api

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewTokenHash(t *testing.T) {
	tok, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tok2, hash2, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, TokenPrefix) || len(tok) != len(TokenPrefix)+43 || len(tok) > MaxTokenLen {
		t.Errorf("token %q: want %s and 43 base64url characters", tok, TokenPrefix)
	}
	if tok == tok2 || hash == hash2 {
		t.Errorf("two tokens alike: %q %q", tok, tok2)
	}
	if hash != HashToken(tok) || len(hash) != 64 || strings.Contains(hash, tok) {
		t.Errorf("hash %q of %q: want the 64 hex digits of its SHA-256", hash, tok)
	}
	// SHA-256("abc"), FIPS 180-2.
	if got := HashToken("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashToken(abc) = %s", got)
	}
}

func TestParseScopes(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"send,read", []string{"send", "read"}, ""},
		{" READ , send,read", []string{"send", "read"}, ""},
		{"admin,captured", []string{"captured", "admin"}, ""},
		{"", nil, "no scope"},
		{" , ", nil, "no scope"},
		{"send,write", nil, `unknown scope "write"`},
	}
	for _, tc := range tests {
		got, err := ParseScopes(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseScopes(%q) error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseScopes(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestHasScope(t *testing.T) {
	tests := []struct {
		scopes []string
		want   string
		ok     bool
	}{
		{[]string{"send"}, "send", true},
		{[]string{"send"}, "read", false},
		{[]string{"admin"}, "captured", true},
		{nil, "read", false},
	}
	for _, tc := range tests {
		if got := HasScope(tc.scopes, tc.want); got != tc.ok {
			t.Errorf("HasScope(%v, %s) = %v, want %v", tc.scopes, tc.want, got, tc.ok)
		}
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header, want string
		ok           bool
	}{
		{"Bearer smk_abc", "smk_abc", true},
		{"bearer  smk_abc ", "smk_abc", true},
		{"Basic dXNlcjpwYXNz", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"", "", false},
		{"Bearer " + strings.Repeat("a", MaxTokenLen+1), "", false},
	}
	for _, tc := range tests {
		got, ok := BearerToken(tc.header)
		if got != tc.want || ok != tc.ok {
			t.Errorf("BearerToken(%q) = %q, %v, want %q, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

// TestLimiter drives the token bucket with an injected clock: a burst is
// allowed, the next request is refused with the time until the bucket
// refills one, time refills it, buckets are per key, and a long pause
// refills no more than the burst.
func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLimiter(2, 3, func() time.Time { return now })
	for i := range 3 {
		if ok, _ := l.Allow(1); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.Allow(1)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("4th request: allowed %v, wait %v; want refused, 500ms", ok, wait)
	}
	if ok, _ := l.Allow(2); !ok {
		t.Fatal("another key shares the bucket")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.Allow(1); !ok {
		t.Fatal("refused after the refill time")
	}
	if ok, _ := l.Allow(1); ok {
		t.Fatal("allowed twice after one refill")
	}
	now = now.Add(time.Hour)
	for i := range 3 {
		if ok, _ := l.Allow(1); !ok {
			t.Fatalf("after a pause, request %d refused", i+1)
		}
	}
	if ok, _ := l.Allow(1); ok {
		t.Fatal("a pause refilled more than the burst")
	}
}
