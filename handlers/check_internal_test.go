package handlers

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/store"
)

// endingCheckStore is a CheckStore whose one check ends while it is
// being read: the first read returns it running and, before returning,
// does what the runner does at the end (stores the outcome, then forgets
// the run); later reads return it finished.
type endingCheckStore struct {
	CheckStore
	runs  *checkRunner
	reads int
}

func (s *endingCheckStore) Check(ctx context.Context, id int64) (*store.Check, error) {
	s.reads++
	ck := &store.Check{ID: id, Target: "check.test", Started: time.Unix(1000, 0)}
	if s.reads == 1 {
		s.runs.mu.Lock()
		delete(s.runs.live, id)
		s.runs.mu.Unlock()
		return ck, nil
	}
	ck.Finished, ck.Worst = time.Unix(1002, 0), "pass"
	return ck, nil
}

// TestCheckAndLiveRunEndsBetweenReads: a check whose run ends between
// the page's read of it and its question to the runner is shown
// finished, not as a check running elsewhere with nothing found (which
// TestCheckDomainRerunCompare once saw as an empty report).
func TestCheckAndLiveRunEndsBetweenReads(t *testing.T) {
	runs := newCheckRunner()
	runs.live[7] = newLiveCheck()
	h := &Handler{checkRuns: runs}
	st := &endingCheckStore{runs: runs}
	h.checks = st
	c := echo.New().NewContext(httptest.NewRequest("GET", "/checks/7", nil), httptest.NewRecorder())
	ck, live, err := h.checkAndLive(c, "7")
	if err != nil {
		t.Fatal(err)
	}
	if ck.Running() || live != nil {
		t.Errorf("check running %v, live %v after its run ended between the reads; want it read again, finished", ck.Running(), live != nil)
	}
	if st.reads != 2 {
		t.Errorf("%d reads, want 2", st.reads)
	}
}
