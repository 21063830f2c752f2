// Package delivery is sockmail's send service: the one place that
// resolves a target (the built-in capture server, a saved server profile,
// a server typed in, or the server of an earlier send) into an SMTP
// configuration, builds and finishes the history record of a send, and
// runs sends in the background with a context that can be cancelled,
// shutting them down in order. The web app, the outbox and
// "sockmail send --store" all use it.
package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"sockmail/internal/store"
	"sockmail/smtp"
)

// SendFunc runs one SMTP send. smtp.SendMail is the real one; tests may
// pass another.
type SendFunc func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error)

// Store records sends. *store.Store is one.
type Store interface {
	CreateSend(ctx context.Context, s *store.Send) error
	FinishSend(ctx context.Context, s *store.Send) error
}

// Errors of running sends.
var (
	// ErrClosed: the service is shutting down and takes no new sends.
	ErrClosed = errors.New("delivery: shutting down")
	// ErrNotRunning: the send is not running in this process (it has
	// ended, or another instance runs it).
	ErrNotRunning = errors.New("delivery: the send is not running here")
)

// storeTimeout bounds the write of a send's outcome, which happens even
// when the send was aborted.
const storeTimeout = 30 * time.Second

// Job is a send ready to run: its record (Send, status running), the
// configuration with its transcript, the envelope and the message.
type Job struct {
	Send     *store.Send
	Config   smtp.Config
	Envelope smtp.Envelope
	Message  []byte
	Options  smtp.SendOptions
}

// Deps is what a Service needs. Zero fields take the defaults.
type Deps struct {
	Store Store
	// Resolver resolves targets (Service.Resolve); optional.
	Resolver *Resolver
	// Send runs sends; smtp.SendMail if nil.
	Send SendFunc
	// Now returns the time; time.Now if nil.
	Now func() time.Time
	// Timeout bounds one send; 2 minutes if 0.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Live is a send running in this process: its transcript, readable and
// subscribable while the send runs, and a channel closed once its outcome
// is stored.
type Live struct {
	tr     *smtp.Transcript
	done   chan struct{}
	start  time.Time
	cancel context.CancelCauseFunc
}

// Transcript returns the send's transcript so far.
func (l *Live) Transcript() *smtp.Transcript { return l.tr }

// Done is closed once the send's outcome is stored.
func (l *Live) Done() <-chan struct{} { return l.done }

// Service runs sends in the background and records them.
type Service struct {
	d Deps

	mu      sync.Mutex
	live    map[int64]*Live
	wg      sync.WaitGroup
	baseCtx context.Context
	abort   context.CancelFunc
	closing chan struct{}
	closed  bool
}

// New builds a Service.
func New(d Deps) *Service {
	if d.Send == nil {
		d.Send = smtp.SendMail
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Timeout <= 0 {
		d.Timeout = 2 * time.Minute
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{d: d, live: map[int64]*Live{}, baseCtx: ctx, abort: cancel, closing: make(chan struct{})}
}

// Resolve resolves a target with the service's Resolver.
func (s *Service) Resolve(ctx context.Context, t Target) (smtp.Config, error) {
	if s.d.Resolver == nil {
		return smtp.Config{}, &TargetError{Field: "server", Msg: "No server can be resolved here.", Err: ErrBadTarget}
	}
	return s.d.Resolver.Resolve(ctx, t)
}

// CaptureAddr returns the built-in capture server's address, "" when it
// is off or there is no Resolver.
func (s *Service) CaptureAddr() string {
	if s.d.Resolver == nil {
		return ""
	}
	return s.d.Resolver.CaptureAddr()
}

// Now returns the service's time.
func (s *Service) Now() time.Time { return s.d.Now() }

// Timeout returns the limit of one send.
func (s *Service) Timeout() time.Duration { return s.d.Timeout }

// Closing is closed when Shutdown begins; event streams end on it.
func (s *Service) Closing() <-chan struct{} { return s.closing }

// Start records job's send (ctx bounds that write) and runs it in the
// background, bounded by the send timeout, and returns its id. After
// Shutdown it returns ErrClosed.
func (s *Service) Start(ctx context.Context, job *Job) (int64, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	if err := s.d.Store.CreateSend(ctx, job.Send); err != nil {
		return 0, fmt.Errorf("delivery: create send: %w", err)
	}
	if job.Config.Transcript == nil {
		job.Config.Transcript = smtp.NewTranscript()
	}
	sctx, cancel := context.WithCancelCause(s.baseCtx)
	l := &Live{tr: job.Config.Transcript, done: make(chan struct{}), start: s.d.Now(), cancel: cancel}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel(ErrClosed)
		// Recorded, so not left running: it never started.
		s.record(job, l, nil, fmt.Errorf("%w before the send began: %w", ErrClosed, context.Canceled))
		return 0, ErrClosed
	}
	s.live[job.Send.ID] = l
	s.wg.Add(1)
	s.mu.Unlock()
	s.d.Logger.Info("send started", "send", job.Send.ID, "server", job.Config.Addr, "tls", job.Config.TLS.String(),
		"rcpts", len(job.Envelope.To), "stop_after", string(job.Options.StopAfter))
	go s.run(sctx, job, l)
	return job.Send.ID, nil
}

func (s *Service) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Live returns the live state of a send running in this process, nil if
// it is not running here.
func (s *Service) Live(id int64) *Live {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[id]
}

// Cancel aborts a send running in this process: the transcript notes who
// cancelled it and when, and the send ends with status aborted. It
// returns ErrNotRunning when the send does not run here. It does not wait:
// Live(id).Done() is closed once the outcome is stored.
func (s *Service) Cancel(id int64, by string) error {
	l := s.Live(id)
	if l == nil {
		return ErrNotRunning
	}
	phase := smtp.PhaseConnect // the note goes with the phase the send was in
	if evs := l.tr.Events(); len(evs) > 0 {
		phase = evs[len(evs)-1].Phase
	}
	l.tr.Info(phase, "cancelled by %s after %d ms", by, s.d.Now().Sub(l.start).Milliseconds())
	l.cancel(fmt.Errorf("delivery: cancelled by %s", by))
	s.d.Logger.Info("send cancelled", "send", id, "by", by)
	return nil
}

// run performs one send and stores its outcome and transcript, whatever
// happens (a timeout, a cancel or a shutdown aborts it; the partial
// transcript is kept).
func (s *Service) run(ctx context.Context, job *Job, l *Live) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.live, job.Send.ID)
		s.mu.Unlock()
		close(l.done)
	}()
	ctx, cancel := context.WithTimeout(ctx, s.d.Timeout)
	defer cancel()
	defer l.cancel(nil)
	res, err := s.sendSafely(ctx, job)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		l.tr.Info(smtp.PhaseQuit, "the send took longer than the limit of %s and was stopped", s.d.Timeout)
	}
	s.record(job, l, res, err)
}

// record finishes and stores a send's record.
func (s *Service) record(job *Job, l *Live, res *smtp.Result, err error) {
	snd := job.Send
	Finish(snd, res, err, l.tr, l.start, s.d.Now)
	sctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := s.d.Store.FinishSend(sctx, snd); err != nil {
		s.d.Logger.Error("store send outcome", "send", snd.ID, "err", err)
	}
	s.d.Logger.Info("send finished", "send", snd.ID, "status", snd.Status, "queue_id", snd.QueueID, "ms", snd.DurationMS, "err", snd.Error)
}

// sendSafely runs the send, turning a panic into an error so that the
// send is still recorded.
func (s *Service) sendSafely(ctx context.Context, job *Job) (res *smtp.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.d.Logger.Error("panic in send", "send", job.Send.ID, "panic", r)
			err = fmt.Errorf("delivery: send panicked: %v", r)
		}
	}()
	return s.d.Send(ctx, job.Config, job.Envelope, bytes.NewReader(job.Message), job.Options)
}

// Shutdown stops new sends and waits for those in flight until ctx is
// done; then it aborts them and waits for them to record their (partial)
// transcripts.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.d.Logger.Warn("aborting sends still running at shutdown")
		s.abort()
		<-done
		return fmt.Errorf("delivery: shutdown: sends aborted: %w", ctx.Err())
	}
}
