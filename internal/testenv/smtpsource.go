package testenv

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// SMTPSource sends n messages of about size bytes to pf's plain port
// with Postfix's own load generator, smtp-source, over sessions kept
// connections (-d), and returns the messages per second Postfix accepted:
// the baseline a client's rate to the same Postfix is given beside. It
// logs the time taken and how busy the machine's CPUs were, waits for
// the messages to be delivered (so that Postfix is idle for what comes
// next) and removes them (so that what is measured next scans a Maildir
// without them).
func SMTPSource(tb testing.TB, pf *PostfixServer, n, sessions, size int) float64 {
	tb.Helper()
	tok := UniqueToken()
	counter := NewMaildirCounter(pf.Maildir, regexp.MustCompile(regexp.QuoteMeta(tok)))
	defer counter.Remove()
	cmd := exec.Command("/usr/sbin/smtp-source", "-d", "-s", strconv.Itoa(sessions), "-l", strconv.Itoa(size), "-m", strconv.Itoa(n),
		"-M", "sockmail.test", "-f", "forms@example.org", "-t", "owner@"+pf.Domain, "-S", "scale "+tok, pf.SMTPAddr)
	start, busy := time.Now(), mustReadCPU(tb)
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		tb.Fatalf("smtp-source: %v\n%s", err, out)
	}
	tb.Logf("smtp-source: %d in %v; the machine's CPUs %s", n, took.Round(time.Millisecond), BusySince(tb, busy))
	WaitFor(tb, "smtp-source's messages delivered", func() (int, bool) {
		if err := counter.Scan(); err != nil {
			tb.Fatal(err)
		}
		_, files := counter.Counts()
		return files, files >= n
	})
	return float64(n) / took.Seconds()
}

// mustReadCPU is ReadCPU, failing tb if it cannot.
func mustReadCPU(tb testing.TB) CPUTimes {
	tb.Helper()
	t, err := ReadCPU()
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// BusySince tells, for a log, how busy the machine's CPUs were since
// earlier (a ReadCPU).
func BusySince(tb testing.TB, earlier CPUTimes) string {
	tb.Helper()
	return fmt.Sprintf("%.0f%% busy", 100*mustReadCPU(tb).BusySince(earlier))
}
