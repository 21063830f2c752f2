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
	"slices"
	"strings"
)

// sockmailEnv is what the Makefile's SOCKMAIL_ENV puts in the environment
// of the "go build" commands of "make build": both programs are static,
// and the benchmark measures what "make build" makes
// (TestBuildLikeMakefile).
const sockmailEnv = "CGO_ENABLED=0"

// clientTags are the Makefile's CLIENT_TAGS: the build tags of
// bin/sockmail, the command-line client.
const clientTags = "sendonly"

// staticEnv builds a program without cgo, hence statically linked.
const staticEnv = "CGO_ENABLED=0"

// binaries are the programs a run compares.
type binaries struct {
	sockmail      string // bin/sockmail, the command-line client "make build" ships (static)
	sockmailSize  int64
	server        string // bin/sockmail-server, the full build (static), which can send too
	serverSize    int64
	netsmtp       string // the net/smtp baseline client, built as "go build" builds it
	netsmtpStatic string // the same, built static like bin/sockmail
	netsmtpLinked string // how "go build" linked netsmtp: "dynamic" or "static"
	gosink        string // the go-smtp sink
}

// goBuild is one "go build" a run makes.
type goBuild struct {
	out, tags, pkg string
	env            []string
}

// command is the build as a shell line, as "make -n build" prints it.
func (g goBuild) command() string {
	line := strings.Join(append(slices.Clone(g.env), "go build"), " ")
	if g.tags != "" {
		line += " -tags " + g.tags
	}
	return line + " -o " + g.out + " " + g.pkg
}

// shipped are the builds of "make build", into outDir: the command-line
// client and the full build.
func shipped(outDir string) []goBuild {
	return []goBuild{
		{filepath.Join(outDir, "sockmail"), clientTags, "./cmd/sockmail", []string{sockmailEnv}},
		{filepath.Join(outDir, "sockmail-server"), "", "./cmd/sockmail", []string{sockmailEnv}},
	}
}

// build compiles bin/sockmail and bin/sockmail-server into outDir as
// "make build" does (shipped), and the helper programs into tmp, with the
// go command on PATH, from the repository root. The net/smtp baseline is
// built twice: as a plain "go build" builds it (dynamically linked where
// cgo is available, which is what a Go user gets) and static. The
// programs compared are then dropped from the page cache (evict).
func build(ctx context.Context, outDir, tmp string) (binaries, error) {
	ship := shipped(outDir)
	b := binaries{
		sockmail:      ship[0].out,
		server:        ship[1].out,
		netsmtp:       filepath.Join(tmp, "netsmtpclient"),
		netsmtpStatic: filepath.Join(tmp, "netsmtpclient-static"),
		gosink:        filepath.Join(tmp, "gosmtpsink"),
	}
	builds := append(ship,
		goBuild{b.netsmtp, "", "./internal/procbench/netsmtpclient", nil},
		goBuild{b.netsmtpStatic, "", "./internal/procbench/netsmtpclient", []string{staticEnv}},
		goBuild{b.gosink, "", "./internal/procbench/gosmtpsink", nil},
	)
	for _, p := range builds {
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", p.tags, "-o", p.out, p.pkg)
		cmd.Env = append(os.Environ(), p.env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return b, fmt.Errorf("%s (run from the repository root): %w\n%s", p.command(), err, stderr.String())
		}
	}
	for _, f := range []struct {
		path string
		size *int64
	}{{b.sockmail, &b.sockmailSize}, {b.server, &b.serverSize}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			return b, fmt.Errorf("built program: %w", err)
		}
		*f.size = fi.Size()
	}
	var err error
	b.netsmtpLinked, err = linking(b.netsmtp)
	if err != nil {
		return b, err
	}
	for _, p := range []string{b.sockmail, b.server, b.netsmtp, b.netsmtpStatic} {
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
