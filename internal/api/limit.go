package api

import (
	"sync"
	"time"
)

// Limiter is a per-token rate limit: a token bucket for each key (the
// token's id) that holds at most Burst requests and refills at Rate per
// second. The buckets live in this process's memory: instances sharing a
// database each allow the rate, and a restart refills every bucket.
type Limiter struct {
	rate  float64
	burst float64
	now   func() time.Time
	max   int

	mu      sync.Mutex
	buckets map[int64]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter returns a limiter of rate requests per second with bursts of
// burst, reading the time from now (time.Now if nil).
func NewLimiter(rate float64, burst int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{rate: rate, burst: float64(burst), now: now, max: 10000, buckets: map[int64]*bucket{}}
}

// Allow takes one request from key's bucket. When the bucket is empty it
// returns false and how long until a request is allowed again.
func (l *Limiter) Allow(key int64) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.max { // tokens are few; bound memory anyway
			clear(l.buckets)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(l.burst, b.tokens+el.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}
