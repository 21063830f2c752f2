// Package config reads sockmail's configuration from command-line flags and
// SOCKMAIL_* environment variables (a flag wins over its variable) and
// validates it before anything starts.
package config

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is the configuration of a sockmail server.
type Config struct {
	// Listen is the HTTP listen address (SOCKMAIL_LISTEN, -listen).
	Listen string
	// DataDir holds the SQLite database, the capture server's certificate
	// and anything else sockmail keeps (SOCKMAIL_DATA, -data).
	DataDir string
	// DSN is the database: a SQLite file path or a postgres:// URL
	// (SOCKMAIL_DATABASE, or SOCKMAIL_DATABASE_URL when that is unset;
	// -database). Default: DataDir/sockmail.db. Several instances share
	// sessions, history and sign-in throttling through one PostgreSQL.
	DSN string
	// CaptureAddr is the listen address of the built-in capture SMTP
	// server, loopback only; "off" disables it (SOCKMAIL_CAPTURE_ADDR,
	// -capture-addr). Port 0 picks a free port (tests).
	CaptureAddr string
	// CaptureUser and CapturePassword, when both are set, are the only
	// credentials the capture server's AUTH accepts; otherwise it accepts
	// any (SOCKMAIL_CAPTURE_USER, SOCKMAIL_CAPTURE_PASSWORD).
	CaptureUser, CapturePassword string
	// CaptureMaxSize is the largest message the capture server takes, in
	// bytes (SOCKMAIL_CAPTURE_MAX_SIZE, -capture-max-size).
	CaptureMaxSize int64
	// BaseURL is the public URL of the web app, e.g. https://mail.example.org
	// (SOCKMAIL_BASE_URL, -base-url). Default: http://Listen.
	BaseURL string
	// SecureCookies marks session cookies Secure. It is "auto" by default:
	// on when BaseURL is https (SOCKMAIL_SECURE_COOKIES, -secure-cookies).
	SecureCookies bool
	// LogLevel is debug, info, warn or error (SOCKMAIL_LOG_LEVEL, -log-level).
	LogLevel slog.Level
	// SendTimeout bounds one browser test send from connect to QUIT
	// (SOCKMAIL_SEND_TIMEOUT, -send-timeout).
	SendTimeout time.Duration
	// MaxUpload bounds a compose form with its attachments, in bytes
	// (SOCKMAIL_MAX_UPLOAD, -max-upload).
	MaxUpload int64
	// SessionLifetime bounds a sign-in (SOCKMAIL_SESSION_LIFETIME,
	// -session-lifetime).
	SessionLifetime time.Duration
	// SecretKey, when set, is the base64 key (32 bytes) that encrypts
	// stored SMTP passwords (SOCKMAIL_SECRET_KEY; environment only, so it
	// does not show in a process list). Otherwise a key is generated once
	// into DataDir/secret.key. Instances sharing a database need the same.
	SecretKey string
	// CAFile is a PEM file of extra certificate authorities trusted when
	// sends verify a server's certificate, for servers with a private CA
	// (SOCKMAIL_CA_FILE, -ca-file).
	CAFile string
	// RetentionDays deletes stored sends older than this many days; 0
	// keeps them (SOCKMAIL_RETENTION_DAYS, -retention-days).
	RetentionDays int
	// RetentionMax keeps only the newest RetentionMax sends; 0 keeps all
	// (SOCKMAIL_RETENTION_MAX, -retention-max).
	RetentionMax int
	// MaxStoredMessage caps the message source stored with each send, in
	// bytes; a longer one is kept truncated and cannot be re-sent
	// (SOCKMAIL_MAX_STORED_MESSAGE, -max-stored-message).
	MaxStoredMessage int64
	// The contact-form outbox worker (internal/outbox). OutboxConcurrency
	// is how many deliveries run at once; 0 runs no worker in this
	// instance (SOCKMAIL_OUTBOX_CONCURRENCY). OutboxLease is how long a
	// claimed message is reserved: a crashed instance's messages are taken
	// over after it (SOCKMAIL_OUTBOX_LEASE). OutboxPoll is how often the
	// queue is looked at besides after each submission
	// (SOCKMAIL_OUTBOX_POLL). Temporary failures are retried after
	// OutboxBackoffBase, doubling up to OutboxBackoffMax, with jitter,
	// until a message is OutboxMaxAge old (SOCKMAIL_OUTBOX_BACKOFF_BASE,
	// SOCKMAIL_OUTBOX_BACKOFF_MAX, SOCKMAIL_OUTBOX_MAX_AGE).
	OutboxConcurrency int
	OutboxLease       time.Duration
	OutboxPoll        time.Duration
	OutboxMaxAge      time.Duration
	OutboxBackoffBase time.Duration
	OutboxBackoffMax  time.Duration

	// TrustedProxies are the load balancers and reverse proxies (CIDR
	// ranges or single addresses) whose X-Forwarded-For header names the
	// visitor's address, for sign-in throttling, contact-form rate limits
	// and logs. Empty (the default) trusts no header: the address is the
	// TCP peer's (SOCKMAIL_TRUSTED_PROXIES, -trusted-proxies,
	// comma-separated).
	TrustedProxies []*net.IPNet

	secureCookies  string // "auto", "true" or "false", as given
	trustedProxies string // as given
}

// Defaults.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultDataDir         = "./data"
	DefaultCaptureAddr     = "127.0.0.1:1025"
	DefaultCaptureMaxSize  = 25 << 20
	DefaultSendTimeout     = 2 * time.Minute
	DefaultMaxUpload       = 25 << 20
	DefaultSessionLifetime = 12 * time.Hour
	DefaultMaxStoredMsg    = 10 << 20

	DefaultOutboxConcurrency = 4
	DefaultOutboxLease       = 5 * time.Minute
	DefaultOutboxPoll        = 5 * time.Second
	DefaultOutboxMaxAge      = 72 * time.Hour
	DefaultOutboxBackoffBase = 30 * time.Second
	DefaultOutboxBackoffMax  = time.Hour
)

// Load parses args (without the program name) over the environment read by
// getenv, fills the derived defaults and validates the result. Errors from
// the flag package (including -h) are returned as they are.
func Load(args []string, getenv func(string) string, usage io.Writer) (*Config, error) {
	env := func(name, def string) string {
		if v := getenv("SOCKMAIL_" + name); v != "" {
			return v
		}
		return def
	}
	c := &Config{}
	fs := flag.NewFlagSet("sockmail serve", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.Listen, "listen", env("LISTEN", DefaultListen), "HTTP listen address (SOCKMAIL_LISTEN)")
	fs.StringVar(&c.DataDir, "data", env("DATA", DefaultDataDir), "data directory (SOCKMAIL_DATA)")
	fs.StringVar(&c.DSN, "database", env("DATABASE", env("DATABASE_URL", "")), "SQLite file or postgres:// URL; default DATA/sockmail.db (SOCKMAIL_DATABASE)")
	fs.StringVar(&c.CaptureAddr, "capture-addr", env("CAPTURE_ADDR", DefaultCaptureAddr), `capture SMTP server address on loopback, or "off" (SOCKMAIL_CAPTURE_ADDR)`)
	c.CaptureUser = env("CAPTURE_USER", "")
	c.CapturePassword = env("CAPTURE_PASSWORD", "")
	c.SecretKey = env("SECRET_KEY", "")
	fs.StringVar(&c.BaseURL, "base-url", env("BASE_URL", ""), "public URL of the web app; default http://LISTEN (SOCKMAIL_BASE_URL)")
	fs.StringVar(&c.secureCookies, "secure-cookies", env("SECURE_COOKIES", "auto"), "auto, true or false: Secure session cookies; auto = when the base URL is https (SOCKMAIL_SECURE_COOKIES)")
	fs.StringVar(&c.CAFile, "ca-file", env("CA_FILE", ""), "PEM file of extra CAs trusted for sends (SOCKMAIL_CA_FILE)")
	fs.StringVar(&c.trustedProxies, "trusted-proxies", env("TRUSTED_PROXIES", ""), "comma-separated CIDR ranges or addresses of proxies whose X-Forwarded-For is believed (SOCKMAIL_TRUSTED_PROXIES)")
	logLevel := fs.String("log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (SOCKMAIL_LOG_LEVEL)")
	var errs []error
	durationVar := func(p *time.Duration, name, envName string, def time.Duration, help string) {
		d := def
		if v := env(envName, ""); v != "" {
			var err error
			if d, err = time.ParseDuration(v); err != nil {
				errs = append(errs, fmt.Errorf("SOCKMAIL_%s: %q is not a duration like 90s or 2m", envName, v))
			}
		}
		fs.DurationVar(p, name, d, help+" (SOCKMAIL_"+envName+")")
	}
	sizeVar := func(p *int64, name, envName string, def int64, help string) {
		n := def
		if v := env(envName, ""); v != "" {
			var err error
			if n, err = strconv.ParseInt(v, 10, 64); err != nil {
				errs = append(errs, fmt.Errorf("SOCKMAIL_%s: %q is not a number of bytes", envName, v))
			}
		}
		fs.Int64Var(p, name, n, help+" (SOCKMAIL_"+envName+")")
	}
	durationVar(&c.SendTimeout, "send-timeout", "SEND_TIMEOUT", DefaultSendTimeout, "time limit of one test send")
	durationVar(&c.SessionLifetime, "session-lifetime", "SESSION_LIFETIME", DefaultSessionLifetime, "how long a sign-in lasts")
	sizeVar(&c.CaptureMaxSize, "capture-max-size", "CAPTURE_MAX_SIZE", DefaultCaptureMaxSize, "largest message the capture server accepts, bytes")
	sizeVar(&c.MaxUpload, "max-upload", "MAX_UPLOAD", DefaultMaxUpload, "largest compose form with attachments, bytes")
	sizeVar(&c.MaxStoredMessage, "max-stored-message", "MAX_STORED_MESSAGE", DefaultMaxStoredMsg, "largest message source stored with a send, bytes")
	intVar := func(p *int, name, envName, help string) {
		n := 0
		if v := env(envName, ""); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil {
				errs = append(errs, fmt.Errorf("SOCKMAIL_%s: %q is not a whole number", envName, v))
			}
		}
		fs.IntVar(p, name, n, help+" (SOCKMAIL_"+envName+")")
	}
	intVar(&c.RetentionDays, "retention-days", "RETENTION_DAYS", "delete stored sends older than this many days; 0 keeps them")
	intVar(&c.RetentionMax, "retention-max", "RETENTION_MAX", "keep only the newest N stored sends; 0 keeps all")
	intVar(&c.OutboxConcurrency, "outbox-concurrency", "OUTBOX_CONCURRENCY", "contact-form deliveries at once; 0 runs no outbox worker here (default 4)")
	if env("OUTBOX_CONCURRENCY", "") == "" {
		c.OutboxConcurrency = DefaultOutboxConcurrency
	}
	durationVar(&c.OutboxLease, "outbox-lease", "OUTBOX_LEASE", DefaultOutboxLease, "how long a claimed contact message is reserved; a crashed instance's are taken over after it")
	durationVar(&c.OutboxPoll, "outbox-poll", "OUTBOX_POLL", DefaultOutboxPoll, "how often the outbox is looked at between submissions")
	durationVar(&c.OutboxMaxAge, "outbox-max-age", "OUTBOX_MAX_AGE", DefaultOutboxMaxAge, "how long temporary delivery failures are retried")
	durationVar(&c.OutboxBackoffBase, "outbox-backoff-base", "OUTBOX_BACKOFF_BASE", DefaultOutboxBackoffBase, "first retry delay after a temporary failure (doubles each time)")
	durationVar(&c.OutboxBackoffMax, "outbox-backoff-max", "OUTBOX_BACKOFF_MAX", DefaultOutboxBackoffMax, "longest retry delay")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	if err := c.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("log level %q: want debug, info, warn or error", *logLevel))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	if c.DSN == "" && c.DataDir != "" {
		c.DSN = filepath.Join(c.DataDir, "sockmail.db")
	}
	if c.BaseURL == "" && c.Listen != "" {
		c.BaseURL = "http://" + c.Listen
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks every field and reports all problems at once, each
// naming the setting to fix.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen address %q: want host:port, e.g. 127.0.0.1:8080", c.Listen)
	} else if !validPort(port) {
		add("listen address %q: port must be 0-65535", c.Listen)
	}
	if c.DataDir == "" {
		add("data directory: must not be empty")
	}
	if c.DSN == "" {
		add("database: must not be empty")
	}
	if c.CaptureAddr != "off" {
		host, port, err := net.SplitHostPort(c.CaptureAddr)
		switch {
		case err != nil:
			add(`capture address %q: want host:port on loopback, e.g. 127.0.0.1:1025, or "off"`, c.CaptureAddr)
		case !validPort(port):
			add("capture address %q: port must be 0-65535", c.CaptureAddr)
		case !isLoopback(host):
			add("capture address %q: the capture server listens on loopback only (127.0.0.1, ::1 or localhost)", c.CaptureAddr)
		}
	}
	if (c.CaptureUser == "") != (c.CapturePassword == "") {
		add("capture credentials: set both SOCKMAIL_CAPTURE_USER and SOCKMAIL_CAPTURE_PASSWORD, or neither")
	}
	u, err := url.Parse(c.BaseURL)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		add("base URL %q: want an absolute http:// or https:// URL", c.BaseURL)
	case u.RawQuery != "" || u.Fragment != "":
		add("base URL %q: must not have a query or fragment", c.BaseURL)
	}
	switch strings.ToLower(c.secureCookies) {
	case "", "auto":
		c.SecureCookies = err == nil && u.Scheme == "https"
	case "true", "yes", "1", "on":
		c.SecureCookies = true
	case "false", "no", "0", "off":
		c.SecureCookies = false
	default:
		add("secure cookies %q: want auto, true or false", c.secureCookies)
	}
	if c.SendTimeout < time.Second || c.SendTimeout > time.Hour {
		add("send timeout %s: want between 1s and 1h", c.SendTimeout)
	}
	if c.SessionLifetime < time.Minute || c.SessionLifetime > 30*24*time.Hour {
		add("session lifetime %s: want between 1m and 720h", c.SessionLifetime)
	}
	if c.CaptureMaxSize < 1024 || c.CaptureMaxSize > 1<<30 {
		add("capture max size %d: want between 1024 and 1073741824 bytes", c.CaptureMaxSize)
	}
	if c.MaxUpload < 1024 || c.MaxUpload > 1<<30 {
		add("max upload %d: want between 1024 and 1073741824 bytes", c.MaxUpload)
	}
	if c.RetentionDays < 0 || c.RetentionDays > 100*365 {
		add("retention days %d: want 0 (keep) to 36500", c.RetentionDays)
	}
	if c.RetentionMax < 0 || c.RetentionMax > 1_000_000_000 {
		add("retention max %d: want 0 (keep all) to 1000000000", c.RetentionMax)
	}
	if c.MaxStoredMessage < 1024 || c.MaxStoredMessage > 1<<30 {
		add("max stored message %d: want between 1024 and 1073741824 bytes", c.MaxStoredMessage)
	}
	if c.OutboxConcurrency < 0 || c.OutboxConcurrency > 64 {
		add("outbox concurrency %d: want 0 (no worker) to 64", c.OutboxConcurrency)
	}
	if c.OutboxLease < 2*time.Second || c.OutboxLease > time.Hour {
		add("outbox lease %s: want between 2s and 1h", c.OutboxLease)
	}
	if c.OutboxPoll < 10*time.Millisecond || c.OutboxPoll > 10*time.Minute {
		add("outbox poll %s: want between 10ms and 10m", c.OutboxPoll)
	}
	if c.OutboxMaxAge < time.Minute || c.OutboxMaxAge > 30*24*time.Hour {
		add("outbox max age %s: want between 1m and 720h", c.OutboxMaxAge)
	}
	if c.OutboxBackoffBase < 10*time.Millisecond || c.OutboxBackoffBase > time.Hour {
		add("outbox backoff base %s: want between 10ms and 1h", c.OutboxBackoffBase)
	}
	if c.OutboxBackoffMax < c.OutboxBackoffBase || c.OutboxBackoffMax > 24*time.Hour {
		add("outbox backoff max %s: want at least the base (%s) and at most 24h", c.OutboxBackoffMax, c.OutboxBackoffBase)
	}
	if c.trustedProxies != "" {
		nets, err := ParseTrustedProxies(c.trustedProxies)
		if err != nil {
			add("trusted proxies: %v", err)
		}
		c.TrustedProxies = nets
	}
	if c.SecretKey != "" {
		if k, err := base64.StdEncoding.DecodeString(c.SecretKey); err != nil || len(k) != 32 {
			add("secret key: SOCKMAIL_SECRET_KEY must be 32 bytes in base64 (openssl rand -base64 32)")
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

// CaptureEnabled reports whether the built-in capture server runs.
func (c *Config) CaptureEnabled() bool { return c.CaptureAddr != "off" }

// ParseTrustedProxies parses a comma-separated list of CIDR ranges
// ("10.0.0.0/8") and single addresses ("192.0.2.7", "::1").
func ParseTrustedProxies(list string) ([]*net.IPNet, error) {
	var nets []*net.IPNet
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.Contains(item, "/") {
			_, n, err := net.ParseCIDR(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR range like 10.0.0.0/8", item)
			}
			nets = append(nets, n)
			continue
		}
		ip := net.ParseIP(item)
		if ip == nil {
			return nil, fmt.Errorf("%q is not an IP address or CIDR range", item)
		}
		bits := 128
		if ip4 := ip.To4(); ip4 != nil {
			ip, bits = ip4, 32
		}
		nets = append(nets, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
	}
	return nets, nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
