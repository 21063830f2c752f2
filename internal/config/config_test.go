package config

import (
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		got     func(c *Config) any // the fields the case is about
		want    any
		wantErr string
	}{
		{
			name: "defaults",
			got: func(c *Config) any {
				return []any{c.Listen, c.DataDir, c.CaptureAddr, c.DSN, c.BaseURL, c.SecureCookies, c.LogLevel, c.SendTimeout}
			},
			want: []any{"127.0.0.1:8080", "./data", "127.0.0.1:1025", filepath.Join("data", "sockmail.db"), "http://127.0.0.1:8080", false, slog.LevelInfo, DefaultSendTimeout},
		},
		{
			name: "env",
			env: map[string]string{
				"SOCKMAIL_LISTEN": "127.0.0.1:9000", "SOCKMAIL_DATA": "/tmp/x", "SOCKMAIL_LOG_LEVEL": "debug",
				"SOCKMAIL_CAPTURE_ADDR": "localhost:0", "SOCKMAIL_SEND_TIMEOUT": "30s",
			},
			got:  func(c *Config) any { return []any{c.Listen, c.DSN, c.LogLevel, c.CaptureAddr, c.SendTimeout} },
			want: []any{"127.0.0.1:9000", "/tmp/x/sockmail.db", slog.LevelDebug, "localhost:0", 30 * time.Second},
		},
		{
			name: "flag wins over env",
			args: []string{"-listen", "127.0.0.1:9001", "-database", "postgres://u@h/db"},
			env:  map[string]string{"SOCKMAIL_LISTEN": "127.0.0.1:9000"},
			got:  func(c *Config) any { return []any{c.Listen, c.DSN} },
			want: []any{"127.0.0.1:9001", "postgres://u@h/db"},
		},
		{
			name: "https base URL turns secure cookies on",
			args: []string{"-base-url", "https://mail.example.org/"},
			got:  func(c *Config) any { return []any{c.SecureCookies, c.BaseURL} },
			want: []any{true, "https://mail.example.org"},
		},
		{
			name: "secure cookies forced off",
			args: []string{"-base-url", "https://mail.example.org", "-secure-cookies", "false"},
			got:  func(c *Config) any { return c.SecureCookies },
			want: false,
		},
		{
			name: "secure cookies forced on over http",
			env:  map[string]string{"SOCKMAIL_SECURE_COOKIES": "on"},
			got:  func(c *Config) any { return c.SecureCookies },
			want: true,
		},
		{name: "capture off", args: []string{"-capture-addr", "off"}, got: func(c *Config) any { return c.CaptureEnabled() }, want: false},
		{name: "trusted proxies", env: map[string]string{"SOCKMAIL_TRUSTED_PROXIES": " 10.0.0.0/8, 192.0.2.7 ,::1"}, got: proxies,
			want: "10.0.0.0/8 192.0.2.7/32 ::1/128"},
		{name: "no trusted proxies by default", got: proxies, want: ""},
		{name: "bad trusted proxy", args: []string{"-trusted-proxies", "10.0.0.0/8,lb.example.org"}, wantErr: `"lb.example.org" is not an IP address`},
		{name: "bad trusted CIDR", args: []string{"-trusted-proxies", "10.0.0.0/33"}, wantErr: `"10.0.0.0/33" is not a CIDR range`},
		{name: "bad listen", args: []string{"-listen", "8080"}, wantErr: "listen address"},
		{name: "bad port", args: []string{"-listen", "127.0.0.1:99999"}, wantErr: "port must be"},
		{name: "capture not loopback", args: []string{"-capture-addr", "0.0.0.0:25"}, wantErr: "loopback only"},
		{name: "bad log level", env: map[string]string{"SOCKMAIL_LOG_LEVEL": "loud"}, wantErr: "log level"},
		{name: "bad duration env", env: map[string]string{"SOCKMAIL_SEND_TIMEOUT": "soon"}, wantErr: "SOCKMAIL_SEND_TIMEOUT"},
		{name: "timeout too short", args: []string{"-send-timeout", "1ms"}, wantErr: "send timeout"},
		{name: "bad base URL", args: []string{"-base-url", "mail.example.org"}, wantErr: "base URL"},
		{name: "bad secure cookies", args: []string{"-secure-cookies", "maybe"}, wantErr: "secure cookies"},
		{name: "half capture credentials", env: map[string]string{"SOCKMAIL_CAPTURE_USER": "u"}, wantErr: "capture credentials"},
		{name: "bad secret key", env: map[string]string{"SOCKMAIL_SECRET_KEY": "c2hvcnQ="}, wantErr: "secret key"},
		{name: "extra args", args: []string{"extra"}, wantErr: "unexpected arguments"},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: "not defined"},
		{
			name:    "several problems at once",
			args:    []string{"-listen", "x", "-capture-addr", "10.0.0.1:25"},
			wantErr: "capture address",
		},
		{
			name:    "a bad variable and a bad flag together",
			args:    []string{"-listen", "x"},
			env:     map[string]string{"SOCKMAIL_SEND_TIMEOUT": "soon"},
			wantErr: "SOCKMAIL_SEND_TIMEOUT: \"soon\" is not a duration like 90s or 2m\nlisten address \"x\"",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			c, err := Load(tt.args, getenv, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.got(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// proxies returns the trusted proxies of c as one string.
func proxies(c *Config) any {
	var got []string
	for _, n := range c.TrustedProxies {
		got = append(got, n.String())
	}
	return strings.Join(got, " ")
}

// TestValidateIsPure checks that Validate changes nothing in the
// configuration, valid or not: the derived values are Load's.
func TestValidateIsPure(t *testing.T) {
	for _, args := range [][]string{nil, {"-base-url", "https://mail.example.org", "-trusted-proxies", "10.0.0.0/8"}} {
		c, err := Load(args, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		before := *c
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate of a loaded config: %v", err)
		}
		if !reflect.DeepEqual(*c, before) {
			t.Errorf("Validate changed the config:\n%+v\nto\n%+v", before, *c)
		}
	}
	bad := Config{Listen: "x", SecureCookies: true}
	before := bad
	if err := bad.Validate(); err == nil {
		t.Fatal("bad config validated")
	}
	if !reflect.DeepEqual(bad, before) {
		t.Errorf("Validate changed a bad config: %+v", bad)
	}
}

func TestValidateZeroConfig(t *testing.T) {
	err := (&Config{}).Validate()
	if err == nil {
		t.Fatal("empty config validated")
	}
	for _, want := range []string{"listen address", "data directory", "database", "base URL", "send timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
