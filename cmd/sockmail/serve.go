//go:build !sendonly

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/errgroup"

	"sockmail/handlers"
	"sockmail/internal/alert"
	"sockmail/internal/capture"
	"sockmail/internal/config"
	"sockmail/internal/crypt"
	"sockmail/internal/delivery"
	"sockmail/internal/journal"
	"sockmail/internal/metrics"
	"sockmail/internal/monitor"
	"sockmail/internal/outbox"
	"sockmail/internal/store"
)

// shutdownGrace is how long running sends and requests may take to finish
// at shutdown before they are aborted (their transcripts are kept).
const shutdownGrace = 20 * time.Second

// runServe runs the web app and the capture server until ctx is done.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cfg, err := config.Load(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sockmail: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if err := serve(ctx, cfg, log, stdout); err != nil {
		log.Error("sockmail stopped", "err", err)
		return 1
	}
	return 0
}

// serve builds the server, runs it until ctx is done and shuts it down
// gracefully.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, stdout io.Writer) error {
	s, err := newServer(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer s.close()
	return s.run(ctx, stdout)
}

// server is a built sockmail instance: the store open, the listeners
// bound, the handler and the outbox worker made, nothing of its own
// running yet (the capture server accepts as soon as it listens). run
// runs it; close releases what run does not.
type server struct {
	cfg    *config.Config
	log    *slog.Logger
	st     *store.Store
	clock  *store.SharedClock // nil unless the store is PostgreSQL
	capSrv *capture.Server    // nil when the capture server is off
	worker *outbox.Worker     // nil with SOCKMAIL_OUTBOX_CONCURRENCY=0
	sched  *monitor.Scheduler // runs the monitors
	alerts *alert.Worker      // records the monitors' alerts, delivers their webhooks
	jrnl   *journal.Journal   // the worker's outcome journal; nil if none
	h      *handlers.Handler
	web    *echo.Echo
	ln     net.Listener
	// metricsSrv serves /metrics without a token on SOCKMAIL_METRICS_ADDR;
	// nil when that is unset.
	metricsSrv *http.Server
	metricsLn  net.Listener
}

// newServer opens the store and builds everything serve runs. It starts
// no goroutine of its own. On error it releases what it opened.
func newServer(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *server, err error) {
	s := &server{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			s.discard()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("serve: data directory: %w", err)
	}
	if s.st, err = store.Open(ctx, cfg.DSN); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	s.st.SetLogger(log)
	deps, err := s.handlerDeps(ctx)
	if err != nil {
		return nil, err
	}
	resolver := s.buildDelivery(&deps)
	if err := s.buildWorker(&deps, resolver); err != nil {
		return nil, err
	}
	if err := s.buildMonitors(&deps, resolver); err != nil {
		return nil, err
	}
	if err := s.buildMetrics(&deps); err != nil {
		return nil, err
	}
	if s.h, err = handlers.New(deps); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if err := s.buildWeb(); err != nil {
		return nil, err
	}
	if s.st.Backend() == store.BackendPostgres && cfg.SecretKey == "" {
		log.Warn("SOCKMAIL_SECRET_KEY is not set: instances sharing this database each use their own key file, and cannot read each other's stored SMTP passwords")
	}
	return s, nil
}

// handlerDeps gathers the keys, the trusted CAs, the capture server and
// the clock the handler and the outbox worker need.
func (s *server) handlerDeps(ctx context.Context) (handlers.Deps, error) {
	cfg := s.cfg
	d := handlers.Deps{
		// Sign-ins and contact posts stay throttled (in memory) while the
		// database refuses writes, instead of failing on the throttle row.
		Store: store.NewSignInFallback(s.st, s.log), Logger: s.log, SecureCookies: cfg.SecureCookies,
		SessionLifetime: cfg.SessionLifetime, BaseURL: cfg.BaseURL, TrustedProxies: cfg.TrustedProxies, SendTimeout: cfg.SendTimeout,
		MaxUpload:        cfg.MaxUpload,
		Retention:        handlers.Retention{MaxAge: time.Duration(cfg.RetentionDays) * 24 * time.Hour, MaxSends: cfg.RetentionMax},
		MaxStoredMessage: cfg.MaxStoredMessage, Now: s.now(ctx),
		// The Check page resolves as "sockmail check" does without --dns.
		CheckResolver: os.Getenv(dnsEnv),
	}
	var err error
	if d.SessionHashKey, err = settingKey(ctx, s.st, "session.hash_key", 64); err != nil {
		return d, err
	}
	if d.SessionBlockKey, err = settingKey(ctx, s.st, "session.block_key", 32); err != nil {
		return d, err
	}
	key, err := secretKey(cfg)
	if err != nil {
		return d, err
	}
	box, err := crypt.New(key)
	if err != nil {
		return d, fmt.Errorf("serve: %w", err)
	}
	d.Sealer = box
	if d.RootCAs, err = rootCAs(cfg.CAFile); err != nil {
		return d, err
	}
	d.Capture, err = s.listenCapture()
	return d, err
}

// now returns the clock of the instance. Instances sharing a PostgreSQL
// database time leases, rate limits, tokens and sessions by its clock,
// not their own; it is measured once here, before anything reads it.
func (s *server) now(ctx context.Context) func() time.Time {
	if s.st.Backend() != store.BackendPostgres {
		return time.Now
	}
	s.clock = store.NewSharedClock(time.Now)
	syncClock(ctx, s.clock, s.st, s.log)
	return s.clock.Now
}

// listenCapture starts the built-in capture server unless it is off.
func (s *server) listenCapture() (handlers.CaptureServer, error) {
	cfg := s.cfg
	if !cfg.CaptureEnabled() {
		return handlers.CaptureServer{}, nil
	}
	cert, err := capture.LoadOrCreateCertificate(cfg.DataDir, time.Now())
	if err != nil {
		return handlers.CaptureServer{}, fmt.Errorf("serve: %w", err)
	}
	notifier := capture.NewNotifier() // wakes the live captured-mail list
	s.capSrv, err = capture.Listen(capture.Options{
		Addr: cfg.CaptureAddr, Certificate: cert, MaxSize: cfg.CaptureMaxSize,
		MaxMessages: cfg.CaptureMaxMessages, MaxTotalBytes: cfg.CaptureMaxTotal,
		Username: cfg.CaptureUser, Password: cfg.CapturePassword, Logger: s.log, Notifier: notifier,
	}, s.st)
	if err != nil {
		return handlers.CaptureServer{}, fmt.Errorf("serve: %w", err)
	}
	return handlers.CaptureServer{Addr: s.capSrv.Addr(), Certificate: s.capSrv.Certificate(), Notifier: notifier}, nil
}

// buildDelivery makes the one send service: targets are resolved in one
// place for the web app and the outbox.
func (s *server) buildDelivery(d *handlers.Deps) *delivery.Resolver {
	resolver := delivery.NewResolver(delivery.ResolverDeps{Profiles: s.st, Sends: s.st, Opener: d.Sealer,
		Capture: delivery.Capture{Addr: d.Capture.Addr, Certificate: d.Capture.Certificate}, RootCAs: d.RootCAs})
	d.Delivery = delivery.New(delivery.Deps{Store: s.st, Resolver: resolver, Now: d.Now, Timeout: s.cfg.SendTimeout, Logger: s.log})
	return resolver
}

// buildWorker makes the contact-form outbox worker, unless it is off in
// this instance; instances sharing a PostgreSQL database each run one and
// share the queue through leases. The handler kicks it.
func (s *server) buildWorker(d *handlers.Deps, resolver *delivery.Resolver) error {
	cfg := s.cfg
	if cfg.OutboxConcurrency == 0 {
		return nil
	}
	// Outcomes the database refuses are kept in the data folder until it
	// takes them (internal/outbox late.go). Without the journal the
	// worker still runs: such outcomes are then kept in memory only.
	var jrnl outbox.Journal
	path := filepath.Join(cfg.DataDir, "outbox.journal")
	if j, err := journal.Open(path, journal.DefaultSize); err != nil {
		s.log.Error("outbox journal unavailable: outcomes the database refuses are kept in memory only", "path", path, "err", err)
	} else {
		s.jrnl, jrnl = j, j
	}
	w, err := outbox.New(outbox.Deps{
		Store: s.st, Profiles: resolver.Profile, Journal: jrnl, Intake: s.st.IntakeCount, Storing: s.st.IntakeStoring,
		Concurrency: cfg.OutboxConcurrency, Connections: cfg.OutboxConnections, Pipeline: cfg.OutboxPipeline,
		ServerConnections: s.profileConnections, Lease: cfg.OutboxLease, PollInterval: cfg.OutboxPoll, MaxAge: cfg.OutboxMaxAge,
		Backoff:          outbox.Backoff{Base: cfg.OutboxBackoffBase, Max: cfg.OutboxBackoffMax},
		MaxStoredMessage: int(cfg.MaxStoredMessage), ShutdownGrace: shutdownGrace / 2, Logger: s.log, Now: d.Now,
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	s.worker, d.Kicker = w, w
	return nil
}

// profileConnections is the connection limit of a server profile, 0 for
// the default (the built-in capture server, profile 0, has none).
func (s *server) profileConnections(ctx context.Context, id int64) (int, error) {
	if id == 0 {
		return 0, nil
	}
	p, err := s.st.Profile(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("serve: profile connections: %w", err)
	}
	return p.MaxConnections, nil
}

// buildMonitors makes the monitor scheduler and the alert worker.
// Instances sharing a PostgreSQL database each run both; leases in the
// store make each monitor run on one of them per interval and each
// webhook go out from one, and the alerted state's compare-and-set
// records each alert once. Alert emails go through the outbox (kicked
// when one is queued).
func (s *server) buildMonitors(d *handlers.Deps, resolver *delivery.Resolver) error {
	owner := outbox.DefaultOwner()
	ad := alert.Deps{Store: s.st, Opener: d.Sealer, BaseURL: s.cfg.BaseURL, Owner: owner, Now: d.Now, Logger: s.log}
	if s.worker != nil {
		ad.KickOutbox = s.worker.Kick
	}
	alerts, err := alert.New(ad)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	probe := monitor.NewProber(monitor.ProberDeps{Resolve: resolver.Resolve, Sends: s.st, Captured: s.st, Now: d.Now, Timeout: s.cfg.SendTimeout,
		Opener: d.Sealer, RootCAs: d.RootCAs, Checks: s.st, CheckResolver: d.CheckResolver})
	sched, err := monitor.New(monitor.Deps{Store: s.st, Probe: probe, Owner: owner, Now: d.Now, Logger: s.log, AfterRun: alerts.AfterRun})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	s.sched, s.alerts = sched, alerts
	d.Monitors = &handlers.Monitors{Store: s.st, Runner: sched, Alerts: s.st}
	return nil
}

// buildMetrics makes the Prometheus registry (read from the store at
// scrape time), served on the web app to tokens with the metrics scope
// and, when SOCKMAIL_METRICS_ADDR is set, on that address without one.
func (s *server) buildMetrics(d *handlers.Deps) error {
	reg, err := metrics.NewRegistry(s.st, d.Now)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	d.Metrics = metrics.Handler(reg)
	if s.cfg.MetricsAddr == "" {
		return nil
	}
	if s.metricsLn, err = net.Listen("tcp", s.cfg.MetricsAddr); err != nil {
		return fmt.Errorf("serve: metrics listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.Metrics)
	s.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	return nil
}

// buildWeb makes the web server on its listener.
func (s *server) buildWeb() error {
	e := s.h.Routes()
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("serve: listen: %w", err)
	}
	s.ln = ln
	e.Listener = ln
	e.Server.ReadHeaderTimeout = 10 * time.Second
	e.Server.IdleTimeout = 2 * time.Minute
	e.Server.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	s.web = e
	return nil
}

// run serves until ctx is done or a part fails, then shuts down in order:
// stop taking requests and let running sends finish for the grace period
// (then abort them, keeping their transcripts), stop the outbox worker
// (which has its own grace period) and the monitor scheduler (whose runs
// cut short are not stored: their leases expire and they run again),
// stop the capture server. The store
// stays open for close.
func (s *server) run(ctx context.Context, stdout io.Writer) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(s.serveWeb)
	if s.metricsSrv != nil {
		g.Go(func() error {
			if err := s.metricsSrv.Serve(s.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve: metrics: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error { runRetention(gctx, s.h, s.log, retentionInterval); return nil })
	g.Go(func() error { repeat(gctx, retentionInterval, func() { s.purgeAuth(gctx) }); return nil })
	g.Go(func() error { foldSearch(gctx, s.st, s.log, time.Minute); return nil })
	if s.clock != nil {
		g.Go(func() error {
			repeat(gctx, clockSyncInterval, func() { syncClock(gctx, s.clock, s.st, s.log) })
			return nil
		})
	}
	// The worker outlives the group's context: it is stopped in order
	// during the shutdown, not with everything else.
	var workers errgroup.Group
	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorkers()
	if s.worker != nil {
		workers.Go(func() error { return s.worker.Run(wctx) })
	} else {
		s.log.Info("outbox worker off in this instance (SOCKMAIL_OUTBOX_CONCURRENCY=0)")
	}
	workers.Go(func() error { return s.sched.Run(wctx) })
	workers.Go(func() error { return s.alerts.Run(wctx) })
	s.announce(ctx, stdout)
	g.Go(func() error {
		<-gctx.Done()
		s.log.Info("shutting down", "grace", shutdownGrace)
		stopWorkers()
		s.shutdown(&workers)
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	s.log.Info("sockmail stopped")
	return nil
}

// serveWeb serves HTTP until the web server is shut down.
func (s *server) serveWeb() error {
	if err := s.web.Start(""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// announce says where the web app and the capture server are and, while
// no account exists, the one-time setup code the first sign-up needs
// (on stdout and in the log, where the sign-up page says to look).
func (s *server) announce(ctx context.Context, stdout io.Writer) {
	// Decided before the first line, so that whoever sees "running at"
	// knows whether a code is needed (a test stopping the server at once
	// included).
	code, needed, err := s.h.SetupCode(ctx)
	url := s.cfg.BaseURL
	if s.cfg.BaseURL == "http://"+s.cfg.Listen {
		url = "http://" + s.ln.Addr().String()
	}
	fmt.Fprintf(stdout, "sockmail is running at %s\n", url)
	var capAddr string
	if s.capSrv != nil {
		capAddr = s.capSrv.Addr()
		fmt.Fprintf(stdout, "capture SMTP server at %s (STARTTLS, any AUTH credentials unless configured)\n", capAddr)
	}
	if s.metricsLn != nil {
		fmt.Fprintf(stdout, "Prometheus metrics at http://%s/metrics (no token: keep this address private)\n", s.metricsLn.Addr())
	}
	s.log.Info("sockmail started", "url", url, "data", s.cfg.DataDir, "capture", capAddr)
	switch {
	case err != nil:
		s.log.Error("cannot make the setup code; create the admin account with \"sockmail user add\"", "err", err)
	case needed:
		fmt.Fprintf(stdout, "no admin account yet: the sign-up page asks for the setup code %s\n  open %s/signup, or create the account with \"sockmail user add -email ADDRESS\"\n", code, url)
		s.log.Warn("no admin account yet: the first sign-up needs this one-time setup code", "setup_code", code, "signup", url+"/signup")
	}
}

// shutdown stops the web server and the sends within the grace period,
// waits for the stopped workers, then stops the capture server they may
// have been delivering to. Problems are logged: they do not change the
// outcome of the run.
func (s *server) shutdown(workers *errgroup.Group) {
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	var drain errgroup.Group
	drain.Go(func() error {
		if err := s.web.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("web server shutdown", "err", err)
			_ = s.web.Close()
		}
		return nil
	})
	drain.Go(func() error { s.shutdownSends(sctx); return nil })
	if s.metricsSrv != nil {
		drain.Go(func() error { _ = s.metricsSrv.Shutdown(sctx); return nil })
	}
	_ = drain.Wait()
	_ = workers.Wait()
	if s.capSrv != nil {
		if err := s.capSrv.Shutdown(sctx); err != nil {
			s.log.Warn("capture server shutdown", "err", err)
		}
	}
}

// shutdownSends is the one place where the sends of the web app are shut
// down: new ones refused, running ones given until ctx ends, then aborted
// with their transcripts kept.
func (s *server) shutdownSends(ctx context.Context) {
	if err := s.h.Shutdown(ctx); err != nil {
		s.log.Warn("sends shutdown", "err", err)
	}
}

// close closes the store, after run; what it could not finish (giving
// back rate-limit counts taken ahead, closing connections) is logged.
func (s *server) close() {
	if err := s.st.Close(); err != nil {
		s.log.Warn("close the store", "err", err)
	}
	if s.jrnl != nil {
		_ = s.jrnl.Close()
	}
}

// discard releases what a failed newServer opened.
func (s *server) discard() {
	if s.ln != nil {
		_ = s.ln.Close()
	}
	if s.metricsLn != nil {
		_ = s.metricsLn.Close()
	}
	if s.capSrv != nil {
		_ = s.capSrv.Shutdown(context.Background())
	}
	if s.st != nil {
		s.st.Close()
	}
	if s.jrnl != nil {
		_ = s.jrnl.Close()
	}
}

// attemptsKept is how long sign-in, setup-code and contact-form attempts
// are kept: well past the longest throttling window in use (an hour), so
// that a purge never changes a verdict.
const attemptsKept = 24 * time.Hour

// purgeAuth deletes the attempts older than attemptsKept and the expired
// sessions, so that neither table grows without bound.
func (s *server) purgeAuth(ctx context.Context) {
	now := time.Now()
	if s.clock != nil {
		now = s.clock.Now()
	}
	if err := s.st.PurgeAttempts(ctx, now.Add(-attemptsKept)); err != nil && ctx.Err() == nil {
		s.log.Warn("purge old attempts", "err", err)
	}
	if err := s.st.PurgeExpiredSessions(ctx, now); err != nil && ctx.Err() == nil {
		s.log.Warn("purge expired sessions", "err", err)
	}
}

// clockSyncInterval is how often an instance on PostgreSQL measures its
// clock against the database's.
const clockSyncInterval = 10 * time.Minute

// syncClock measures clock against the database's and says so when this
// machine's clock is noticeably off.
func syncClock(ctx context.Context, clock *store.SharedClock, st *store.Store, log *slog.Logger) {
	offset, err := clock.Sync(ctx, st)
	switch {
	case err != nil:
		log.Warn("cannot read the database's clock; keeping the last offset", "err", err)
	case offset > time.Second || offset < -time.Second:
		log.Warn("this machine's clock is off the database's; sockmail times leases, limits and sessions by the database's", "offset", offset)
	}
}
