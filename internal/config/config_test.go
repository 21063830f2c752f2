package config

import (
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c *Config)
		wantErr string
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c *Config) {
				if c.Listen != "127.0.0.1:8080" || c.DataDir != "./data" || c.CaptureAddr != "127.0.0.1:1025" {
					t.Errorf("got listen %q data %q capture %q", c.Listen, c.DataDir, c.CaptureAddr)
				}
				if c.DSN != filepath.Join("data", "sockmail.db") {
					t.Errorf("DSN = %q", c.DSN)
				}
				if c.BaseURL != "http://127.0.0.1:8080" || c.SecureCookies {
					t.Errorf("base %q secure %v", c.BaseURL, c.SecureCookies)
				}
				if c.LogLevel != slog.LevelInfo || c.SendTimeout != DefaultSendTimeout {
					t.Errorf("level %v timeout %v", c.LogLevel, c.SendTimeout)
				}
			},
		},
		{
			name: "env",
			env: map[string]string{
				"SOCKMAIL_LISTEN": "127.0.0.1:9000", "SOCKMAIL_DATA": "/tmp/x", "SOCKMAIL_LOG_LEVEL": "debug",
				"SOCKMAIL_CAPTURE_ADDR": "localhost:0", "SOCKMAIL_SEND_TIMEOUT": "30s",
			},
			check: func(t *testing.T, c *Config) {
				if c.Listen != "127.0.0.1:9000" || c.DSN != "/tmp/x/sockmail.db" || c.LogLevel != slog.LevelDebug || c.CaptureAddr != "localhost:0" || c.SendTimeout != 30*time.Second {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "flag wins over env",
			args: []string{"-listen", "127.0.0.1:9001", "-database", "postgres://u@h/db"},
			env:  map[string]string{"SOCKMAIL_LISTEN": "127.0.0.1:9000"},
			check: func(t *testing.T, c *Config) {
				if c.Listen != "127.0.0.1:9001" || c.DSN != "postgres://u@h/db" {
					t.Errorf("got %q %q", c.Listen, c.DSN)
				}
			},
		},
		{
			name: "https base URL turns secure cookies on",
			args: []string{"-base-url", "https://mail.example.org/"},
			check: func(t *testing.T, c *Config) {
				if !c.SecureCookies || c.BaseURL != "https://mail.example.org" {
					t.Errorf("secure %v base %q", c.SecureCookies, c.BaseURL)
				}
			},
		},
		{
			name: "secure cookies forced off",
			args: []string{"-base-url", "https://mail.example.org", "-secure-cookies", "false"},
			check: func(t *testing.T, c *Config) {
				if c.SecureCookies {
					t.Error("secure cookies on")
				}
			},
		},
		{name: "capture off", args: []string{"-capture-addr", "off"}, check: func(t *testing.T, c *Config) {
			if c.CaptureEnabled() {
				t.Error("capture enabled")
			}
		}},
		{name: "trusted proxies", env: map[string]string{"SOCKMAIL_TRUSTED_PROXIES": " 10.0.0.0/8, 192.0.2.7 ,::1"}, check: func(t *testing.T, c *Config) {
			var got []string
			for _, n := range c.TrustedProxies {
				got = append(got, n.String())
			}
			if want := "10.0.0.0/8 192.0.2.7/32 ::1/128"; strings.Join(got, " ") != want {
				t.Errorf("trusted proxies %q, want %q", got, want)
			}
		}},
		{name: "no trusted proxies by default", check: func(t *testing.T, c *Config) {
			if len(c.TrustedProxies) != 0 {
				t.Errorf("trusted proxies %v", c.TrustedProxies)
			}
		}},
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
			tt.check(t, c)
		})
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
