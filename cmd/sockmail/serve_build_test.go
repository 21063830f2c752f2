//go:build !sendonly

package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"sockmail/internal/config"
)

// buildConfig loads a serve configuration over a new data directory.
func buildConfig(t *testing.T, args ...string) *config.Config {
	t.Helper()
	args = append([]string{"-data", filepath.Join(t.TempDir(), "data")}, args...)
	cfg, err := config.Load(args, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestNewServerReleasesOnError makes the last step of the build fail (the
// HTTP address is taken) and checks that the capture server it had
// started no longer holds its address.
func TestNewServerReleasesOnError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	capAddr := free.Addr().String()
	free.Close()
	cfg := buildConfig(t, "-listen", busy.Addr().String(), "-capture-addr", capAddr)
	log := slog.New(slog.DiscardHandler)
	s, err := newServer(context.Background(), cfg, log)
	if err == nil {
		s.close()
		t.Fatal("newServer on a taken address succeeded")
	}
	if !strings.Contains(err.Error(), "serve: listen") {
		t.Errorf("error %q, want the listen failure", err)
	}
	ln, err := net.Listen("tcp", capAddr)
	if err != nil {
		t.Fatalf("the capture address is still held after the failed build: %v", err)
	}
	ln.Close()
}

// TestRunEndsWhenAPartFails closes the web server's listener before run:
// serving fails at once, and run shuts the other parts down and returns
// the failure without its context being cancelled.
func TestRunEndsWhenAPartFails(t *testing.T) {
	cfg := buildConfig(t, "-listen", "127.0.0.1:0", "-capture-addr", "127.0.0.1:0")
	s, err := newServer(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	s.ln.Close()
	var stdout syncBuffer
	err = s.run(context.Background(), &stdout)
	if err == nil || !strings.HasPrefix(err.Error(), "serve: ") {
		t.Fatalf("run = %v, want the web server's failure", err)
	}
	if _, err := net.Dial("tcp", s.capSrv.Addr()); err == nil {
		t.Error("the capture server still accepts after run returned")
	}
}
