//go:build !sendonly

package main

import (
	"fmt"
	"io"
	"strings"

	"sockmail/internal/check"
	"sockmail/internal/safetext"
)

// statusMark is the tag a finding's line starts with.
func statusMark(s check.Status) string {
	switch s {
	case check.Pass:
		return "[ok]  "
	case check.Info:
		return "[info]"
	case check.Warning:
		return "[warn]"
	}
	return "[FAIL]"
}

// findingLine renders a finding on one line (the fix, if any, after it).
// Server text in it is escaped so it cannot drive the terminal.
func findingLine(f check.Finding) string {
	var b strings.Builder
	b.WriteString(statusMark(f.Status) + " ")
	if f.Addr != "" {
		b.WriteString(f.Addr + ": ")
	}
	b.WriteString(safetext.Line(f.Message))
	if f.Fix != "" && f.Status != check.Pass && f.Status != check.Info {
		b.WriteString(" Fix: " + safetext.Line(f.Fix))
	}
	if f.Conversation != 0 {
		fmt.Fprintf(&b, " (conversation %d)", f.Conversation)
	}
	return b.String()
}

// writeCheckReport prints the report grouped by host, then the summary;
// verbose adds every DNS lookup and every conversation's transcript.
func writeCheckReport(w io.Writer, rep *check.Report, verbose bool) {
	fmt.Fprintf(w, "Check of %s (%s), resolver %s\n", rep.Target, rep.Kind, rep.Resolver)
	hosts := map[string]check.Host{}
	for _, h := range rep.Hosts() {
		hosts[h.Name] = h
	}
	for _, g := range rep.Groups() {
		switch h, ok := hosts[g.Host]; {
		case g.Host == "":
			fmt.Fprintf(w, "\nDNS\n")
		case ok && h.Service != "":
			fmt.Fprintf(w, "\n%s (%s server, from its SRV record), port %d\n", g.Host, h.Service, h.Port)
		case ok && h.Implicit:
			fmt.Fprintf(w, "\n%s (implicit MX), port %d\n", g.Host, h.Port)
		case ok && rep.Kind == check.KindDomain:
			fmt.Fprintf(w, "\nMX %d %s, port %d\n", h.Preference, g.Host, h.Port)
		case ok:
			fmt.Fprintf(w, "\n%s, port %d\n", g.Host, h.Port)
		default:
			fmt.Fprintf(w, "\n%s\n", g.Host)
		}
		for _, f := range g.Findings {
			fmt.Fprintf(w, "  %s\n", findingLine(f))
		}
	}
	if verbose {
		fmt.Fprintf(w, "\nDNS lookups\n")
		for _, l := range rep.Lookups() {
			fmt.Fprintf(w, "  %s\n", safetext.Line(l.String()))
		}
		for _, c := range rep.Conversations() {
			fmt.Fprintf(w, "\nConversation %d: %s, %s (%s)\n", c.ID, c.Host, c.Addr, c.Purpose)
			if err := c.Transcript.WriteText(w); err != nil {
				return
			}
		}
	}
	counts := map[check.Status]int{}
	for _, f := range rep.Findings() {
		counts[f.Status]++
	}
	fmt.Fprintf(w, "\n%d passed, %d information, %d warnings, %d failures; %d DNS lookups, %d SMTP conversations (-v or --json for every transcript); %.0f ms\n",
		counts[check.Pass], counts[check.Info], counts[check.Warning], counts[check.Fail],
		len(rep.Lookups()), len(rep.Conversations()), float64(rep.Took.Microseconds())/1000)
}
