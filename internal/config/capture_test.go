package config

import (
	"io"
	"strings"
	"testing"
)

// TestCaptureLimitSettings covers the limits on what the capture server
// keeps: defaults, variables, flags over variables, and bad values.
func TestCaptureLimitSettings(t *testing.T) {
	load := func(args []string, env map[string]string) (*Config, error) {
		return Load(args, func(k string) string { return env[k] }, io.Discard)
	}
	c, err := load(nil, nil)
	if err != nil || c.CaptureMaxMessages != DefaultCaptureMaxMessages || c.CaptureMaxTotal != DefaultCaptureMaxTotal {
		t.Fatalf("defaults: %d messages, %d bytes, %v", c.CaptureMaxMessages, c.CaptureMaxTotal, err)
	}
	c, err = load(nil, map[string]string{"SOCKMAIL_CAPTURE_MAX_MESSAGES": "50", "SOCKMAIL_CAPTURE_MAX_TOTAL": "104857600"})
	if err != nil || c.CaptureMaxMessages != 50 || c.CaptureMaxTotal != 100<<20 {
		t.Errorf("env: %d, %d, %v", c.CaptureMaxMessages, c.CaptureMaxTotal, err)
	}
	c, err = load([]string{"-capture-max-messages", "7"}, map[string]string{"SOCKMAIL_CAPTURE_MAX_MESSAGES": "50"})
	if err != nil || c.CaptureMaxMessages != 7 {
		t.Errorf("flag over env: %d, %v", c.CaptureMaxMessages, err)
	}
	bad := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"SOCKMAIL_CAPTURE_MAX_MESSAGES": "0"}, "capture max messages 0"},
		{map[string]string{"SOCKMAIL_CAPTURE_MAX_MESSAGES": "lots"}, "SOCKMAIL_CAPTURE_MAX_MESSAGES"},
		{map[string]string{"SOCKMAIL_CAPTURE_MAX_TOTAL": "1000000"}, "at least the capture max size"},
		{map[string]string{"SOCKMAIL_CAPTURE_MAX_SIZE": "4096", "SOCKMAIL_CAPTURE_MAX_TOTAL": "2048"}, "capture max total 2048"},
	}
	for _, tt := range bad {
		if _, err := load(nil, tt.env); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %q", tt.env, err, tt.want)
		}
	}
}
