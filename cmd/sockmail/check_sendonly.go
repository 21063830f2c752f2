//go:build sendonly

package main

import (
	"context"
	"fmt"
	"io"
)

// runCheck says that this build has no checker: it would link the DNS
// client, whose package initialisation every start of the send-only
// binary would pay for.
func runCheck(_ context.Context, _ []string, _, stderr io.Writer, _ func(string) string) int {
	fmt.Fprintf(stderr, notInThisBuild, "check")
	return exitUsage
}
