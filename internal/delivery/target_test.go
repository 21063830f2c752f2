package delivery_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"sockmail/internal/capture"
	"sockmail/internal/crypt"
	"sockmail/internal/delivery"
	"sockmail/internal/store"
	"sockmail/smtp"
)

// profiles is a ProfileStore and SendReader over maps; fail makes every
// read fail as a broken database would.
type profiles struct {
	byID  map[int64]*store.Profile
	sends map[int64]*store.Send
	fail  error
}

func (p *profiles) Profile(_ context.Context, id int64) (*store.Profile, error) {
	if p.fail != nil {
		return nil, p.fail
	}
	if pr, ok := p.byID[id]; ok {
		return pr, nil
	}
	return nil, fmt.Errorf("store: profile %d: %w", id, store.ErrNotFound)
}

func (p *profiles) Send(_ context.Context, id int64) (*store.Send, error) {
	if s, ok := p.sends[id]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("store: send %d: %w", id, store.ErrNotFound)
}

func newBox(t *testing.T, b byte) *crypt.Box {
	t.Helper()
	box, err := crypt.New([]byte(strings.Repeat(string(rune(b)), 32)))
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func seal(t *testing.T, box *crypt.Box, s string) []byte {
	t.Helper()
	b, err := box.Seal([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// want is what a resolved configuration must say.
type want struct {
	addr     string
	tls      smtp.TLSMode
	insecure bool
	helo     string
	auth     *smtp.Auth
	allow    bool
}

func TestResolve(t *testing.T) {
	box, otherBox := newBox(t, 'k'), newBox(t, 'o')
	ps := &profiles{
		byID: map[int64]*store.Profile{
			1: {ID: 1, Name: "relay", Host: "smtp.example.test", Port: 587, TLSMode: "starttls", AuthMech: "PLAIN",
				Username: "u", PasswordEnc: seal(t, box, "s3cret"), HeloName: "me.example.test"},
			2: {ID: 2, Name: "lab", Host: "2001:db8::1", Port: 25, TLSMode: "none", InsecureSkipVerify: true, AuthMech: "auto", Username: "v"},
			3: {ID: 3, Name: "broken", Host: "x.test", Port: 25, TLSMode: "ssl3"},
			4: {ID: 4, Name: "rekeyed", Host: "y.test", Port: 465, TLSMode: "implicit", AuthMech: "LOGIN", Username: "w",
				PasswordEnc: seal(t, otherBox, "old")},
			5: {ID: 5, Name: "lab plain auth", Host: "lab.test", Port: 25, TLSMode: "none", AuthMech: "PLAIN", Username: "x",
				PasswordEnc: seal(t, box, "pw"), AllowInsecureAuth: true},
		},
		sends: map[int64]*store.Send{7: {ID: 7, Server: "mx.example.test:25"}, 8: {ID: 8}},
	}
	on := delivery.NewResolver(delivery.ResolverDeps{Profiles: ps, Sends: ps, Opener: box, Capture: delivery.Capture{Addr: "127.0.0.1:2525"}})
	off := delivery.NewResolver(delivery.ResolverDeps{Profiles: ps, Sends: ps, Opener: box})
	tests := []struct {
		name     string
		r        *delivery.Resolver
		target   delivery.Target
		want     want
		err      error  // the sentinel, nil for success
		field    string // the form field of the error
		msg      string // part of the message
		notFound bool   // the error also matches store.ErrNotFound
	}{
		{name: "capture", r: on, target: delivery.Target{Kind: delivery.KindCapture, TLS: "starttls", Verify: true, Helo: "h.test"},
			want: want{addr: "127.0.0.1:2525", tls: smtp.TLSStartTLS, helo: "h.test"}},
		{name: "capture with auth", r: on, target: delivery.Target{Kind: delivery.KindCapture, TLS: "none", AuthMech: "auto", Username: "a", Password: "p", AllowInsecureAuth: true},
			want: want{addr: "127.0.0.1:2525", tls: smtp.TLSNone, insecure: true, auth: &smtp.Auth{Username: "a", Password: "p"}, allow: true}},
		{name: "capture off", r: off, target: delivery.Target{Kind: delivery.KindCapture, TLS: "none"},
			err: delivery.ErrCaptureOff, field: "server", msg: "capture server is off"},
		{name: "server typed in", r: on, target: delivery.Target{Kind: delivery.KindServer, Host: "2001:db8::2", Port: "587", TLS: "implicit", Verify: true, AuthMech: "CRAM-MD5", Username: "c", Password: "d"},
			want: want{addr: "[2001:db8::2]:587", tls: smtp.TLSImplicit, auth: &smtp.Auth{Mechanism: "CRAM-MD5", Username: "c", Password: "d"}}},
		{name: "server without host", r: on, target: delivery.Target{Kind: delivery.KindServer, Port: "25", TLS: "none"},
			err: delivery.ErrBadTarget, field: "host"},
		{name: "bad TLS mode typed", r: on, target: delivery.Target{Kind: delivery.KindServer, Host: "a.test", Port: "25", TLS: "tls9"},
			err: delivery.ErrBadTLSMode, field: "tls", msg: "Choose a TLS mode"},
		{name: "profile", r: on, target: delivery.Target{Kind: delivery.KindProfile, ProfileID: 1, TLS: "none", Helo: "ignored"},
			want: want{addr: "smtp.example.test:587", tls: smtp.TLSStartTLS, helo: "me.example.test", auth: &smtp.Auth{Mechanism: "PLAIN", Username: "u", Password: "s3cret"}}},
		{name: "profile auto auth, no password, IPv6", r: on, target: delivery.Target{Kind: delivery.KindProfile, ProfileID: 2},
			want: want{addr: "[2001:db8::1]:25", tls: smtp.TLSNone, insecure: true, auth: &smtp.Auth{Username: "v"}}},
		{name: "profile allowing AUTH without TLS", r: on, target: delivery.Target{Kind: delivery.KindProfile, ProfileID: 5},
			want: want{addr: "lab.test:25", tls: smtp.TLSNone, auth: &smtp.Auth{Mechanism: "PLAIN", Username: "x", Password: "pw"}, allow: true}},
		{name: "profile gone", r: on, target: delivery.Target{Kind: delivery.KindProfile, ProfileID: 9},
			err: delivery.ErrProfileNotFound, field: "server", msg: "no longer exists", notFound: true},
		{name: "profile with bad TLS mode", r: on, target: delivery.Target{Kind: delivery.KindProfile, ProfileID: 3},
			err: delivery.ErrBadTLSMode, field: "server", msg: "edit the profile"},
		{name: "profile password undecryptable", r: on, target: delivery.Target{Kind: delivery.KindProfile, ProfileID: 4},
			err: delivery.ErrPasswordUndecryptable, field: "server", msg: "Save the profile's password again"},
		{name: "same as an earlier send", r: on, target: delivery.Target{Kind: delivery.KindSameAs, SendID: 7, TLS: "starttls-optional"},
			want: want{addr: "mx.example.test:25", tls: smtp.TLSStartTLSOptional, insecure: true}},
		{name: "earlier send gone", r: on, target: delivery.Target{Kind: delivery.KindSameAs, SendID: 70, TLS: "none"},
			err: delivery.ErrSendNotFound, field: "server", notFound: true},
		{name: "earlier send without server", r: on, target: delivery.Target{Kind: delivery.KindSameAs, SendID: 8, TLS: "none"},
			err: delivery.ErrBadTarget, field: "server"},
		{name: "no kind", r: on, target: delivery.Target{TLS: "none"}, err: delivery.ErrBadTarget, field: "server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.r.Resolve(context.Background(), tt.target)
			if tt.err != nil {
				checkTargetError(t, err, tt.err, tt.field, tt.msg, tt.notFound)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkConfig(t, cfg, tt.want)
		})
	}
}

func checkTargetError(t *testing.T, err, sentinel error, field, msg string, notFound bool) {
	t.Helper()
	var te *delivery.TargetError
	if !errors.As(err, &te) || !errors.Is(err, sentinel) {
		t.Fatalf("error %v, want a TargetError with %v", err, sentinel)
	}
	if te.Field != field || !strings.Contains(te.Msg, msg) {
		t.Errorf("field %q message %q, want %q and %q", te.Field, te.Msg, field, msg)
	}
	if errors.Is(err, store.ErrNotFound) != notFound {
		t.Errorf("errors.Is(store.ErrNotFound) = %v", !notFound)
	}
}

func checkConfig(t *testing.T, cfg smtp.Config, w want) {
	t.Helper()
	if cfg.Addr != w.addr || cfg.TLS != w.tls || cfg.InsecureSkipVerify != w.insecure || cfg.LocalName != w.helo || cfg.AllowInsecureAuth != w.allow {
		t.Errorf("config %q %v insecure=%v helo=%q allow=%v, want %+v", cfg.Addr, cfg.TLS, cfg.InsecureSkipVerify, cfg.LocalName, cfg.AllowInsecureAuth, w)
	}
	switch {
	case (cfg.Auth == nil) != (w.auth == nil):
		t.Errorf("auth %+v, want %+v", cfg.Auth, w.auth)
	case cfg.Auth != nil && *cfg.Auth != *w.auth:
		t.Errorf("auth %+v, want %+v", *cfg.Auth, *w.auth)
	}
	if cfg.Transcript == nil || cfg.TLSConfig == nil || cfg.TLSConfig.RootCAs == nil {
		t.Error("no transcript or no root CAs")
	}
}

// TestResolveFailingStore: a database error is no TargetError and is
// temporary for the outbox (it does not match store.ErrNotFound).
func TestResolveFailingStore(t *testing.T) {
	boom := errors.New("database down")
	r := delivery.NewResolver(delivery.ResolverDeps{Profiles: &profiles{fail: boom}})
	_, err := r.Profile(context.Background(), 5)
	var te *delivery.TargetError
	if !errors.Is(err, boom) || errors.As(err, &te) || errors.Is(err, store.ErrNotFound) {
		t.Errorf("error %v", err)
	}
}

// TestResolverProfileZero: for the outbox, profile 0 is the capture
// server in plain SMTP, or ErrCaptureOff.
func TestResolverProfileZero(t *testing.T) {
	r := delivery.NewResolver(delivery.ResolverDeps{Profiles: &profiles{}, Capture: delivery.Capture{Addr: "127.0.0.1:2526"}})
	cfg, err := r.Profile(context.Background(), 0)
	if err != nil || cfg.Addr != "127.0.0.1:2526" || cfg.TLS != smtp.TLSNone || cfg.Auth != nil {
		t.Errorf("profile 0: %+v, %v", cfg, err)
	}
	_, err = delivery.NewResolver(delivery.ResolverDeps{Profiles: &profiles{}}).Profile(context.Background(), 0)
	if !errors.Is(err, delivery.ErrCaptureOff) {
		t.Errorf("profile 0 with the capture server off: %v", err)
	}
}

// TestResolverTrustsCaptureCertificate: the capture server's self-signed
// certificate verifies against the roots of every resolved config.
func TestResolverTrustsCaptureCertificate(t *testing.T) {
	cert, err := capture.LoadOrCreateCertificate(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	r := delivery.NewResolver(delivery.ResolverDeps{Profiles: &profiles{}, RootCAs: x509.NewCertPool(),
		Capture: delivery.Capture{Addr: "127.0.0.1:2525", Certificate: leaf}})
	cfg, err := r.Resolve(context.Background(), delivery.Target{Kind: delivery.KindCapture, TLS: "starttls", Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: cfg.TLSConfig.RootCAs, CurrentTime: leaf.NotBefore.Add(time.Minute)}); err != nil {
		t.Errorf("capture certificate not trusted: %v", err)
	}
	without := delivery.NewResolver(delivery.ResolverDeps{Profiles: &profiles{}, RootCAs: x509.NewCertPool()})
	cfg, _ = without.Resolve(context.Background(), delivery.Target{Kind: delivery.KindServer, Host: "a.test", Port: "25", TLS: "starttls"})
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: cfg.TLSConfig.RootCAs, CurrentTime: leaf.NotBefore.Add(time.Minute)}); err == nil {
		t.Error("a certificate trusted without being given")
	}
}

// TestResolverProfileInsecureAuth: the outbox's path to a profile
// (Resolver.Profile, used by contact-form delivery) carries the profile's
// "Allow AUTH without TLS" as the compose path does, on and off.
func TestResolverProfileInsecureAuth(t *testing.T) {
	box := newBox(t, 'k')
	ps := &profiles{byID: map[int64]*store.Profile{
		1: {ID: 1, Name: "lab", Host: "lab.test", Port: 25, TLSMode: "none", AuthMech: "PLAIN", Username: "u",
			PasswordEnc: seal(t, box, "pw"), AllowInsecureAuth: true},
		2: {ID: 2, Name: "strict", Host: "lab.test", Port: 25, TLSMode: "none", AuthMech: "PLAIN", Username: "u",
			PasswordEnc: seal(t, box, "pw")},
	}}
	r := delivery.NewResolver(delivery.ResolverDeps{Profiles: ps, Opener: box})
	for _, tt := range []struct {
		id   int64
		want bool
	}{{1, true}, {2, false}} {
		cfg, err := r.Profile(context.Background(), tt.id)
		if err != nil || cfg.AllowInsecureAuth != tt.want || cfg.Auth == nil || cfg.Auth.Password != "pw" {
			t.Errorf("profile %d: allow %v auth %+v, %v; want allow %v", tt.id, cfg.AllowInsecureAuth, cfg.Auth, err, tt.want)
		}
	}
}
