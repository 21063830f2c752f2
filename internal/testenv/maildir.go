package testenv

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const (
	// pollInterval is how often WaitForMessage looks at the Maildir.
	pollInterval = 20 * time.Millisecond
	// maxMessageAge: WaitForMessage ignores files older than this when it
	// starts, so that a Maildir shared by many runs stays cheap to scan.
	maxMessageAge = 10 * time.Minute
)

// WaitForMessage waits until a message containing substring has been
// delivered into the Maildir (new/ or cur/) and returns its bytes. Delivery
// is asynchronous after the server's 250 reply, so tests poll. Use a unique
// substring (UniqueToken, UniqueAddress). It fails the test when no
// matching message has come and no new file at all has appeared in the
// Maildir for stall: a busy server that is still delivering other mail is
// making progress, so the wait has no total deadline.
//
// Postfix stores messages with LF line ends and prepends Return-Path,
// X-Original-To, Delivered-To and Received; the aiosmtpd sink keeps CRLF and
// prepends X-Sink-* lines (see Server.Maildir).
func WaitForMessage(t testing.TB, maildir, substring string, stall time.Duration) []byte {
	t.Helper()
	msg, scanned, err := waitForMessage(maildir, []byte(substring), stall)
	if err != nil {
		t.Fatalf("testenv: no message containing %q in %s, and no new file for %v (%d files looked at): %v", substring, maildir, stall, scanned, err)
		return nil
	}
	return msg
}

// waitForMessage does the polling for WaitForMessage. It returns the
// message, or the number of files examined and why it gave up.
func waitForMessage(maildir string, substring []byte, stall time.Duration) ([]byte, int, error) {
	deadline := time.Now().Add(stall)
	oldest := time.Now().Add(-maxMessageAge)
	// Maildir files never change once in new/ or cur/; remember the ones
	// already read. A file moved from new/ to cur/ is read again: harmless.
	seen := map[string]bool{}
	for {
		for _, sub := range []string{"new", "cur"} {
			dir := filepath.Join(maildir, sub)
			entries, err := os.ReadDir(dir)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return nil, len(seen), err
			}
			for _, e := range entries {
				path := filepath.Join(dir, e.Name())
				if seen[path] || !e.Type().IsRegular() {
					continue
				}
				seen[path] = true
				// A new file is the server making progress.
				deadline = time.Now().Add(stall)
				if info, err := e.Info(); err != nil || info.ModTime().Before(oldest) {
					continue
				}
				data, err := os.ReadFile(path)
				if err != nil {
					// Moved to cur/ between ReadDir and ReadFile: the next
					// round finds it there.
					delete(seen, path)
					continue
				}
				if bytes.Contains(data, substring) {
					return data, len(seen), nil
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, len(seen), errors.New("no progress")
		}
		time.Sleep(pollInterval)
	}
}
