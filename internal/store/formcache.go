package store

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// FormCacheTTL is how long PublicForm keeps a form it read.
const FormCacheTTL = time.Second

// maxCachedForms bounds the forms PublicForm keeps (only forms that
// exist are kept, so visitors' made-up slugs cannot fill it).
const maxCachedForms = 1024

// formCache is what PublicForm keeps; its zero value is ready.
type formCache struct {
	// gen changes after every change of a form through this Store; an
	// entry read under an older generation is not used.
	gen     atomic.Uint64
	mu      sync.Mutex
	entries map[string]cachedForm
}

type cachedForm struct {
	f   Form
	gen uint64
	at  time.Time
}

// changed forgets what the cache holds; SaveForm and DeleteForm call it
// once their write is done.
func (c *formCache) changed() { c.gen.Add(1) }

// PublicForm is FormBySlug for the public form endpoints, which read the
// form at every token request and every post: a form it read is kept for
// FormCacheTTL (a second), so that a burst of posts reads it once (the
// read was about an eighth of a post's CPU on SQLite). SaveForm and
// DeleteForm through this Store take effect at once; a change made by
// another instance sharing a PostgreSQL database is seen within
// FormCacheTTL. The form returned is the caller's own copy.
func (s *Store) PublicForm(ctx context.Context, slug string) (*Form, error) {
	now := time.Now()
	gen := s.forms.gen.Load()
	s.forms.mu.Lock()
	e, ok := s.forms.entries[slug]
	s.forms.mu.Unlock()
	if ok && e.gen == gen && now.Sub(e.at) < s.formTTL {
		return e.f.clone(), nil
	}
	f, err := s.FormBySlug(ctx, slug)
	if err != nil {
		return nil, err
	}
	s.forms.mu.Lock()
	defer s.forms.mu.Unlock()
	if s.forms.entries == nil || len(s.forms.entries) >= maxCachedForms {
		s.forms.entries = map[string]cachedForm{}
	}
	s.forms.entries[slug] = cachedForm{f: *f.clone(), gen: gen, at: now}
	return f, nil
}

// clone returns a copy of f that shares no slice with it.
func (f *Form) clone() *Form {
	c := *f
	c.Recipients = slices.Clone(f.Recipients)
	c.AllowedOrigins = slices.Clone(f.AllowedOrigins)
	c.Fields = slices.Clone(f.Fields)
	c.CaptchaSecretEnc = slices.Clone(f.CaptchaSecretEnc)
	return &c
}
