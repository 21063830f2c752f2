package main

import (
	"bytes"
	"context"
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp/message"
)

// helperEnv makes the test binary run "sockmail serve" (TestServeProcess).
const helperEnv = "SOCKMAIL_TEST_SERVE_PROCESS"

// TestServeProcess is not a test: run by TestFaultSIGKILL as a child
// process with helperEnv set, it is the real "sockmail serve", configured
// by the environment, until SIGTERM (or SIGKILL).
func TestServeProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	code := dispatch(ctx, []string{"serve"}, strings.NewReader(""), os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// serveProcess is a running "sockmail serve" child.
type serveProcess struct {
	cmd *exec.Cmd
	out *syncWriter
}

func startServe(t *testing.T, env []string) *serveProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=1"}, env...)...)
	out := &syncWriter{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{cmd: cmd, out: out}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// syncWriter collects a child's output, written from two goroutines.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFaultSIGKILL: the sockmail process is killed with SIGKILL twice in
// the middle of delivering 1,000 contact messages (SQLite, Postfix);
// after each restart it goes on, and in the end every message has
// arrived exactly once: no duplicate, none lost. An attempt in flight at
// a kill that had not marked the end of its message sent is taken over
// and sent again (Postfix discarded the partial message); one that had
// is marked unknown and not sent again (Postfix has it, unless the kill
// fell between the mark and the bytes leaving). So a message may be
// missing from the Maildir only if its item is unknown; the counts
// (delivered, unknown, duplicates) are reported.
//
// Which items were in flight at a kill is read from the store after the
// kill (status sending, leased by the killed process), so an item claimed
// an instant before the kill is counted too. Every wait fails only when
// progress stops, never on a total deadline.
func TestFaultSIGKILL(t *testing.T) {
	p := testenv.Postfix(t)
	if p == nil {
		return
	}
	k := newKillRun(t, p, 1000)
	k.enqueueAll()
	if t.Failed() {
		return
	}
	began := time.Now()
	for _, killAt := range []int{250, 600} {
		k.killAfter(killAt)
	}
	proc := startServe(t, k.env)
	k.outs = append(k.outs, proc.out)
	c := k.waitSent(proc, k.n, false)
	took := time.Since(began)
	if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := proc.cmd.Wait(); err != nil {
		t.Errorf("sockmail did not stop cleanly after SIGTERM: %v\n%s", err, proc.out.String())
	}
	unknown := c[store.OutboxUnknown]
	if c[store.OutboxSent]+unknown != k.n || len(c) > 2 {
		t.Errorf("final counts %v, want all %d sent or unknown", c, k.n)
	}
	unknownIDs := k.checkUnknown(unknown)
	takenOver, unknownAtKills := k.checkInFlight()
	k.checkTakeOverNotes()
	delivered, dups, missing, unknownDelivered := k.checkMaildir(unknownIDs)
	t.Logf("2 SIGKILLs, %d items in flight at them: %d taken over and sent again after the 3 s lease (end of message not sent), %d unknown (end of message marked sent: not sent again); %d unknown in all, %d of them had reached Postfix, %d had not %v; done in %v",
		len(k.inFlight), takenOver, unknownAtKills, unknown, unknownDelivered, len(missing), missing, took.Round(time.Millisecond))
	t.Logf("COUNTS delivered=%d unknown=%d duplicates=%d of %d messages", delivered, unknown, dups, k.n)
}

// killRun is the state of TestFaultSIGKILL.
type killRun struct {
	t       *testing.T
	n       int
	st      *store.Store
	dir     string
	run, to string
	prof    *store.Profile
	form    *store.Form
	counter *testenv.MaildirCounter
	msgIDs  []string // by message number
	env     []string
	// killed holds the lease owners of the killed processes, each with
	// the time it was dead by; inFlight the items they held when killed
	// (a second kill may come before the first one's leases expired, with
	// the same items still "sending" under the first dead process).
	killed   map[string]time.Time
	inFlight map[int64]bool
	// outs are the outputs of the processes started, for explaining a
	// duplicate (explainDuplicates).
	outs []*syncWriter
}

func newKillRun(t *testing.T, p *testenv.PostfixServer, n int) *killRun {
	ctx := context.Background()
	k := &killRun{t: t, n: n, dir: t.TempDir(), msgIDs: make([]string, n), killed: map[string]time.Time{}, inFlight: map[int64]bool{}}
	st, err := store.Open(ctx, filepath.Join(k.dir, "sockmail.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	k.st = st
	k.prof = &store.Profile{Name: "test postfix", Host: "127.0.0.1", TLSMode: "none", HeloName: "sockmail.test"}
	fmt.Sscanf(p.SMTPAddr[strings.LastIndexByte(p.SMTPAddr, ':')+1:], "%d", &k.prof.Port)
	if err := st.SaveProfile(ctx, k.prof); err != nil {
		t.Fatal(err)
	}
	k.run, k.to = strings.TrimPrefix(testenv.UniqueToken(), "tok-"), testenv.UniqueAddress()
	k.form = &store.Form{Name: "kill test", Recipients: []string{k.to}, ProfileID: k.prof.ID, FromAddr: "forms@example.test", Enabled: true}
	if err := st.SaveForm(ctx, k.form); err != nil {
		t.Fatal(err)
	}
	k.counter = testenv.NewMaildirCounter(p.Maildir, regexp.MustCompile(regexp.QuoteMeta(k.run)+`-\d{4}`))
	k.counter.RemoveWhenPassed(t)
	k.env = []string{
		"SOCKMAIL_DATA=" + k.dir, "SOCKMAIL_LISTEN=127.0.0.1:0", "SOCKMAIL_CAPTURE_ADDR=off", "SOCKMAIL_LOG_LEVEL=warn",
		"SOCKMAIL_OUTBOX_CONCURRENCY=8", "SOCKMAIL_OUTBOX_LEASE=3s", "SOCKMAIL_OUTBOX_POLL=100ms",
		"SOCKMAIL_OUTBOX_BACKOFF_BASE=100ms", "SOCKMAIL_OUTBOX_BACKOFF_MAX=1s",
	}
	return k
}

func (k *killRun) token(i int) string { return fmt.Sprintf("%s-%04d", k.run, i) }

// enqueueAll stores the n submissions with 8 concurrent callers, each a
// message composed once with its Message-ID.
func (k *killRun) enqueueAll() {
	start := time.Now()
	var next atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < k.n; i = int(next.Add(1)) - 1 {
				if err := k.enqueue(i); err != nil {
					k.t.Errorf("submission %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	k.t.Logf("%d submissions stored in %v", k.n, time.Since(start).Round(time.Millisecond))
}

func (k *killRun) enqueue(i int) error {
	tok := k.token(i)
	m := &message.Message{From: &mail.Address{Address: "forms@example.test"}, To: []*mail.Address{{Address: k.to}},
		Subject: "Contact " + tok, Text: "kill test message " + tok + "\n"}
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		return err
	}
	k.msgIDs[i] = m.MessageID
	sub := &store.Submission{FormID: k.form.ID, Fields: []store.FieldValue{{Name: "message", Value: tok}}}
	item := &store.OutboxItem{ProfileID: k.prof.ID, MailFrom: m.EnvelopeFrom(), Rcpts: m.Recipients(), MessageID: m.MessageID, Message: buf.Bytes()}
	return k.st.EnqueueSubmission(context.Background(), sub, item)
}

func (k *killRun) counts() map[store.OutboxStatus]int {
	c, err := k.st.OutboxCounts(context.Background())
	if err != nil {
		k.t.Fatal(err)
	}
	return c
}

// waitSent waits until atLeast messages are sent (or, after a kill,
// unknown) and, when inFlight, some are being sent (so that a kill then
// hits deliveries). It fails when the process exits or when nothing has
// been sent for testenv.StallLimit.
func (k *killRun) waitSent(proc *serveProcess, atLeast int, inFlight bool) map[store.OutboxStatus]int {
	k.t.Helper()
	var c map[store.OutboxStatus]int
	exited := false
	testenv.WaitFor(k.t, fmt.Sprintf("%d messages sent or unknown", atLeast), func() (int, bool) {
		c = k.counts()
		done := c[store.OutboxSent] + c[store.OutboxUnknown]
		exited = proc.cmd.ProcessState != nil
		return done, exited || done >= atLeast && (!inFlight || c[store.OutboxSending] > 0 || done == k.n)
	})
	if exited {
		k.t.Fatalf("counts %v, want %d sent; sockmail exited: %v\nsockmail output:\n%s", c, atLeast, exited, proc.out.String())
	}
	return c
}

// killAfter starts sockmail, kills it with SIGKILL once atLeast messages
// are sent while others are in flight, and records the items the dead
// process held, read from the store after the kill.
func (k *killRun) killAfter(atLeast int) {
	t := k.t
	proc := startServe(t, k.env)
	k.outs = append(k.outs, proc.out)
	k.waitSent(proc, atLeast, true)
	if err := proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	proc.cmd.Wait()
	dead := time.Now()                                 // SQLite: the children time leases by this clock too
	owner := fmt.Sprintf(":%d:", proc.cmd.Process.Pid) // DefaultOwner is host:pid:random
	c := k.counts()
	sending, err := k.st.ListOutbox(context.Background(), store.OutboxFilter{Status: store.OutboxSending, Limit: store.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range sending {
		if _, earlier := k.killed[it.LeaseOwner]; !earlier {
			if !strings.Contains(it.LeaseOwner, owner) {
				t.Errorf("item %d is sending under %q, not a killed process (pid %d)", it.ID, it.LeaseOwner, proc.cmd.Process.Pid)
			}
			k.killed[it.LeaseOwner] = dead
		}
		k.inFlight[it.ID] = true
	}
	t.Logf("SIGKILL after %d sent: counts %v (%d claimed, in flight)", atLeast, c, c[store.OutboxSending])
	if c[store.OutboxSent]+c[store.OutboxSending]+c[store.OutboxQueued]+c[store.OutboxUnknown] != k.n {
		t.Errorf("after the kill: counts %v do not add up to %d", c, k.n)
	}
}

// checkUnknown checks the unknown items and returns their Message-IDs.
// An unknown item is one whose attempt marked the end of its message sent
// and never recorded an outcome: killed, or (on a starved machine) run
// past its lease; or whose server did not answer the end of the message.
// None is sent again.
func (k *killRun) checkUnknown(unknown int) map[string]bool {
	t := k.t
	unknownIDs := map[string]bool{}
	items, err := k.st.ListOutbox(context.Background(), store.OutboxFilter{Status: store.OutboxUnknown, Limit: store.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		unknownIDs[it.MessageID] = true
		lostMark := it.LastError == store.DataSentLostError && it.TakenOverFrom != ""
		if !lostMark && !strings.Contains(it.LastError, "outcome unknown") {
			t.Errorf("unknown item %d: last error %q, taken over from %q", it.ID, it.LastError, it.TakenOverFrom)
		}
	}
	if len(unknownIDs) != unknown {
		t.Errorf("%d unknown items listed, %d counted", len(unknownIDs), unknown)
	}
	return unknownIDs
}

// tookOver reports whether send id, or an attempt before it (ParentID),
// begins with the take-over note.
func (k *killRun) tookOver(ctx context.Context, id int64) bool {
	for hops := 0; hops < 100; hops++ {
		snd, err := k.st.Send(ctx, id)
		if err != nil {
			k.t.Fatal(err)
		}
		if len(snd.Events) > 0 && strings.HasPrefix(snd.Events[0].Line, "taken over from") {
			return true
		}
		if snd.ParentID == nil {
			return false
		}
		id = *snd.ParentID
	}
	return false
}

// checkInFlight checks that each item in flight at a kill is now unknown
// (settled from the killed process's mark), or sent (or unknown by its
// own outcome) by an attempt that notes the take-over, and returns how
// many were settled and how many taken over.
func (k *killRun) checkInFlight() (takenOver, unknown int) {
	t := k.t
	ctx := context.Background()
	for id := range k.inFlight {
		it, err := k.st.OutboxItem(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case it.Status == store.OutboxUnknown && !k.killed[it.TakenOverFrom].IsZero():
			unknown++
		case it.Status == store.OutboxUnknown && it.TakenOverFrom == "" && it.LastSendID != nil && k.tookOver(ctx, *it.LastSendID):
			// Taken over and sent again, and that attempt's own end of
			// message went unanswered within its time limit (a starved
			// machine): unknown by its own outcome, not sent a third
			// time. Seen once in CI beside the race detector.
			takenOver++
		case it.Status == store.OutboxSent && it.LastSendID != nil:
			// The take-over attempt carries the note; when it failed
			// for a while (a busy machine), a later retry sent the item,
			// and the note is on an attempt before it (ParentID).
			if !k.tookOver(ctx, *it.LastSendID) {
				t.Errorf("item %d, in flight at a kill, was sent by send %d, and no attempt before it notes the take-over", id, *it.LastSendID)
			}
			takenOver++
		default:
			t.Errorf("item %d, in flight at a kill: %s (taken over from %q)", id, it.Status, it.TakenOverFrom)
		}
	}
	return takenOver, unknown
}

// checkTakeOverNotes checks the other direction: every attempt that,
// after a kill, notes taking an item over from the killed process is of
// an item counted in flight at that kill, so none was missed. (A process
// may also take over from itself while alive: on a starved machine an
// attempt can outlast its lease. Those notes are older than the kill and
// only counted.)
func (k *killRun) checkTakeOverNotes() {
	t := k.t
	ctx := context.Background()
	inFlightIDs := map[string]bool{}
	for id := range k.inFlight {
		it, err := k.st.OutboxItem(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		inFlightIDs[it.MessageID] = true
	}
	whileAlive := 0
	for before := int64(0); ; {
		page, err := k.st.ListSends(ctx, store.SendFilter{Source: "contact", Query: "taken over from", Limit: store.MaxSendLimit, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		for _, sum := range page.Sends {
			snd, err := k.st.Send(ctx, sum.ID)
			if err != nil {
				t.Fatal(err)
			}
			dead, ok := k.killedOwnerNoted(snd)
			switch {
			case !ok:
			case snd.CreatedAt.Before(dead):
				whileAlive++
			case !inFlightIDs[noteMessageID(snd)]:
				t.Errorf("send %d took over %s from a killed process after the kill, but its item was not counted in flight: %q", snd.ID, noteMessageID(snd), snd.Events[0].Line)
			}
		}
		if page.NextBefore == 0 {
			break
		}
		before = page.NextBefore
	}
	if whileAlive > 0 {
		t.Logf("%d attempts took over from a process still alive (an attempt outlasted its lease)", whileAlive)
	}
}

// killedOwnerNoted returns when the killed process that snd's take-over
// note names was dead by, and whether it names one.
func (k *killRun) killedOwnerNoted(snd *store.Send) (time.Time, bool) {
	if len(snd.Events) == 0 {
		return time.Time{}, false
	}
	for owner, dead := range k.killed {
		if strings.HasPrefix(snd.Events[0].Line, "taken over from "+owner+",") {
			return dead, true
		}
	}
	return time.Time{}, false
}

// noteMessageID returns the Message-ID a take-over note ends with.
func noteMessageID(snd *store.Send) string {
	line := snd.Events[0].Line
	if i := strings.LastIndexByte(line, '<'); i >= 0 {
		return strings.TrimSuffix(line[i+1:], ">")
	}
	return ""
}

// checkMaildir waits for every message not unknown (longer for the
// unknown ones Postfix may still be delivering) and checks that each
// arrived once, by token and by Message-ID.
func (k *killRun) checkMaildir(unknownIDs map[string]bool) (delivered, dups int, missing []string, unknownDelivered int) {
	t := k.t
	settle := 1500 * time.Millisecond
	if len(unknownIDs) > 0 {
		settle = 4 * time.Second
	}
	k.counter.WaitDistinct(t, k.n-len(unknownIDs), settle)
	tokens, total := k.counter.Counts()
	ids := k.counter.MessageIDs()
	var dupList []string
	for i := range k.n {
		tok, id := k.token(i), k.msgIDs[i]
		switch c := tokens[tok]; {
		case c == 0 && unknownIDs[id]:
			missing = append(missing, tok)
		case c == 0:
			t.Errorf("message %s lost (its item is not unknown)", tok)
		case c > 1:
			dups += c - 1
			dupList = append(dupList, fmt.Sprintf("%s×%d", tok, c))
		}
		if tokens[tok] > 0 {
			delivered++
			if unknownIDs[id] {
				unknownDelivered++
			}
		}
		if ids[id] != tokens[tok] {
			t.Errorf("message %s: %d files but %d with its Message-ID", tok, tokens[tok], ids[id])
		}
	}
	if dups != 0 || total != len(ids) {
		t.Errorf("%d duplicates %v (%d files, %d distinct Message-IDs): want none%s", dups, dupList, total, len(ids), k.explainDuplicates(tokens))
	}
	if len(tokens) != delivered || len(ids) != delivered {
		t.Errorf("%d distinct tokens, %d distinct Message-IDs; want %d", len(tokens), len(ids), delivered)
	}
	return delivered, dups, missing, unknownDelivered
}

// explainDuplicates tells, for each message delivered more than once,
// its outbox item and every attempt at it, each with its first and last
// transcript lines: what a failure needs to be understood.
func (k *killRun) explainDuplicates(tokens map[string]int) string {
	ctx := context.Background()
	dup := map[string]bool{}
	for i := range k.n {
		if tokens[k.token(i)] > 1 {
			dup[k.msgIDs[i]] = true
		}
	}
	var sb strings.Builder
	var dupItems []string
	for before := int64(0); ; {
		items, err := k.st.ListOutbox(ctx, store.OutboxFilter{Limit: store.MaxListLimit, Before: before})
		if err != nil || len(items) == 0 {
			break
		}
		for _, it := range items {
			if !dup[it.MessageID] {
				continue
			}
			dupItems = append(dupItems, fmt.Sprintf("item=%d ", it.ID))
			fmt.Fprintf(&sb, "\nitem %d <%s>: %s, %d attempts, last error %q, taken over from %q", it.ID, it.MessageID, it.Status, it.Attempts, it.LastError, it.TakenOverFrom)
			for id, hops := it.LastSendID, 0; id != nil && hops < 20; hops++ {
				snd, err := k.st.Send(ctx, *id)
				if err != nil {
					break
				}
				fmt.Fprintf(&sb, "\n  send %d %s at %s:", snd.ID, snd.Status, snd.CreatedAt.Format("15:04:05.000"))
				for j, e := range snd.Events {
					if j < 3 || j >= len(snd.Events)-8 {
						fmt.Fprintf(&sb, "\n    %s %s", e.Offset, e.Line)
					}
				}
				id = snd.ParentID
			}
		}
		before = items[len(items)-1].ID
	}
	for i, out := range k.outs {
		for line := range strings.Lines(out.String()) {
			if strings.Contains(line, "level=ERROR") || slices.ContainsFunc(dupItems, func(m string) bool { return strings.Contains(line, m) }) {
				fmt.Fprintf(&sb, "\nprocess %d: %s", i+1, strings.TrimSpace(line))
			}
		}
	}
	return sb.String()
}
