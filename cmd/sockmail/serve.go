package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"sockmail/handlers"
	"sockmail/internal/capture"
	"sockmail/internal/config"
	"sockmail/internal/crypt"
	"sockmail/internal/delivery"
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

// serve opens the store, starts the capture server and the web server,
// and shuts both down gracefully when ctx is done.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, stdout io.Writer) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("serve: data directory: %w", err)
	}
	st, err := store.Open(ctx, cfg.DSN)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer st.Close()
	hashKey, err := settingKey(ctx, st, "session.hash_key", 64)
	if err != nil {
		return err
	}
	blockKey, err := settingKey(ctx, st, "session.block_key", 32)
	if err != nil {
		return err
	}
	key, err := secretKey(cfg)
	if err != nil {
		return err
	}
	box, err := crypt.New(key)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}

	roots, err := rootCAs(cfg.CAFile)
	if err != nil {
		return err
	}
	var capSrv *capture.Server
	var capInfo handlers.CaptureServer
	if cfg.CaptureEnabled() {
		cert, err := capture.LoadOrCreateCertificate(cfg.DataDir, time.Now())
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		capSrv, err = capture.Listen(capture.Options{
			Addr: cfg.CaptureAddr, Certificate: cert, MaxSize: cfg.CaptureMaxSize,
			Username: cfg.CaptureUser, Password: cfg.CapturePassword, Logger: log,
		}, st)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		capInfo = handlers.CaptureServer{Addr: capSrv.Addr(), Certificate: capSrv.Certificate()}
	}

	// Instances sharing a PostgreSQL database time leases, rate limits,
	// tokens and sessions by its clock, not their own.
	now := time.Now
	if st.Backend() == store.BackendPostgres {
		clock := store.NewSharedClock(time.Now)
		syncClock(ctx, clock, st, log) // before anything reads the clock
		go repeat(ctx, clockSyncInterval, func() { syncClock(ctx, clock, st, log) })
		now = clock.Now
	}

	// One send service: targets resolved in one place for the web app
	// and the outbox.
	resolver := delivery.NewResolver(delivery.ResolverDeps{Profiles: st, Sends: st, Opener: box,
		Capture: delivery.Capture{Addr: capInfo.Addr, Certificate: capInfo.Certificate}, RootCAs: roots})
	sends := delivery.New(delivery.Deps{Store: st, Resolver: resolver, Now: now, Timeout: cfg.SendTimeout, Logger: log})

	// The contact-form outbox worker; instances sharing a PostgreSQL
	// database each run one and share the queue through leases.
	var worker *outbox.Worker
	var kicker handlers.Kicker
	if cfg.OutboxConcurrency > 0 {
		worker, err = outbox.New(outbox.Deps{
			Store: st, Profiles: resolver.Profile,
			Concurrency: cfg.OutboxConcurrency, Lease: cfg.OutboxLease, PollInterval: cfg.OutboxPoll, MaxAge: cfg.OutboxMaxAge,
			Backoff:          outbox.Backoff{Base: cfg.OutboxBackoffBase, Max: cfg.OutboxBackoffMax},
			MaxStoredMessage: int(cfg.MaxStoredMessage), ShutdownGrace: shutdownGrace / 2, Logger: log, Now: now,
		})
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		kicker = worker
	}

	h, err := handlers.New(handlers.Deps{
		Store: st, Sealer: box, Logger: log,
		SessionHashKey: hashKey, SessionBlockKey: blockKey, SecureCookies: cfg.SecureCookies,
		SessionLifetime: cfg.SessionLifetime, BaseURL: cfg.BaseURL, TrustedProxies: cfg.TrustedProxies, SendTimeout: cfg.SendTimeout,
		MaxUpload: cfg.MaxUpload, Capture: capInfo, RootCAs: roots,
		Retention:        handlers.Retention{MaxAge: time.Duration(cfg.RetentionDays) * 24 * time.Hour, MaxSends: cfg.RetentionMax},
		MaxStoredMessage: cfg.MaxStoredMessage, Kicker: kicker, Now: now, Delivery: sends,
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// The retention policy: applied now, then every hour.
	rctx, stopRetention := context.WithCancel(ctx)
	defer stopRetention()
	retained := make(chan struct{})
	go func() { defer close(retained); runRetention(rctx, h, log, retentionInterval) }()
	if st.Backend() == store.BackendPostgres && cfg.SecretKey == "" {
		log.Warn("SOCKMAIL_SECRET_KEY is not set: instances sharing this database each use their own key file, and cannot read each other's stored SMTP passwords")
	}

	e := h.Routes()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("serve: listen: %w", err)
	}
	e.Listener = ln
	e.Server.ReadHeaderTimeout = 10 * time.Second
	e.Server.IdleTimeout = 2 * time.Minute
	e.Server.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	errc := make(chan error, 1)
	go func() { errc <- e.Start("") }()

	// The worker runs until shutdown begins, then finishes or gives back
	// its attempts in flight (within its own grace period).
	wctx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorker()
	workerDone := make(chan struct{})
	if worker != nil {
		go func() { defer close(workerDone); _ = worker.Run(wctx) }()
	} else {
		close(workerDone)
		log.Info("outbox worker off in this instance (SOCKMAIL_OUTBOX_CONCURRENCY=0)")
	}

	url := cfg.BaseURL
	if cfg.BaseURL == "http://"+cfg.Listen {
		url = "http://" + ln.Addr().String()
	}
	fmt.Fprintf(stdout, "sockmail is running at %s\n", url)
	if capSrv != nil {
		fmt.Fprintf(stdout, "capture SMTP server at %s (STARTTLS, any AUTH credentials unless configured)\n", capSrv.Addr())
	}
	log.Info("sockmail started", "url", url, "data", cfg.DataDir, "capture", capInfo.Addr)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	log.Info("shutting down", "grace", shutdownGrace)
	stopRetention()
	stopWorker()
	<-retained
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	// Stop new sends and let running ones finish (or abort them at the
	// deadline, keeping their transcripts) while the web server drains.
	hdone := make(chan error, 1)
	go func() { hdone <- h.Shutdown(sctx) }()
	if err := e.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("web server shutdown", "err", err)
		_ = e.Close()
	}
	if err := <-hdone; err != nil {
		log.Warn("sends shutdown", "err", err)
	}
	<-workerDone
	if capSrv != nil {
		if err := capSrv.Shutdown(sctx); err != nil {
			log.Warn("capture server shutdown", "err", err)
		}
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	log.Info("sockmail stopped")
	return nil
}

// rootCAs returns the system pool plus the CAs of caFile, if any.
func rootCAs(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("serve: CA file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("serve: CA file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// keySetter is the part of the store that keeps generated keys.
type keySetter interface {
	SetSettingIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error)
}

// settingKey returns the random key stored under name, generating it on
// first start. SetSettingIfAbsent makes instances sharing a database
// agree on one key.
func settingKey(ctx context.Context, st keySetter, name string, size int) ([]byte, error) {
	k := make([]byte, size)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("serve: generate %s: %w", name, err)
	}
	got, err := st.SetSettingIfAbsent(ctx, name, k)
	if err != nil {
		return nil, fmt.Errorf("serve: %s: %w", name, err)
	}
	if len(got) != size {
		return nil, fmt.Errorf("serve: stored %s has %d bytes, want %d", name, len(got), size)
	}
	return got, nil
}

// secretKey returns the key that encrypts stored SMTP passwords: from
// SOCKMAIL_SECRET_KEY, or from DataDir/secret.key, generated on first use.
// It is kept out of the database so that a database copy alone does not
// reveal the passwords.
func secretKey(cfg *config.Config) ([]byte, error) {
	if cfg.SecretKey != "" {
		return base64.StdEncoding.DecodeString(cfg.SecretKey)
	}
	path := filepath.Join(cfg.DataDir, "secret.key")
	b, err := os.ReadFile(path)
	if err == nil {
		k, derr := base64.StdEncoding.DecodeString(string(trimNewline(b)))
		if derr != nil || len(k) != crypt.KeySize {
			return nil, fmt.Errorf("serve: %s does not hold a base64 key of %d bytes", path, crypt.KeySize)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("serve: read secret key: %w", err)
	}
	k := make([]byte, crypt.KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("serve: generate secret key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("serve: create secret key: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("serve: write secret key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("serve: write secret key: %w", err)
	}
	return k, nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
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
