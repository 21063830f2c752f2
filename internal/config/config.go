// Package config reads sockmail's configuration from command-line flags and
// SOCKMAIL_* environment variables (a flag wins over its variable) and
// resolves it in one step (Load); Validate checks the result without
// changing it.
package config

import (
	"fmt"
	"log/slog"
	"net"
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
	// MetricsAddr, when set, is a second listen address serving only
	// /metrics for Prometheus, without a token: bind it where only the
	// scraper reaches (SOCKMAIL_METRICS_ADDR, -metrics-addr). Empty (the
	// default): /metrics is served only on Listen, to API tokens with the
	// metrics or admin scope.
	MetricsAddr string
	// CaptureUser and CapturePassword, when both are set, are the only
	// credentials the capture server's AUTH accepts; otherwise it accepts
	// any (SOCKMAIL_CAPTURE_USER, SOCKMAIL_CAPTURE_PASSWORD).
	CaptureUser, CapturePassword string
	// CaptureMaxSize is the largest message the capture server takes, in
	// bytes (SOCKMAIL_CAPTURE_MAX_SIZE, -capture-max-size).
	CaptureMaxSize int64
	// CaptureMaxMessages is how many captured messages are kept, the
	// oldest dropped beyond it (SOCKMAIL_CAPTURE_MAX_MESSAGES,
	// -capture-max-messages).
	CaptureMaxMessages int
	// CaptureMaxTotal bounds the total size of the captured messages
	// kept, in bytes, the oldest dropped beyond it; at least
	// CaptureMaxSize (SOCKMAIL_CAPTURE_MAX_TOTAL, -capture-max-total).
	CaptureMaxTotal int64
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
	// OutboxConnections is how many connections to one server the worker
	// keeps open at most, the default of profiles that set none
	// (SOCKMAIL_OUTBOX_CONNECTIONS); OutboxPipeline is how many messages
	// to one server go over a connection in one pipelined batch, 1 for
	// none (SOCKMAIL_OUTBOX_PIPELINE).
	OutboxConcurrency int
	OutboxConnections int
	OutboxPipeline    int
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
}

// DefaultCaptureMaxMessages and DefaultCaptureMaxTotal bound what the
// capture server keeps.
const (
	DefaultCaptureMaxMessages = 1000
	DefaultCaptureMaxTotal    = 256 << 20
)

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
	DefaultOutboxConnections = 4
	DefaultOutboxPipeline    = 8
	DefaultOutboxLease       = 5 * time.Minute
	DefaultOutboxPoll        = 5 * time.Second
	DefaultOutboxMaxAge      = 72 * time.Hour
	DefaultOutboxBackoffBase = 30 * time.Second
	DefaultOutboxBackoffMax  = time.Hour
)

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
