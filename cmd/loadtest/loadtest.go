package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of what the tool reads and waits for.
const (
	// maxAnswer bounds an HTTP answer read.
	maxAnswer = 64 << 10
	// maxMessage bounds a delivered message read from the Maildir.
	maxMessage = 4 << 20
	// tokenWait is how long a time-trap token must age before a post
	// (the server refuses younger ones; it asks for 3 s).
	tokenWait = 3500 * time.Millisecond
	// maxPosts bounds N.
	maxPosts = 1_000_000
)

// config is what the flags say.
type config struct {
	baseURL, form, origin, maildir string
	n, c                           int
	// stall is how long the Maildir may show no new message before the
	// wait for delivery gives up; settle how long to keep looking for
	// duplicates once every message has arrived.
	stall, settle time.Duration
	// timeout bounds each HTTP request.
	timeout time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	var c config
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.baseURL, "url", "http://127.0.0.1:8080", "base URL of the running sockmail")
	fs.StringVar(&c.form, "form", "", "the form's address name (the {name} of /f/{name}); required")
	fs.StringVar(&c.origin, "origin", "", "Origin header of the posts (one of the form's allowed origins), or none")
	fs.StringVar(&c.maildir, "maildir", "", "Maildir the form's messages arrive in, to count them; without it, no delivery count")
	fs.IntVar(&c.n, "n", 1000, "submissions to post")
	fs.IntVar(&c.c, "c", 32, "posts in flight at once")
	fs.DurationVar(&c.stall, "stall", 60*time.Second, "give up waiting for delivery after this long without a new message")
	fs.DurationVar(&c.settle, "settle", 2*time.Second, "after the last message arrived, keep looking for duplicates this long")
	fs.DurationVar(&c.timeout, "timeout", time.Minute, "time limit of each HTTP request")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var bad []string
	if c.form == "" {
		bad = append(bad, "-form is required")
	}
	if c.n < 1 || c.n > maxPosts {
		bad = append(bad, fmt.Sprintf("-n must be 1 to %d", maxPosts))
	}
	if c.c < 1 || c.c > 10_000 {
		bad = append(bad, "-c must be 1 to 10000")
	}
	if u, err := url.Parse(c.baseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad = append(bad, "-url must be an http:// or https:// URL")
	}
	if c.stall <= 0 || c.settle < 0 || c.timeout <= 0 {
		bad = append(bad, "-stall and -timeout must be positive, -settle not negative")
	}
	if len(bad) > 0 {
		err := errors.New(strings.Join(bad, "; "))
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		fs.Usage()
		return nil, err
	}
	c.baseURL = strings.TrimSuffix(c.baseURL, "/")
	return &c, nil
}

// report is what a load test found.
type report struct {
	posted, failed int
	// failures counts the failed posts by answer ("429", "network").
	failures map[string]int
	elapsed  time.Duration
	p50, p99 time.Duration
	// counted is false without a Maildir.
	counted                     bool
	delivered, lost, duplicated int
	deliveredIn, sinceFirstPost time.Duration
}

// ok reports whether every post succeeded and, when counted, arrived
// exactly once.
func (r *report) ok() bool {
	return r.failed == 0 && (!r.counted || r.lost == 0 && r.duplicated == 0)
}

// loadTest runs the test described by cfg and prints its report to out.
func loadTest(ctx context.Context, cfg *config, out io.Writer) (*report, error) {
	var rb [6]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return nil, err
	}
	run := "lt" + hex.EncodeToString(rb[:])
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: cfg.c, MaxConnsPerHost: cfg.c},
		Timeout:   cfg.timeout,
		// A post is answered in JSON; a redirect would be a mistake.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()

	fmt.Fprintf(out, "run %s: %d submissions to %s/f/%s at concurrency %d\n", run, cfg.n, cfg.baseURL, cfg.form, cfg.c)
	tokens := make([]string, cfg.n)
	err := parallel(ctx, cfg.n, cfg.c, func(i int) error {
		tok, err := fetchToken(ctx, client, cfg)
		tokens[i] = tok
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get tokens: %w", err)
	}
	// The time trap refuses a post within 3 s of its token.
	select {
	case <-time.After(tokenWait):
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	rep := &report{posted: cfg.n, failures: map[string]int{}}
	lat := make([]time.Duration, cfg.n)
	okPosts := make([]bool, cfg.n)
	var mu sync.Mutex
	var failed atomic.Int64
	start := time.Now()
	err = parallel(ctx, cfg.n, cfg.c, func(i int) error {
		took, why := post(ctx, client, cfg, tokens[i], submissionToken(run, i))
		lat[i] = took
		if why != "" {
			failed.Add(1)
			mu.Lock()
			rep.failures[why]++
			mu.Unlock()
			return nil
		}
		okPosts[i] = true
		return nil
	})
	rep.elapsed = time.Since(start)
	if err != nil {
		return nil, err
	}
	rep.failed = int(failed.Load())
	var done []time.Duration
	for i, d := range lat {
		if okPosts[i] {
			done = append(done, d)
		}
	}
	slices.Sort(done)
	if len(done) > 0 {
		rep.p50, rep.p99 = done[min(len(done)-1, len(done)*50/100)], done[min(len(done)-1, len(done)*99/100)]
	}
	fmt.Fprintf(out, "posted %d: %d answered success, %d failed %v in %.2f s: %.0f submissions/s, p50 %.1f ms, p99 %.1f ms\n",
		cfg.n, cfg.n-rep.failed, rep.failed, rep.failures, rep.elapsed.Seconds(),
		float64(cfg.n-rep.failed)/rep.elapsed.Seconds(), ms(rep.p50), ms(rep.p99))

	if cfg.maildir == "" {
		fmt.Fprintln(out, "no -maildir: deliveries not counted")
		return rep, nil
	}
	rep.counted = true
	want := map[int]bool{}
	for i, ok := range okPosts {
		if ok {
			want[i] = true
		}
	}
	counts, last, early, err := waitDelivered(ctx, cfg, run, start, len(want))
	if err != nil {
		return nil, err
	}
	for i, n := range counts {
		if !want[i] {
			// A post answered as failed that arrived all the same.
			continue
		}
		rep.delivered++
		if n > 1 {
			rep.duplicated += n - 1
		}
	}
	rep.lost = len(want) - rep.delivered
	allPosted := start.Add(rep.elapsed)
	rep.deliveredIn, rep.sinceFirstPost = max(last.Sub(allPosted), 0), last.Sub(start)
	rate := 0.0
	if rep.sinceFirstPost > 0 {
		rate = float64(rep.delivered) / rep.sinceFirstPost.Seconds()
	}
	// What arrived after the posts: the outbox draining with nothing else
	// to do.
	rest := 0.0
	if rep.deliveredIn > 0 {
		rest = float64(rep.delivered-min(early, rep.delivered)) / rep.deliveredIn.Seconds()
	}
	fmt.Fprintf(out, "delivered %d of %d in %.2f s from the first post (%.0f messages/s), %.2f s after the last (%d had arrived by then, the rest at %.0f messages/s): %d lost, %d duplicated\n",
		rep.delivered, len(want), rep.sinceFirstPost.Seconds(), rate, rep.deliveredIn.Seconds(), early, rest, rep.lost, rep.duplicated)
	return rep, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// submissionToken is what marks submission i of run in its message.
func submissionToken(run string, i int) string { return fmt.Sprintf("%s-%07d", run, i) }

// parallel runs do(0..n-1) with c at a time; the first error stops it.
func parallel(ctx context.Context, n, c int, do func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(c, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := do(i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// fetchToken gets a time-trap token for one post.
func fetchToken(ctx context.Context, client *http.Client, cfg *config) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.baseURL+"/f/"+url.PathEscape(cfg.form)+"/token", nil)
	if err != nil {
		return "", err
	}
	if cfg.origin != "" {
		req.Header.Set("Origin", cfg.origin)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return "", err
	}
	var tok struct{ Token string }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.Token == "" {
		return "", fmt.Errorf("GET /f/%s/token: %d %.200s", cfg.form, resp.StatusCode, body)
	}
	return tok.Token, nil
}

// post sends one submission marked with mark and returns how long the
// answer took and, for a failure, why ("" for a success).
func post(ctx context.Context, client *http.Client, cfg *config, token, mark string) (time.Duration, string) {
	body, _ := json.Marshal(map[string]string{
		"_token": token, "name": "Load test " + mark, "email": "loadtest@visitor.test",
		"message": "Load test message\n" + mark + "\nabout as long as a short contact message.",
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.baseURL+"/f/"+url.PathEscape(cfg.form), bytes.NewReader(body))
	if err != nil {
		return 0, "request"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if cfg.origin != "" {
		req.Header.Set("Origin", cfg.origin)
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return time.Since(t0), "network"
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	took := time.Since(t0)
	if err != nil {
		return took, "network"
	}
	var a struct {
		OK              bool `json:"ok"`
		AlreadyReceived bool `json:"already_received"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(answer, &a) != nil || !a.OK || a.AlreadyReceived {
		return took, strconv.Itoa(resp.StatusCode)
	}
	return took, ""
}

// waitDelivered scans the Maildir until want distinct submissions of run
// have arrived (then looks settle longer for duplicates) or nothing new
// arrived for stall. It returns the copies per submission, when the last
// new one was seen, and how many submissions its first scan found (those
// that arrived before it was called).
func waitDelivered(ctx context.Context, cfg *config, run string, since time.Time, want int) (map[int]int, time.Time, int, error) {
	pattern := regexp.MustCompile(regexp.QuoteMeta(run) + `-(\d{7})`)
	counts := map[int]int{}
	seen := map[string]bool{}
	last, progress := since, time.Now()
	var settled time.Time
	early := -1
	// Every 200 ms: a scan reads the whole directory listing, which
	// holds every message delivered there so far (with 50 ms, the scans
	// of a 5,000-message run took 0.6 ms of CPU a message, beside the
	// instance measured; the times it tells are 0.2 s coarse, 1.5% of
	// such a run).
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := scanMaildir(cfg.maildir, pattern, since.Add(-time.Minute), seen, counts)
		if err != nil {
			return nil, last, 0, err
		}
		if early < 0 {
			early = len(counts)
		}
		now := time.Now()
		if n > 0 {
			last, progress = now, now
		}
		if len(counts) >= want {
			if settled.IsZero() {
				settled = now
			}
			if now.Sub(settled) >= cfg.settle {
				return counts, last, early, nil
			}
		} else if now.Sub(progress) > cfg.stall {
			return counts, last, early, nil // the report counts what is missing
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, last, early, ctx.Err()
		}
	}
}

// scanMaildir reads the files of maildir's new/ and cur/ not in seen and
// not older than notBefore (a shared Maildir may hold many), counts each
// submission whose mark matches pattern, and returns how many such files
// it found.
func scanMaildir(maildir string, pattern *regexp.Regexp, notBefore time.Time, seen map[string]bool, counts map[int]int) (int, error) {
	found := 0
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(maildir, sub))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return found, fmt.Errorf("read maildir: %w", err)
		}
		for _, e := range entries {
			// A message moved from new/ to cur/ keeps its name up to ":".
			name, _, _ := strings.Cut(e.Name(), ":")
			if seen[name] || e.IsDir() {
				continue
			}
			if info, err := e.Info(); err == nil && info.ModTime().Before(notBefore) {
				seen[name] = true
				continue
			}
			f, err := os.Open(filepath.Join(maildir, sub, e.Name()))
			if err != nil {
				continue // moved meanwhile: found under its new name next time
			}
			b, err := io.ReadAll(io.LimitReader(f, maxMessage))
			f.Close()
			if err != nil {
				continue
			}
			seen[name] = true
			m := pattern.FindSubmatch(b)
			if m == nil {
				continue
			}
			i, _ := strconv.Atoi(string(m[1]))
			counts[i]++
			found++
		}
	}
	return found, nil
}
