package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Load resolves the configuration in one step: args (without the program
// name) over the SOCKMAIL_* environment read by getenv over the defaults,
// then the values derived from others (database from data directory, base
// URL from listen address, secure cookies from the base URL). The result
// is checked by Validate; every problem is reported at once. Errors from
// the flag package (including -h) are returned as they are.
func Load(args []string, getenv func(string) string, usage io.Writer) (*Config, error) {
	l := &loader{getenv: getenv, fs: flag.NewFlagSet("sockmail serve", flag.ContinueOnError)}
	l.fs.SetOutput(usage)
	c := &Config{}
	var raw rawSettings
	l.define(c, &raw)
	if err := l.fs.Parse(args); err != nil {
		return nil, err
	}
	if l.fs.NArg() > 0 {
		l.fail(fmt.Errorf("unexpected arguments: %s", strings.Join(l.fs.Args(), " ")))
	}
	l.resolve(c, raw)
	errs := append(l.errs, c.problems()...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return c, nil
}

// rawSettings are the settings kept as given until resolve interprets them.
type rawSettings struct {
	logLevel, secureCookies, trustedProxies string
}

// loader defines the flags over the environment and collects the
// settings that cannot be parsed.
type loader struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
}

func (l *loader) fail(err error) { l.errs = append(l.errs, err) }

// env returns SOCKMAIL_name, or def when it is unset or empty.
func (l *loader) env(name, def string) string {
	if v := l.getenv("SOCKMAIL_" + name); v != "" {
		return v
	}
	return def
}

// define declares every setting: its flag (when it has one), its
// variable and its default.
func (l *loader) define(c *Config, raw *rawSettings) {
	l.str(&c.Listen, "listen", "LISTEN", DefaultListen, "HTTP listen address")
	l.str(&c.DataDir, "data", "DATA", DefaultDataDir, "data directory")
	l.fs.StringVar(&c.DSN, "database", l.env("DATABASE", l.env("DATABASE_URL", "")), "SQLite file or postgres:// URL; default DATA/sockmail.db (SOCKMAIL_DATABASE)")
	l.str(&c.CaptureAddr, "capture-addr", "CAPTURE_ADDR", DefaultCaptureAddr, `capture SMTP server address on loopback, or "off"`)
	l.str(&c.MetricsAddr, "metrics-addr", "METRICS_ADDR", "", "listen address serving /metrics without a token; empty: off")
	c.CaptureUser = l.env("CAPTURE_USER", "")
	c.CapturePassword = l.env("CAPTURE_PASSWORD", "")
	c.SecretKey = l.env("SECRET_KEY", "")
	l.str(&c.BaseURL, "base-url", "BASE_URL", "", "public URL of the web app; default http://LISTEN")
	l.str(&raw.secureCookies, "secure-cookies", "SECURE_COOKIES", "auto", "auto, true or false: Secure session cookies; auto = when the base URL is https")
	l.str(&c.CAFile, "ca-file", "CA_FILE", "", "PEM file of extra CAs trusted for sends")
	l.str(&raw.trustedProxies, "trusted-proxies", "TRUSTED_PROXIES", "", "comma-separated CIDR ranges or addresses of proxies whose X-Forwarded-For is believed")
	l.str(&raw.logLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	l.duration(&c.SendTimeout, "send-timeout", "SEND_TIMEOUT", DefaultSendTimeout, "time limit of one test send")
	l.duration(&c.SessionLifetime, "session-lifetime", "SESSION_LIFETIME", DefaultSessionLifetime, "how long a sign-in lasts")
	l.size(&c.CaptureMaxSize, "capture-max-size", "CAPTURE_MAX_SIZE", DefaultCaptureMaxSize, "largest message the capture server accepts, bytes")
	l.integer(&c.CaptureMaxMessages, "capture-max-messages", "CAPTURE_MAX_MESSAGES", DefaultCaptureMaxMessages, "captured messages kept; the oldest are dropped beyond it")
	l.size(&c.CaptureMaxTotal, "capture-max-total", "CAPTURE_MAX_TOTAL", DefaultCaptureMaxTotal, "total size of the captured messages kept, bytes; the oldest are dropped beyond it")
	l.size(&c.MaxUpload, "max-upload", "MAX_UPLOAD", DefaultMaxUpload, "largest compose form with attachments, bytes")
	l.size(&c.MaxStoredMessage, "max-stored-message", "MAX_STORED_MESSAGE", DefaultMaxStoredMsg, "largest message source stored with a send, bytes")
	l.integer(&c.RetentionDays, "retention-days", "RETENTION_DAYS", 0, "delete stored sends older than this many days; 0 keeps them")
	l.integer(&c.RetentionMax, "retention-max", "RETENTION_MAX", 0, "keep only the newest N stored sends; 0 keeps all")
	l.integer(&c.OutboxConcurrency, "outbox-concurrency", "OUTBOX_CONCURRENCY", DefaultOutboxConcurrency, "contact-form deliveries at once; 0 runs no outbox worker here")
	l.integer(&c.OutboxConnections, "outbox-connections", "OUTBOX_CONNECTIONS", DefaultOutboxConnections, "connections to one mail server at most (1 for servers that limit them)")
	l.integer(&c.OutboxPipeline, "outbox-pipeline", "OUTBOX_PIPELINE", DefaultOutboxPipeline, "contact messages to one server sent pipelined over a connection at once (1: one per round trip)")
	l.duration(&c.OutboxLease, "outbox-lease", "OUTBOX_LEASE", DefaultOutboxLease, "how long a claimed contact message is reserved; a crashed instance's are taken over after it")
	l.duration(&c.OutboxPoll, "outbox-poll", "OUTBOX_POLL", DefaultOutboxPoll, "how often the outbox is looked at between submissions")
	l.duration(&c.OutboxMaxAge, "outbox-max-age", "OUTBOX_MAX_AGE", DefaultOutboxMaxAge, "how long temporary delivery failures are retried")
	l.duration(&c.OutboxBackoffBase, "outbox-backoff-base", "OUTBOX_BACKOFF_BASE", DefaultOutboxBackoffBase, "first retry delay after a temporary failure (doubles each time)")
	l.duration(&c.OutboxBackoffMax, "outbox-backoff-max", "OUTBOX_BACKOFF_MAX", DefaultOutboxBackoffMax, "longest retry delay")
}

// str declares a string setting.
func (l *loader) str(p *string, name, envName, def, help string) {
	l.fs.StringVar(p, name, l.env(envName, def), help+" (SOCKMAIL_"+envName+")")
}

// envValue returns the variable envName parsed by parse, or def when it
// is unset; a value that does not parse is reported (it is not want) and
// def kept.
func envValue[T any](l *loader, envName string, def T, parse func(string) (T, error), want string) T {
	v := l.env(envName, "")
	if v == "" {
		return def
	}
	parsed, err := parse(v)
	if err != nil {
		l.fail(fmt.Errorf("SOCKMAIL_%s: %q is not %s", envName, v, want))
		return def
	}
	return parsed
}

// duration declares a duration setting.
func (l *loader) duration(p *time.Duration, name, envName string, def time.Duration, help string) {
	d := envValue(l, envName, def, time.ParseDuration, "a duration like 90s or 2m")
	l.fs.DurationVar(p, name, d, help+" (SOCKMAIL_"+envName+")")
}

// size declares a size in bytes.
func (l *loader) size(p *int64, name, envName string, def int64, help string) {
	parse := func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }
	l.fs.Int64Var(p, name, envValue(l, envName, def, parse, "a number of bytes"), help+" (SOCKMAIL_"+envName+")")
}

// integer declares a whole-number setting.
func (l *loader) integer(p *int, name, envName string, def int, help string) {
	l.fs.IntVar(p, name, envValue(l, envName, def, strconv.Atoi, "a whole number"), help+" (SOCKMAIL_"+envName+")")
}

// resolve interprets the settings kept as given and fills in the values
// derived from others.
func (l *loader) resolve(c *Config, raw rawSettings) {
	if err := c.LogLevel.UnmarshalText([]byte(raw.logLevel)); err != nil {
		l.fail(fmt.Errorf("log level %q: want debug, info, warn or error", raw.logLevel))
	}
	if c.DSN == "" && c.DataDir != "" {
		c.DSN = filepath.Join(c.DataDir, "sockmail.db")
	}
	if c.BaseURL == "" && c.Listen != "" {
		c.BaseURL = "http://" + c.Listen
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	secure, err := secureCookies(raw.secureCookies, c.BaseURL)
	if err != nil {
		l.fail(err)
	}
	c.SecureCookies = secure
	if raw.trustedProxies != "" {
		nets, err := ParseTrustedProxies(raw.trustedProxies)
		if err != nil {
			l.fail(fmt.Errorf("trusted proxies: %w", err))
		}
		c.TrustedProxies = nets
	}
}

// secureCookies interprets the secure-cookies setting: auto is on when
// the base URL is https.
func secureCookies(v, baseURL string) (bool, error) {
	switch strings.ToLower(v) {
	case "", "auto":
		return strings.HasPrefix(strings.ToLower(baseURL), "https://"), nil
	case "true", "yes", "1", "on":
		return true, nil
	case "false", "no", "0", "off":
		return false, nil
	}
	return false, fmt.Errorf("secure cookies %q: want auto, true or false", v)
}
