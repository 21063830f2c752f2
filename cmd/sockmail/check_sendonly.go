//go:build sendonly

package main

import (
	"context"
	"io"
)

// runCheck hands "check" to the full build: the checker links the DNS
// client, whose package initialisation every start of the command-line
// client would otherwise pay for.
func runCheck(_ context.Context, args []string, _, stderr io.Writer, getenv func(string) string) int {
	return handOver("check", args, stderr, getenv)
}
