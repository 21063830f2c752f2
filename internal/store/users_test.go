package store

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestUsers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		n, err := s.CountUsers(ctx)
		if err != nil || n != 0 {
			t.Fatalf("CountUsers on empty store = %d, %v", n, err)
		}
		a, err := s.CreateUser(ctx, "Admin@Example.org", "hash-a")
		if err != nil {
			t.Fatal(err)
		}
		if a.ID == 0 || a.Email != "Admin@Example.org" || a.PasswordHash != "hash-a" || time.Since(a.CreatedAt) > time.Minute {
			t.Fatalf("CreateUser = %+v", a)
		}
		b, err := s.CreateUser(ctx, "b@example.org", "hash-b")
		if err != nil {
			t.Fatal(err)
		}
		for _, dup := range []string{"Admin@Example.org", "admin@example.org", "ADMIN@EXAMPLE.ORG"} {
			_, err := s.CreateUser(ctx, dup, "x")
			wantErr(t, "CreateUser duplicate "+dup, err, ErrExists)
		}
		if n, err := s.CountUsers(ctx); err != nil || n != 2 {
			t.Fatalf("CountUsers = %d, %v; want 2", n, err)
		}

		lookups := []struct {
			name string
			get  func() (*User, error)
			want *User
			err  error
		}{
			{"by email", func() (*User, error) { return s.UserByEmail(ctx, "Admin@Example.org") }, a, nil},
			{"by email other case", func() (*User, error) { return s.UserByEmail(ctx, "admin@EXAMPLE.org") }, a, nil},
			{"by email missing", func() (*User, error) { return s.UserByEmail(ctx, "c@example.org") }, nil, ErrNotFound},
			{"by id", func() (*User, error) { return s.UserByID(ctx, b.ID) }, b, nil},
			{"by id missing", func() (*User, error) { return s.UserByID(ctx, b.ID+100) }, nil, ErrNotFound},
		}
		for _, tt := range lookups {
			got, err := tt.get()
			wantErr(t, tt.name, err, tt.err)
			if tt.err == nil && *got != *tt.want {
				t.Errorf("%s = %+v, want %+v", tt.name, got, tt.want)
			}
			if tt.err != nil && got != nil {
				t.Errorf("%s returned %+v with an error", tt.name, got)
			}
		}

		if err := s.SetPasswordHash(ctx, a.ID, "hash-a2"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.UserByID(ctx, a.ID); got.PasswordHash != "hash-a2" {
			t.Errorf("after SetPasswordHash hash = %q", got.PasswordHash)
		}
		if got, _ := s.UserByID(ctx, b.ID); got.PasswordHash != "hash-b" {
			t.Errorf("SetPasswordHash changed another user: %q", got.PasswordHash)
		}
		wantErr(t, "SetPasswordHash missing", s.SetPasswordHash(ctx, 9999, "x"), ErrNotFound)

		all, err := s.Users(ctx)
		if err != nil || len(all) != 2 || all[0].ID != a.ID || all[1].ID != b.ID {
			t.Fatalf("Users = %+v, %v", all, err)
		}
	})
}

func TestSessions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		u1, _ := s.CreateUser(ctx, "u1@example.org", "h")
		u2, _ := s.CreateUser(ctx, "u2@example.org", "h")
		now := time.Now()
		for _, x := range []struct {
			id   string
			user int64
			exp  time.Time
		}{
			{"s1", u1.ID, now.Add(time.Hour)},
			{"s2", u1.ID, now.Add(2 * time.Hour)},
			{"s3", u2.ID, now.Add(time.Hour)},
			{"old", u2.ID, now.Add(-time.Second)},
		} {
			if err := s.CreateSession(ctx, x.id, x.user, x.exp); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateSession(ctx, "s1", u2.ID, now.Add(time.Hour)); err == nil {
			t.Error("CreateSession with an id in use succeeded")
		}
		if err := s.CreateSession(ctx, "orphan", 99999, now.Add(time.Hour)); err == nil {
			t.Error("CreateSession for a missing user succeeded")
		}

		check := func(label, id string, at time.Time, want int64) {
			t.Helper()
			u, err := s.SessionUser(ctx, id, at)
			if want == 0 {
				wantErr(t, label, err, ErrNotFound)
				return
			}
			if err != nil || u.ID != want {
				t.Fatalf("%s: SessionUser(%q) = %+v, %v; want user %d", label, id, u, err, want)
			}
		}
		check("valid", "s1", now, u1.ID)
		check("other user", "s3", now, u2.ID)
		check("expired", "old", now, 0)
		check("at expiry", "s1", now.Add(time.Hour), 0)
		check("just before expiry", "s1", now.Add(time.Hour-time.Millisecond), u1.ID)
		check("absent", "nope", now, 0)

		// The id is stored hashed.
		var stored int
		if err := s.r.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM sessions WHERE id_hash = ?`), "s1").Scan(&stored); err != nil || stored != 0 {
			t.Errorf("raw session id found in the database (%d, %v)", stored, err)
		}

		wantErr(t, "DeleteSession", s.DeleteSession(ctx, "s1"), nil)
		check("deleted", "s1", now, 0)
		check("sibling kept", "s2", now, u1.ID)
		wantErr(t, "DeleteSession again", s.DeleteSession(ctx, "s1"), nil)

		wantErr(t, "DeleteUserSessions", s.DeleteUserSessions(ctx, u1.ID), nil)
		check("user sessions gone", "s2", now, 0)
		check("other user's session kept", "s3", now, u2.ID)

		wantErr(t, "PurgeExpiredSessions", s.PurgeExpiredSessions(ctx, now), nil)
		var left int
		s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions`).Scan(&left)
		if left != 1 {
			t.Errorf("after purge %d sessions left, want 1 (s3)", left)
		}
		wantErr(t, "PurgeExpiredSessions later", s.PurgeExpiredSessions(ctx, now.Add(2*time.Hour)), nil)
		s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions`).Scan(&left)
		if left != 0 {
			t.Errorf("after second purge %d sessions left, want 0", left)
		}
	})
}

func TestAttempts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		for _, a := range []struct {
			key string
			at  time.Duration
		}{
			{"login:user:x", 0}, {"login:user:x", time.Minute}, {"login:user:x", 2 * time.Minute},
			{"login:user:x", 10 * time.Minute}, {"login:ip:1.2.3.4", time.Minute}, {"contact:form:3", 5 * time.Minute},
		} {
			if err := recordAttempt(ctx, s, a.key, base.Add(a.at)); err != nil {
				t.Fatal(err)
			}
		}
		count := func(key string, since time.Duration) int {
			t.Helper()
			n, err := s.CountAttempts(ctx, key, base.Add(since))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		tests := []struct {
			key   string
			since time.Duration
			want  int
		}{
			{"login:user:x", -time.Hour, 4},
			{"login:user:x", 0, 4},                // since is inclusive
			{"login:user:x", time.Microsecond, 3}, // times are kept to the microsecond
			{"login:user:x", time.Minute, 3},
			{"login:user:x", 3 * time.Minute, 1},
			{"login:user:x", 11 * time.Minute, 0},
			{"login:user:X", -time.Hour, 0}, // keys are exact
			{"login:ip:1.2.3.4", 0, 1},
			{"contact:form:3", 0, 1},
			{"nothing", 0, 0},
		}
		for _, tt := range tests {
			if got := count(tt.key, tt.since); got != tt.want {
				t.Errorf("CountAttempts(%q, base%+v) = %d, want %d", tt.key, tt.since, got, tt.want)
			}
		}
		wantErr(t, "ClearAttempts", s.ClearAttempts(ctx, "login:user:x"), nil)
		if got := count("login:user:x", -time.Hour); got != 0 {
			t.Errorf("after ClearAttempts count = %d", got)
		}
		if got := count("login:ip:1.2.3.4", -time.Hour); got != 1 {
			t.Errorf("ClearAttempts cleared another key: %d", got)
		}
		wantErr(t, "PurgeAttempts", s.PurgeAttempts(ctx, base.Add(2*time.Minute)), nil)
		if got := count("login:ip:1.2.3.4", -time.Hour); got != 0 {
			t.Errorf("PurgeAttempts kept an old attempt")
		}
		if got := count("contact:form:3", -time.Hour); got != 1 {
			t.Errorf("PurgeAttempts removed a recent attempt")
		}
	})
}

func TestSettings(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		_, err := s.Setting(ctx, "k")
		wantErr(t, "Setting absent", err, ErrNotFound)

		binary := []byte{0, 1, 2, 0xff, 0xfe, 'x', 0}
		got, err := s.SetSettingIfAbsent(ctx, "k", binary)
		if err != nil || string(got) != string(binary) {
			t.Fatalf("SetSettingIfAbsent first = %q, %v", got, err)
		}
		got, err = s.SetSettingIfAbsent(ctx, "k", []byte("other"))
		if err != nil || string(got) != string(binary) {
			t.Fatalf("SetSettingIfAbsent second = %q, %v; want the first value", got, err)
		}
		if got, err := s.Setting(ctx, "k"); err != nil || string(got) != string(binary) {
			t.Fatalf("Setting = %q, %v", got, err)
		}
		if err := s.SetSetting(ctx, "k", []byte("replaced")); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Setting(ctx, "k"); string(got) != "replaced" {
			t.Fatalf("after SetSetting = %q", got)
		}
		if err := s.SetSetting(ctx, "empty", nil); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Setting(ctx, "empty"); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("empty setting = %#v, %v; want non-nil empty", got, err)
		}
	})
}

func TestSetSettingIfAbsentRace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		const n = 8
		for round := range 5 {
			key := "session-key-" + strings.Repeat("x", round)
			results := make(chan string, n)
			start := make(chan struct{})
			for i := range n {
				go func() {
					<-start
					v, err := s.SetSettingIfAbsent(ctx, key, []byte{byte('a' + i)})
					if err != nil {
						t.Error(err)
					}
					results <- string(v)
				}()
			}
			close(start)
			var first string
			for i := range n {
				v := <-results
				if i == 0 {
					first = v
				} else if v != first {
					t.Fatalf("round %d: goroutines got different values %q and %q", round, first, v)
				}
			}
			if got, err := s.Setting(ctx, key); err != nil || string(got) != first {
				t.Fatalf("stored %q, %v; goroutines got %q", got, err, first)
			}
		}
	})
}

// Two stores on one database stand for two instances starting together:
// each proposes its own key, and both must end up with the same one.
func TestSetSettingIfAbsentTwoInstances(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, dsn string) {
		ctx := ctxT(t)
		var stores [2]*Store
		for i := range stores {
			s, err := Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			stores[i] = s
		}
		for round := range 10 {
			key := fmt.Sprintf("key-%d", round)
			var got [2][]byte
			var wg sync.WaitGroup
			for i, s := range stores {
				wg.Add(1)
				go func() {
					defer wg.Done()
					v, err := s.SetSettingIfAbsent(ctx, key, []byte(fmt.Sprintf("instance-%d", i)))
					if err != nil {
						t.Error(err)
					}
					got[i] = v
				}()
			}
			wg.Wait()
			if string(got[0]) != string(got[1]) || len(got[0]) == 0 {
				t.Fatalf("round %d: instances disagree: %q vs %q", round, got[0], got[1])
			}
		}
	})
}

// Text typed by a visitor (a login name, a filter) may hold NUL or invalid
// UTF-8. PostgreSQL refuses such TEXT arguments; the store must neither
// fail nor mix such values up.
func TestHostileArguments(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		hostileUsers(t, s)
		hostileAttempts(t, s)
		hostileSettingsAndProfiles(t, s)
		hostileSendFilters(t, s)
	})
}

// hostileUsers: users and sessions looked up by hostile text.
func hostileUsers(t *testing.T, s *Store) {
	t.Helper()
	ctx := ctxT(t)
	for _, email := range []string{"\x00@example.org", "\xff@example.org", "\x01@example.org", "\xc3\x28@EXAMPLE.org"} {
		u, err := s.CreateUser(ctx, email, "hash\x00\xff")
		if err != nil {
			t.Fatalf("CreateUser(%q): %v", email, err)
		}
		got, err := s.UserByEmail(ctx, email)
		if err != nil || got.ID != u.ID || got.Email != email || got.PasswordHash != "hash\x00\xff" {
			t.Fatalf("UserByEmail(%q) = %+v, %v", email, got, err)
		}
		_, err = s.CreateUser(ctx, email, "h")
		wantErr(t, "CreateUser duplicate hostile email", err, ErrExists)
	}
	_, err := s.UserByEmail(ctx, "\x00\xff nobody")
	wantErr(t, "UserByEmail hostile absent", err, ErrNotFound)
	_, err = s.SessionUser(ctx, "\x00\xff", time.Now())
	wantErr(t, "SessionUser hostile", err, ErrNotFound)
}

// hostileAttempts: throttle keys holding hostile text stay apart.
func hostileAttempts(t *testing.T, s *Store) {
	t.Helper()
	ctx := ctxT(t)
	now := time.Now()
	keys := []string{"login:user:\x00", "login:user:\xff", "login:user:", "login:user:\x01"}
	for i, k := range keys {
		for range i + 1 {
			if err := recordAttempt(ctx, s, k, now); err != nil {
				t.Fatalf("recordAttempt(%q): %v", k, err)
			}
		}
	}
	for i, k := range keys {
		if n, err := s.CountAttempts(ctx, k, now.Add(-time.Minute)); err != nil || n != i+1 {
			t.Errorf("CountAttempts(%q) = %d, %v; want %d", k, n, err, i+1)
		}
	}
	if err := s.ClearAttempts(ctx, keys[0]); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.CountAttempts(ctx, keys[0], now.Add(-time.Minute)); n != 0 {
		t.Errorf("ClearAttempts of a hostile key left %d", n)
	}
}

// hostileSettingsAndProfiles: settings and profiles with hostile keys and fields.
func hostileSettingsAndProfiles(t *testing.T, s *Store) {
	t.Helper()
	ctx := ctxT(t)
	if err := s.SetSetting(ctx, "\x00\xff", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Setting(ctx, "\x00\xff"); err != nil || string(v) != "v" {
		t.Errorf("hostile setting key: %q, %v", v, err)
	}
	if v, err := s.SetSettingIfAbsent(ctx, "\xfe", []byte("w")); err != nil || string(v) != "w" {
		t.Errorf("hostile SetSettingIfAbsent: %q, %v", v, err)
	}

	p := &Profile{Name: "\x00name\xff", Host: "h\x00", TLSMode: "\xff", AuthMech: "\x00", Username: "\xfe", HeloName: "\x01"}
	if err := s.SaveProfile(ctx, p); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ProfileByName(ctx, p.Name); err != nil || !reflect.DeepEqual(got, p) {
		t.Errorf("hostile profile: %+v, %v", got, err)
	}
}

// hostileSendFilters: history filters of hostile text find nothing, without error.
func hostileSendFilters(t *testing.T, s *Store) {
	t.Helper()
	ctx := ctxT(t)
	if err := s.CreateSend(ctx, &Send{Source: "web", MailFrom: "a@example.org", Subject: "x"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []SendFilter{
		{Sender: "\x00"}, {Recipient: "a\xff"}, {Server: "\x00\xff"}, {Query: "x \x00"}, {Query: "\xff"},
		{Status: "\x00"}, {Source: "\xff"},
	} {
		p, err := s.ListSends(ctx, f)
		if err != nil || p.Total != 0 {
			t.Errorf("ListSends(%+v) = total %d, %v; want 0, nil", f, p.Total, err)
		}
	}
}

// TestTakeAttemptUnderConcurrency: fifty callers at once against a limit
// of five get exactly five slots, on both backends; a caller refused by
// one limit records under none.
func TestTakeAttemptUnderConcurrency(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		now := time.Now()
		since := now.Add(-time.Hour)
		perAddr := func(i int) Limit { return Limit{Key: fmt.Sprintf("take:addr:%d", i%2), Max: 5} }
		perForm := Limit{Key: "take:form", Max: 8}
		const callers = 50
		var wg sync.WaitGroup
		results := make([]*Limit, callers)
		errs := make([]error, callers)
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = s.TakeAttempt(ctx, []Limit{perAddr(i), perForm, {Key: "take:off", Max: 0}}, now, since)
			}()
		}
		wg.Wait()
		taken := map[string]int{}
		for i := range callers {
			if errs[i] != nil {
				t.Fatalf("caller %d: %v", i, errs[i])
			}
			if results[i] == nil {
				taken[perAddr(i).Key]++
			}
		}
		// Two addresses of five each fit under the form's eight: 8 in all,
		// neither address over 5.
		if total := taken["take:addr:0"] + taken["take:addr:1"]; total != 8 || taken["take:addr:0"] > 5 || taken["take:addr:1"] > 5 {
			t.Errorf("slots taken %v, want 8 in all and at most 5 per address", taken)
		}
		for key, want := range map[string]int{"take:addr:0": taken["take:addr:0"], "take:addr:1": taken["take:addr:1"], "take:form": 8, "take:off": 0} {
			if n, err := s.CountAttempts(ctx, key, since); err != nil || n != want {
				t.Errorf("%s: %d attempts recorded, want %d (%v)", key, n, want, err)
			}
		}
		// Older attempts fall out of the window.
		if over, err := s.TakeAttempt(ctx, []Limit{perForm}, now, now.Add(time.Second)); err != nil || over != nil {
			t.Errorf("outside the window: over %v, %v", over, err)
		}
		if over, err := s.TakeAttempt(ctx, nil, now, since); err != nil || over != nil {
			t.Errorf("no limits: over %v, %v", over, err)
		}
	})
}

func TestReturnAttempt(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		for range 3 {
			if over, err := s.TakeAttempt(ctx, []Limit{{Key: "ret:a", Max: 10}, {Key: "ret:b", Max: 10}}, at, at.Add(-time.Hour)); err != nil || over != nil {
				t.Fatalf("TakeAttempt: %v %v", over, err)
			}
		}
		wantErr(t, "ReturnAttempt", s.ReturnAttempt(ctx, "ret:a", at), nil)
		wantErr(t, "ReturnAttempt at another time", s.ReturnAttempt(ctx, "ret:a", at.Add(time.Second)), nil)
		for key, want := range map[string]int{"ret:a": 2, "ret:b": 3} {
			if n, err := s.CountAttempts(ctx, key, at.Add(-time.Hour)); err != nil || n != want {
				t.Errorf("%s: %d attempts, want %d (%v)", key, n, want, err)
			}
		}
	})
}

// recordAttempt records one attempt under key, with no limit in the way.
func recordAttempt(ctx context.Context, s *Store, key string, at time.Time) error {
	_, err := s.TakeAttempt(ctx, []Limit{{Key: key, Max: math.MaxInt32}}, at, at)
	return err
}

// TestTakeAttemptGrowingDelays: with growing delays, the first Free
// attempts go at once, then each waits twice as long after the newest as
// the one before, up to MaxDelay; RetryAfter says how long. Times are
// given, not slept.
func TestTakeAttemptGrowingDelays(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		l := Limit{Key: "delay:a", Free: 3, Delay: 15 * time.Second, MaxDelay: time.Minute, Window: time.Hour}
		t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		steps := []struct {
			at    time.Duration
			admit bool
			retry time.Duration
		}{
			{0, true, 0}, {0, true, 0}, {0, true, 0},
			{0, false, 15 * time.Second},
			{14 * time.Second, false, time.Second},
			{15 * time.Second, true, 0},
			{30 * time.Second, false, 15 * time.Second}, // 30 s after the newest
			{45 * time.Second, true, 0},
			{100 * time.Second, false, 5 * time.Second}, // 60 s
			{105 * time.Second, true, 0},
			{164 * time.Second, false, time.Second}, // capped at one minute
			{165 * time.Second, true, 0},
		}
		for _, st := range steps {
			over, err := s.TakeAttempt(ctx, []Limit{l}, t0.Add(st.at), time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if admitted := over == nil; admitted != st.admit {
				t.Fatalf("at +%v: admitted %v, want %v", st.at, admitted, st.admit)
			}
			if over != nil && (over.Key != l.Key || over.RetryAfter != st.retry) {
				t.Errorf("at +%v: refused by %q, retry after %v, want %v", st.at, over.Key, over.RetryAfter, st.retry)
			}
		}
		// An hour after the burst, its attempts have left the window.
		if over, err := s.TakeAttempt(ctx, []Limit{l}, t0.Add(time.Hour+30*time.Second), time.Time{}); err != nil || over != nil {
			t.Errorf("after the window: %v, %v", over, err)
		}
		// A Max limit says when its oldest attempt leaves the window.
		m := Limit{Key: "delay:max", Max: 2, Window: 10 * time.Minute}
		for _, at := range []time.Duration{0, time.Minute} {
			if over, err := s.TakeAttempt(ctx, []Limit{m}, t0.Add(at), time.Time{}); err != nil || over != nil {
				t.Fatalf("max limit at +%v: %v, %v", at, over, err)
			}
		}
		if over, err := s.TakeAttempt(ctx, []Limit{m}, t0.Add(2*time.Minute), time.Time{}); err != nil || over == nil || over.RetryAfter != 8*time.Minute {
			t.Errorf("max limit full: %+v, %v; want a retry after 8m", over, err)
		}
	})
}

// TestTakeAttemptGrowingDelaysUnderConcurrency: thirty callers at the
// same instant against growing delays that let three through get exactly
// three slots, on both backends.
func TestTakeAttemptGrowingDelaysUnderConcurrency(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		now := time.Now()
		l := Limit{Key: "delay:burst", Free: 3, Delay: 15 * time.Second, Window: time.Hour}
		const callers = 30
		var wg sync.WaitGroup
		admitted := make([]bool, callers)
		errs := make([]error, callers)
		for i := range callers {
			wg.Go(func() {
				var over *Limit
				over, errs[i] = s.TakeAttempt(ctx, []Limit{l}, now, time.Time{})
				admitted[i] = over == nil
			})
		}
		wg.Wait()
		n := 0
		for i := range callers {
			if errs[i] != nil {
				t.Fatalf("caller %d: %v", i, errs[i])
			}
			if admitted[i] {
				n++
			}
		}
		if got, err := s.CountAttempts(ctx, l.Key, now.Add(-time.Hour)); n != 3 || got != 3 || err != nil {
			t.Errorf("%d admitted, %d recorded (%v); want 3", n, got, err)
		}
	})
}

// TestCreateUserEndsSetupCode: the first account, however it is made,
// deletes the first-run setup code in the same transaction.
func TestCreateUserEndsSetupCode(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		if _, err := s.SetSettingIfAbsent(ctx, SettingSetupCode, []byte("CODE")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateUser(ctx, "first@example.org", "hash"); err != nil {
			t.Fatal(err)
		}
		_, err := s.Setting(ctx, SettingSetupCode)
		wantErr(t, "setup code after the first account", err, ErrNotFound)
		// A refused duplicate changes nothing either.
		_, err = s.CreateUser(ctx, "FIRST@example.org", "hash")
		wantErr(t, "duplicate", err, ErrExists)
	})
}
