package store

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestScratchSeed(t *testing.T) {
	dsn := os.Getenv("SCRATCH_DSN")
	if dsn == "" {
		t.Skip()
	}
	n, _ := strconv.Atoi(os.Getenv("SCRATCH_N"))
	ctx := context.Background()
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	if _, err := seed(ctx, s, n); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d in %v", n, time.Since(start))
}
