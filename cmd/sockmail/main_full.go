//go:build !sendonly

package main

import (
	"context"
	"io"
)

// buildUsage ends the usage text: the full build does every command itself.
const buildUsage = ""

// sendCommand runs "sockmail send", --store included.
func sendCommand(ctx context.Context, args []string, stdout, stderr io.Writer, _ func(string) string) int {
	return runSend(ctx, args, stdout, stderr)
}
