package testenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// messageIDPattern finds the Message-ID header of a delivered message.
var messageIDPattern = regexp.MustCompile(`(?mi)^message-id:[ \t]*<([^>\r\n]+)>`)

// MaildirCounter counts the messages of one test in a Maildir shared with
// other tests and runs: each message carries a token matched by a
// pattern (say "run-0042"), and the counter tells how many delivered
// files carry each token and each Message-ID, which is how a test proves
// that every message arrived exactly once. Files are read once each and
// never change (Maildir delivery is atomic); a file moved from new/ to
// cur/ is recognised by its unique name and counted once.
type MaildirCounter struct {
	dir   string
	token *regexp.Regexp
	since time.Time

	mu     sync.Mutex
	seen   map[string]bool   // file base names looked at
	paths  map[string]string // counted file base name -> path
	tokens map[string]int
	ids    map[string]int
}

// NewMaildirCounter counts files in maildir delivered from now on whose
// content matches token (the first match is the file's token).
func NewMaildirCounter(maildir string, token *regexp.Regexp) *MaildirCounter {
	return &MaildirCounter{
		dir: maildir, token: token, since: time.Now().Add(-2 * time.Second),
		seen: map[string]bool{}, paths: map[string]string{}, tokens: map[string]int{}, ids: map[string]int{},
	}
}

// Scan reads the files delivered since the last Scan.
func (c *MaildirCounter) Scan() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(c.dir, sub)
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			name := e.Name()
			if c.seen[name] || !e.Type().IsRegular() {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue // moved meanwhile: found in cur/ next time
			}
			if info.ModTime().Before(c.since) {
				c.seen[name] = true
				continue
			}
			path := filepath.Join(dir, name)
			data, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			c.seen[name] = true
			tok := c.token.Find(data)
			if tok == nil {
				continue
			}
			c.paths[name] = path
			c.tokens[string(tok)]++
			if m := messageIDPattern.FindSubmatch(data); m != nil {
				c.ids[string(m[1])]++
			}
		}
	}
	return nil
}

// Counts returns, for each token seen, how many files carry it, and the
// total number of files counted.
func (c *MaildirCounter) Counts() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.tokens))
	for k, v := range c.tokens {
		out[k] = v
	}
	return out, len(c.paths)
}

// MessageIDs returns, for each Message-ID seen in the counted files, how
// many carry it.
func (c *MaildirCounter) MessageIDs() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.ids))
	for k, v := range c.ids {
		out[k] = v
	}
	return out
}

// WaitDistinct scans until n distinct tokens have arrived and no new
// file has come for settle (so that late duplicates are counted too). It
// fails the test only when no new file has come for StallLimit before
// then, however long the deliveries take in all. It returns the time
// until the n-th distinct token was seen.
func (c *MaildirCounter) WaitDistinct(t testing.TB, n int, settle time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var reached time.Duration
	lastTotal, lastChange := -1, time.Now()
	var scanErr error
	type progress struct{ Distinct, Files int }
	WaitFor(t, fmt.Sprintf("%d distinct messages in %s", n, c.dir), func() (progress, bool) {
		if scanErr = c.Scan(); scanErr != nil {
			return progress{}, true
		}
		tokens, total := c.Counts()
		if total != lastTotal {
			lastTotal, lastChange = total, time.Now()
		}
		if len(tokens) >= n && reached == 0 {
			reached = time.Since(start)
		}
		return progress{len(tokens), total}, reached != 0 && time.Since(lastChange) >= settle
	})
	if scanErr != nil {
		t.Fatalf("testenv: scan %s: %v", c.dir, scanErr)
	}
	return reached
}

// RemoveWhenPassed deletes the counted files when the test ends, unless
// it failed (then they stay for a look).
func (c *MaildirCounter) RemoveWhenPassed(t testing.TB) {
	t.Cleanup(func() {
		if !t.Failed() {
			c.Remove()
		}
	})
}

// Remove deletes the files counted so far.
func (c *MaildirCounter) Remove() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, path := range c.paths {
		if os.Remove(path) != nil {
			// Moved to cur/ since.
			_ = os.Remove(filepath.Join(c.dir, "cur", name))
		}
		delete(c.paths, name)
	}
}
