// Package testenv gives tests access to the real servers that
// .ci/servers.sh starts: a closed, loopback-only Postfix (with Dovecot SASL),
// an aiosmtpd sink, PostgreSQL and a headless Chromium.
//
// Every accessor takes the test's testing.TB. When the server or tool is not
// there, the test is skipped with a message saying how to start it
// ("make testservers"), except when the environment variable CI is "true":
// then the test fails, so that CI can never pass by skipping the real-server
// tier.
//
// The servers are described by a file of KEY=VALUE lines, written by
// ".ci/servers.sh up" to $SOCKMAIL_TESTSERVERS/env (default
// /tmp/sockmail-testservers/env).
package testenv

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Names and defaults shared with .ci/servers.sh.
const (
	// StateDirVar is the environment variable naming the servers' state
	// directory; .ci/servers.sh honours it too.
	StateDirVar = "SOCKMAIL_TESTSERVERS"
	// DefaultStateDir is the state directory when StateDirVar is unset.
	DefaultStateDir = "/tmp/sockmail-testservers"
	// EnvFileName is the name of the env file inside the state directory.
	EnvFileName = "env"
	// StartHint tells a developer how to start the test servers.
	StartHint = "start them with `make testservers` (runs .ci/servers.sh up; needs root on Debian)"

	// Domain is the mail domain both SMTP servers accept: any local part
	// at it is delivered into the server's Maildir.
	Domain = "example.test"
	// RejectRecipient550 is refused at RCPT TO with 550 5.1.1 (and at MAIL
	// FROM with 550 5.7.1 by Postfix).
	RejectRecipient550 = "reject550@example.test"
	// TempFailRecipient451 is refused at RCPT TO with 451 4.3.0 (and at
	// MAIL FROM with 451 4.3.0 by Postfix).
	TempFailRecipient451 = "temp451@example.test"
	// FullRecipient452 is refused at RCPT TO with 452 4.2.2.
	FullRecipient452 = "full452@example.test"
	// RejectHeader is a header line that makes both servers refuse the
	// message after DATA with 550 5.7.1.
	RejectHeader = "X-Test-Reject: yes"

	// dialTimeout bounds the check that a server answers.
	dialTimeout = 2 * time.Second
)

// Env is the content of the env file: KEY=VALUE pairs.
type Env map[string]string

// ParseEnv reads shell-style KEY=VALUE lines. Blank lines and lines
// starting with "#" are ignored, a leading "export " is allowed, and a value
// wholly enclosed in single or double quotes loses the quotes. Nothing is
// expanded. A line without "=" or with a key that is not a shell variable
// name is an error naming the line number.
func ParseEnv(r io.Reader) (Env, error) {
	env := Env{}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: no '=' in %q", n, line)
		}
		key = strings.TrimSpace(key)
		if !validKey(key) {
			return nil, fmt.Errorf("line %d: invalid key %q", n, key)
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		env[key] = value
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return env, nil
}

// validKey reports whether k is a shell variable name.
func validKey(k string) bool {
	if k == "" || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// StateDir returns the servers' state directory: $SOCKMAIL_TESTSERVERS or
// DefaultStateDir.
func StateDir() string {
	if d := os.Getenv(StateDirVar); d != "" {
		return d
	}
	return DefaultStateDir
}

// EnvFile returns the path of the env file written by .ci/servers.sh.
func EnvFile() string {
	return filepath.Join(StateDir(), EnvFileName)
}

// ReadEnv reads and parses EnvFile.
func ReadEnv() (Env, error) {
	f, err := os.Open(EnvFile())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env, err := ParseEnv(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvFile(), err)
	}
	return env, nil
}

// Require returns the values of keys, or an error naming the missing ones.
func (e Env) Require(keys ...string) ([]string, error) {
	var vals, missing []string
	for _, k := range keys {
		v, ok := e[k]
		if !ok || v == "" {
			missing = append(missing, k)
		}
		vals = append(vals, v)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s lacks %s (written by an older .ci/servers.sh?)", EnvFile(), strings.Join(missing, ", "))
	}
	return vals, nil
}

// InCI reports whether the environment variable CI is "true", in which case
// a missing server fails the test instead of skipping it.
func InCI() bool {
	return os.Getenv("CI") == "true"
}

// unavailable skips the test, or fails it under CI, saying that what is
// missing and how to get it. Callers must return right after it: a fake
// testing.TB may not stop the goroutine.
func unavailable(t testing.TB, what, hint string, err error) {
	t.Helper()
	if InCI() {
		t.Fatalf("testenv: %s unavailable: %v\n(CI=true: a missing test server is a failure; %s)", what, err, hint)
		return
	}
	t.Skipf("testenv: %s unavailable: %v; %s", what, err, hint)
}

// CA is the test CA that signed both SMTP servers' certificate; the
// server types embed it.
type CA struct {
	// RootCAs holds the test CA that signed the server certificate.
	RootCAs *x509.CertPool
	// CAFile is the PEM file of the test CA.
	CAFile string
	// ServerName is the name the certificate is valid for ("localhost").
	ServerName string
}

// TLSConfig returns a client TLS configuration that verifies the server
// against the test CA (RootCAs, ServerName "localhost").
func (ca CA) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: ca.RootCAs, ServerName: ca.ServerName, MinVersion: tls.VersionTLS12}
}

// loadTLS reads the test CA named in env.
func loadTLS(env Env) (CA, error) {
	v, err := env.Require("TLS_CA_FILE", "TLS_SERVER_NAME")
	if err != nil {
		return CA{}, err
	}
	pem, err := os.ReadFile(v[0])
	if err != nil {
		return CA{}, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return CA{}, fmt.Errorf("%s: no certificate found", v[0])
	}
	return CA{RootCAs: pool, CAFile: v[0], ServerName: v[1]}, nil
}

// checkListening returns an error unless every address accepts TCP
// connections.
func checkListening(addrs ...string) error {
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, dialTimeout)
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

// PostfixServer describes the test Postfix instance (the type cannot share
// the name of the Postfix function). All addresses are on
// 127.0.0.1; its certificate is valid for localhost, 127.0.0.1 and ::1.
type PostfixServer struct {
	// SMTPAddr (port 2525) is plain SMTP with STARTTLS offered and no AUTH;
	// unauthenticated relaying to other domains is refused with 554 5.7.1.
	SMTPAddr string
	// SMTPSAddr (port 2465) is implicit TLS with AUTH PLAIN, LOGIN and
	// CRAM-MD5; sending needs AUTH.
	SMTPSAddr string
	// SubmissionAddr (port 2587) requires STARTTLS before anything else
	// (530 5.7.0 otherwise), then AUTH before RCPT TO.
	SubmissionAddr string
	// Domain is the domain delivered locally (Domain constant).
	Domain string
	// User and Password are the SASL credentials accepted on the AUTH ports.
	User, Password string
	// Maildir receives every message for any address at Domain.
	Maildir string
	// MessageSizeLimit is the SIZE the server announces, in bytes.
	MessageSizeLimit int64
	// CA is the test CA the server certificate verifies against.
	CA
	// LogFile is Postfix's log, worth reading when a test fails.
	LogFile string
	// MasterPIDFile holds the process id of Postfix's master process
	// (SplitCPUs); empty in an env file written before it was added.
	MasterPIDFile string
}

// Postfix returns the running test Postfix, or skips (fails under CI=true)
// when it is not running.
func Postfix(t testing.TB) *PostfixServer {
	t.Helper()
	p, err := postfixFromEnv()
	if err != nil {
		unavailable(t, "Postfix test server", StartHint, err)
		return nil
	}
	if err := checkListening(p.SMTPAddr, p.SMTPSAddr, p.SubmissionAddr); err != nil {
		unavailable(t, "Postfix test server", StartHint, err)
		return nil
	}
	return p
}

// postfixFromEnv builds a PostfixServer from the env file.
func postfixFromEnv() (*PostfixServer, error) {
	env, err := ReadEnv()
	if err != nil {
		return nil, err
	}
	v, err := env.Require("POSTFIX_HOST", "POSTFIX_SMTP_PORT", "POSTFIX_SMTPS_PORT", "POSTFIX_SUBMISSION_PORT",
		"POSTFIX_DOMAIN", "POSTFIX_USER", "POSTFIX_PASSWORD", "POSTFIX_MAILDIR", "POSTFIX_MESSAGE_SIZE_LIMIT")
	if err != nil {
		return nil, err
	}
	ti, err := loadTLS(env)
	if err != nil {
		return nil, err
	}
	limit, err := strconv.ParseInt(v[8], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("POSTFIX_MESSAGE_SIZE_LIMIT: %w", err)
	}
	return &PostfixServer{
		SMTPAddr:         net.JoinHostPort(v[0], v[1]),
		SMTPSAddr:        net.JoinHostPort(v[0], v[2]),
		SubmissionAddr:   net.JoinHostPort(v[0], v[3]),
		Domain:           v[4],
		User:             v[5],
		Password:         v[6],
		Maildir:          v[7],
		MessageSizeLimit: limit,
		CA:               ti,
		LogFile:          env["POSTFIX_LOG"],
		MasterPIDFile:    env["POSTFIX_MASTER_PID_FILE"],
	}, nil
}

// Server describes a single-port SMTP test server (aiosmtpd).
type Server struct {
	// Addr is host:port: plain SMTP, STARTTLS offered but not required, no
	// usable AUTH.
	Addr string
	// Maildir receives every accepted message. Each file starts with
	// X-Sink-Peer, X-Sink-Helo, X-Sink-TLS, X-Sink-Mail-From and one
	// X-Sink-Rcpt-To line per recipient (CRLF-terminated), followed
	// byte-exactly by the message as sent (dot-unstuffed).
	Maildir string
	// MessageSizeLimit is the SIZE the server announces, in bytes.
	MessageSizeLimit int64
	// CA is the test CA the server certificate verifies against.
	CA
	// LogFile is the server's log.
	LogFile string
}

// AIOSMTPD returns the running aiosmtpd sink, or skips (fails under
// CI=true) when it is not running. It advertises SIZE, 8BITMIME, SMTPUTF8
// and STARTTLS only: no PIPELINING, CHUNKING, DSN or ENHANCEDSTATUSCODES.
func AIOSMTPD(t testing.TB) *Server {
	t.Helper()
	s, err := aiosmtpdFromEnv()
	if err != nil {
		unavailable(t, "aiosmtpd test server", StartHint, err)
		return nil
	}
	if err := checkListening(s.Addr); err != nil {
		unavailable(t, "aiosmtpd test server", StartHint, err)
		return nil
	}
	return s
}

// aiosmtpdFromEnv builds a Server for aiosmtpd from the env file.
func aiosmtpdFromEnv() (*Server, error) {
	env, err := ReadEnv()
	if err != nil {
		return nil, err
	}
	v, err := env.Require("AIOSMTPD_HOST", "AIOSMTPD_PORT", "AIOSMTPD_MAILDIR", "AIOSMTPD_MESSAGE_SIZE_LIMIT")
	if err != nil {
		return nil, err
	}
	ti, err := loadTLS(env)
	if err != nil {
		return nil, err
	}
	limit, err := strconv.ParseInt(v[3], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("AIOSMTPD_MESSAGE_SIZE_LIMIT: %w", err)
	}
	return &Server{
		Addr:             net.JoinHostPort(v[0], v[1]),
		Maildir:          v[2],
		MessageSizeLimit: limit,
		CA:               ti,
		LogFile:          env["AIOSMTPD_LOG"],
	}, nil
}

// UniqueToken returns a random string, unique across tests and runs, to put
// in a message (a Subject, a header, the body) and find it again with
// WaitForMessage.
func UniqueToken() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return "tok-" + hex.EncodeToString(b[:])
}

// UniqueAddress returns a fresh recipient address at Domain, such as
// "t-1f2e3d4c5b6a7988@example.test". The address itself is also a good
// WaitForMessage substring: Postfix writes it into Delivered-To, aiosmtpd
// into X-Sink-Rcpt-To.
func UniqueAddress() string {
	return "t-" + strings.TrimPrefix(UniqueToken(), "tok-") + "@" + Domain
}
