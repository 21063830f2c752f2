//go:build sendonly

package main

// The "sendonly" build (go build -tags sendonly ./cmd/sockmail) is the
// command-line client alone: "send" without --store, no "serve" and no
// "user". It links neither the web app nor the database drivers, whose
// package initialisation a full binary runs at every start even for a
// send that needs none of it; the whole-process benchmark
// (internal/procbench) measures both builds.

import (
	"context"
	"fmt"
	"io"
)

// notInThisBuild is the message of a command the sendonly build lacks.
const notInThisBuild = "sockmail: %q is not in this build (built with -tags sendonly: send only); use the full build\n"

// runServe says that this build has no web app.
func runServe(_ context.Context, _ []string, _, stderr io.Writer, _ func(string) string) int {
	fmt.Fprintf(stderr, notInThisBuild, "serve")
	return exitUsage
}

// runUser says that this build has no user database.
func runUser(_ context.Context, _ []string, _ io.Reader, _, stderr io.Writer, _ func(string) string) int {
	fmt.Fprintf(stderr, notInThisBuild, "user")
	return exitUsage
}
