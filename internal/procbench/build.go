package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// binaries are the programs a run compares.
type binaries struct {
	sockmail     string // bin/sockmail, as "make build" makes it
	sockmailSize int64
	sendonly     string // sockmail built with -tags sendonly: the CLI client alone
	netsmtp      string // the net/smtp baseline client
	gosink       string // the go-smtp sink
}

// build compiles bin/sockmail into outDir, and the sendonly build of it
// and the helper programs into tmp, with the go command on PATH, from the
// repository root.
func build(ctx context.Context, outDir, tmp string) (binaries, error) {
	b := binaries{
		sockmail: filepath.Join(outDir, "sockmail"),
		sendonly: filepath.Join(tmp, "sockmail-sendonly"),
		netsmtp:  filepath.Join(tmp, "netsmtpclient"),
		gosink:   filepath.Join(tmp, "gosmtpsink"),
	}
	for _, p := range []struct{ out, tags, pkg string }{
		{b.sockmail, "", "./cmd/sockmail"},
		{b.sendonly, "sendonly", "./cmd/sockmail"},
		{b.netsmtp, "", "./internal/procbench/netsmtpclient"},
		{b.gosink, "", "./internal/procbench/gosmtpsink"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", p.tags, "-o", p.out, p.pkg)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return b, fmt.Errorf("go build -o %s %s (run from the repository root): %w\n%s", p.out, p.pkg, err, stderr.String())
		}
	}
	fi, err := os.Stat(b.sockmail)
	if err != nil {
		return b, fmt.Errorf("built binary: %w", err)
	}
	b.sockmailSize = fi.Size()
	return b, nil
}
