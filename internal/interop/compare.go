package interop

import (
	"bytes"
	"fmt"
	"strings"
)

// Compare checks that stored is exactly sent, preceded only by header
// fields whose names are in trace: the fields the server adds on its own
// (Received, Return-Path, Delivered-To, the sinks' X-Sink-* lines). With lf
// set, the server is known to store LF line ends (Postfix's Maildir,
// Inbucket): sent's CRLF become LF before comparing; nothing else is
// normalised. The error says where the copies part and shows both.
func Compare(stored, sent []byte, trace []string, lf bool) error {
	if lf {
		sent = bytes.ReplaceAll(sent, []byte("\r\n"), []byte("\n"))
	}
	first, _, _ := bytes.Cut(sent, []byte("\n"))
	first = append(first, '\n')
	start := bytes.Index(stored, first)
	if start < 0 {
		return fmt.Errorf("the sent message's first line %q is not in the stored copy (%d bytes, starting %q)",
			first, len(stored), head(stored, 0, 200))
	}
	if err := checkTrace(stored[:start], trace); err != nil {
		return err
	}
	got := stored[start:]
	if bytes.Equal(got, sent) {
		return nil
	}
	n := 0
	for n < len(got) && n < len(sent) && got[n] == sent[n] {
		n++
	}
	return fmt.Errorf("stored copy differs from the sent message at byte %d of %d (stored has %d):\nsent:   %q\nstored: %q",
		n, len(sent), len(got), head(sent, n-40, 120), head(got, n-40, 120))
}

// checkTrace checks that prefix consists of whole header fields named in
// trace (a field may continue on lines starting with a space or tab).
func checkTrace(prefix []byte, trace []string) error {
	for _, line := range strings.SplitAfter(string(prefix), "\n") {
		if line == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name, _, ok := strings.Cut(line, ":")
		if !ok || !known(name, trace) {
			return fmt.Errorf("stored copy has %q before the message: not one of the server's trace fields %v", line, trace)
		}
	}
	return nil
}

// known reports whether name is in names, without regard to case.
func known(name string, names []string) bool {
	for _, n := range names {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// head returns b[from:from+n], clipped to b.
func head(b []byte, from, n int) []byte {
	from = max(from, 0)
	if from > len(b) {
		return nil
	}
	return b[from:min(from+n, len(b))]
}
