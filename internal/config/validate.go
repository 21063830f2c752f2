package config

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"
)

// Validate checks every field and reports all problems at once, each
// naming the setting to fix. It is pure: it changes nothing, in c or
// elsewhere, and does no I/O.
func (c *Config) Validate() error {
	if errs := c.problems(); len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

// problems returns the problems Validate reports.
func (c *Config) problems() []error {
	var errs []error
	for _, check := range c.checks() {
		if err := check(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// checks lists the checks of Validate, in the order their problems are
// reported.
func (c *Config) checks() []func() error {
	const gib = 1 << 30
	const maxDays = 30 * 24 * time.Hour
	return []func() error{
		c.checkListen,
		nonEmpty("data directory", c.DataDir),
		nonEmpty("database", c.DSN),
		c.checkCaptureAddr,
		c.checkMetricsAddr,
		c.checkCaptureCredentials,
		c.checkBaseURL,
		inRange("send timeout", c.SendTimeout, time.Second, time.Hour, "want between 1s and 1h"),
		inRange("session lifetime", c.SessionLifetime, time.Minute, maxDays, "want between 1m and 720h"),
		inRange("capture max size", c.CaptureMaxSize, 1024, gib, "want between 1024 and 1073741824 bytes"),
		inRange("capture max messages", c.CaptureMaxMessages, 1, 1_000_000, "want 1 to 1000000"),
		inRange("capture max total", c.CaptureMaxTotal, c.CaptureMaxSize, 64*gib,
			fmt.Sprintf("want at least the capture max size (%d bytes) and at most 68719476736 bytes", c.CaptureMaxSize)),
		inRange("max upload", c.MaxUpload, 1024, gib, "want between 1024 and 1073741824 bytes"),
		inRange("retention days", c.RetentionDays, 0, 100*365, "want 0 (keep) to 36500"),
		inRange("retention max", c.RetentionMax, 0, 1_000_000_000, "want 0 (keep all) to 1000000000"),
		inRange("max stored message", c.MaxStoredMessage, 1024, gib, "want between 1024 and 1073741824 bytes"),
		inRange("outbox concurrency", c.OutboxConcurrency, 0, 64, "want 0 (no worker) to 64"),
		inRange("outbox connections", c.OutboxConnections, 1, 64, "want 1 to 64"),
		inRange("outbox pipeline", c.OutboxPipeline, 1, 100, "want 1 (no pipelining) to 100"),
		inRange("outbox lease", c.OutboxLease, 2*time.Second, time.Hour, "want between 2s and 1h"),
		inRange("outbox poll", c.OutboxPoll, 10*time.Millisecond, 10*time.Minute, "want between 10ms and 10m"),
		inRange("outbox max age", c.OutboxMaxAge, time.Minute, maxDays, "want between 1m and 720h"),
		inRange("outbox backoff base", c.OutboxBackoffBase, 10*time.Millisecond, time.Hour, "want between 10ms and 1h"),
		inRange("outbox backoff max", c.OutboxBackoffMax, c.OutboxBackoffBase, 24*time.Hour,
			fmt.Sprintf("want at least the base (%s) and at most 24h", c.OutboxBackoffBase)),
		c.checkSecretKey,
	}
}

// nonEmpty returns the check that value is set.
func nonEmpty(setting, value string) func() error {
	return func() error {
		if value == "" {
			return fmt.Errorf("%s: must not be empty", setting)
		}
		return nil
	}
}

// inRange returns the check that lo <= v <= hi; the problem reads
// "SETTING V: WANT".
func inRange[T cmp.Ordered](setting string, v, lo, hi T, want string) func() error {
	return func() error {
		if v < lo || v > hi {
			return fmt.Errorf("%s %v: %s", setting, v, want)
		}
		return nil
	}
}

func (c *Config) checkListen() error {
	_, port, err := net.SplitHostPort(c.Listen)
	switch {
	case err != nil:
		return fmt.Errorf("listen address %q: want host:port, e.g. 127.0.0.1:8080", c.Listen)
	case !validPort(port):
		return fmt.Errorf("listen address %q: port must be 0-65535", c.Listen)
	}
	return nil
}

func (c *Config) checkMetricsAddr() error {
	if c.MetricsAddr == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || !validPort(port) {
		return fmt.Errorf("metrics address %q: want host:port, e.g. 127.0.0.1:9464", c.MetricsAddr)
	}
	return nil
}

func (c *Config) checkCaptureAddr() error {
	if !c.CaptureEnabled() {
		return nil
	}
	host, port, err := net.SplitHostPort(c.CaptureAddr)
	switch {
	case err != nil:
		return fmt.Errorf(`capture address %q: want host:port on loopback, e.g. 127.0.0.1:1025, or "off"`, c.CaptureAddr)
	case !validPort(port):
		return fmt.Errorf("capture address %q: port must be 0-65535", c.CaptureAddr)
	case !isLoopback(host):
		return fmt.Errorf("capture address %q: the capture server listens on loopback only (127.0.0.1, ::1 or localhost)", c.CaptureAddr)
	}
	return nil
}

func (c *Config) checkCaptureCredentials() error {
	if (c.CaptureUser == "") != (c.CapturePassword == "") {
		return errors.New("capture credentials: set both SOCKMAIL_CAPTURE_USER and SOCKMAIL_CAPTURE_PASSWORD, or neither")
	}
	return nil
}

func (c *Config) checkBaseURL() error {
	u, err := url.Parse(c.BaseURL)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		return fmt.Errorf("base URL %q: want an absolute http:// or https:// URL", c.BaseURL)
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("base URL %q: must not have a query or fragment", c.BaseURL)
	}
	return nil
}

func (c *Config) checkSecretKey() error {
	if c.SecretKey == "" {
		return nil
	}
	if k, err := base64.StdEncoding.DecodeString(c.SecretKey); err != nil || len(k) != 32 {
		return errors.New("secret key: SOCKMAIL_SECRET_KEY must be 32 bytes in base64 (openssl rand -base64 32)")
	}
	return nil
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
