//go:build !sendonly

package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sockmail/internal/api"
	"sockmail/internal/store"
)

// TestTokenAdd: "sockmail token add" prints a token once on stdout and
// stores only its hash, with the scopes and expiry asked for; bad flags
// and a second token of the same name are refused with a clear message.
func TestTokenAdd(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"SOCKMAIL_DATA": dir}
	getenv := func(k string) string { return env[k] }
	run := func(args ...string) (int, string, string) {
		var stdout, stderr serveBuffer
		code := dispatch(context.Background(), append([]string{"token"}, args...), strings.NewReader(""), &stdout, &stderr, getenv)
		return code, stdout.String(), stderr.String()
	}
	before := time.Now()
	code, out, errOut := run("add", "-name", "ci", "-scopes", "read,send", "-expires", "720h")
	if code != 0 {
		t.Fatalf("token add: exit %d, stderr %q", code, errOut)
	}
	tok := strings.TrimSpace(out)
	if !strings.HasPrefix(tok, api.TokenPrefix) || strings.Count(out, "\n") != 1 {
		t.Fatalf("stdout %q: want the token alone on one line", out)
	}
	if strings.Contains(errOut, tok) {
		t.Errorf("stderr repeats the token: %q", errOut)
	}
	st, err := store.Open(context.Background(), filepath.Join(dir, "sockmail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.APITokenByHash(context.Background(), api.HashToken(tok))
	if err != nil {
		t.Fatalf("stored token by hash: %v", err)
	}
	if got.Name != "ci" || !slices.Equal(got.Scopes, []string{"send", "read"}) || got.Hash == tok || got.ExpiresAt == nil ||
		got.ExpiresAt.Before(before.Add(720*time.Hour-time.Second)) || got.ExpiresAt.After(time.Now().Add(720*time.Hour)) {
		t.Errorf("stored %+v", got)
	}

	tests := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"same name", []string{"add", "-name", "ci", "-scopes", "read"}, 1, `a token named "ci" exists already`},
		{"no name", []string{"add", "-scopes", "read"}, 2, "-name: a name is required"},
		{"long name", []string{"add", "-name", strings.Repeat("n", 65), "-scopes", "read"}, 2, "at most 64 characters"},
		{"bad scope", []string{"add", "-name", "x", "-scopes", "read,write"}, 2, `unknown scope "write"`},
		{"no scope", []string{"add", "-name", "x"}, 2, "no scope given"},
		{"negative expiry", []string{"add", "-name", "x", "-scopes", "read", "-expires", "-1h"}, 2, "is negative"},
		{"no subcommand", nil, 2, "usage: sockmail token add"},
		{"stray argument", []string{"add", "-name", "x", "-scopes", "read", "extra"}, 2, `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		code, out, errOut := run(tc.args...)
		if code != tc.code || out != "" || !strings.Contains(errOut, tc.err) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.name, code, out, errOut, tc.code, tc.err)
		}
	}
}
