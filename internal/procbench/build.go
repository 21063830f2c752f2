package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// sockmailEnv is what the Makefile's SOCKMAIL_ENV puts in the environment
// of "go build -o bin/sockmail": bin/sockmail is static, and the benchmark
// measures the binary "make build" makes (TestBuildEnvLikeMakefile).
const sockmailEnv = "CGO_ENABLED=0"

// staticEnv builds a program without cgo, hence statically linked.
const staticEnv = "CGO_ENABLED=0"

// binaries are the programs a run compares.
type binaries struct {
	sockmail      string // bin/sockmail, as "make build" makes it (static)
	sockmailSize  int64
	sendonly      string // sockmail built with -tags sendonly: the CLI client alone
	netsmtp       string // the net/smtp baseline client, built as "go build" builds it
	netsmtpStatic string // the same, built static like bin/sockmail
	netsmtpLinked string // how "go build" linked netsmtp: "dynamic" or "static"
	gosink        string // the go-smtp sink
}

// build compiles bin/sockmail into outDir, and the sendonly build of it
// and the helper programs into tmp, with the go command on PATH, from the
// repository root. bin/sockmail and the sendonly build are built the way
// "make build" builds bin/sockmail (sockmailEnv); the net/smtp baseline
// twice: as a plain "go build" builds it (dynamically linked where cgo is
// available, which is what a Go user gets) and static. The programs
// compared are then dropped from the page cache (evict).
func build(ctx context.Context, outDir, tmp string) (binaries, error) {
	b := binaries{
		sockmail:      filepath.Join(outDir, "sockmail"),
		sendonly:      filepath.Join(tmp, "sockmail-sendonly"),
		netsmtp:       filepath.Join(tmp, "netsmtpclient"),
		netsmtpStatic: filepath.Join(tmp, "netsmtpclient-static"),
		gosink:        filepath.Join(tmp, "gosmtpsink"),
	}
	for _, p := range []struct {
		out, tags, pkg string
		env            []string
	}{
		{b.sockmail, "", "./cmd/sockmail", []string{sockmailEnv}},
		{b.sendonly, "sendonly", "./cmd/sockmail", []string{sockmailEnv}},
		{b.netsmtp, "", "./internal/procbench/netsmtpclient", nil},
		{b.netsmtpStatic, "", "./internal/procbench/netsmtpclient", []string{staticEnv}},
		{b.gosink, "", "./internal/procbench/gosmtpsink", nil},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", p.tags, "-o", p.out, p.pkg)
		cmd.Env = append(os.Environ(), p.env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return b, fmt.Errorf("%v go build -o %s %s (run from the repository root): %w\n%s", p.env, p.out, p.pkg, err, stderr.String())
		}
	}
	fi, err := os.Stat(b.sockmail)
	if err != nil {
		return b, fmt.Errorf("built binary: %w", err)
	}
	b.sockmailSize = fi.Size()
	b.netsmtpLinked, err = linking(b.netsmtp)
	if err != nil {
		return b, err
	}
	for _, p := range []string{b.sockmail, b.sendonly, b.netsmtp, b.netsmtpStatic} {
		if err := evict(p); err != nil {
			return b, err
		}
	}
	return b, nil
}

// linking tells whether the ELF program at path is dynamically linked (it
// names an interpreter, the dynamic loader) or "static"; "unknown" where
// the program is not ELF.
func linking(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) {
			return "unknown", nil
		}
		return "", fmt.Errorf("linking of %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "dynamic", nil
		}
	}
	return "static", nil
}
