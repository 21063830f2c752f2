package config

import (
	"io"
	"strings"
	"testing"
)

// TestHistorySettings covers the settings of the send history: retention,
// the stored message cap and the database URL variable.
func TestHistorySettings(t *testing.T) {
	load := func(args []string, env map[string]string) (*Config, error) {
		return Load(args, func(k string) string { return env[k] }, io.Discard)
	}
	c, err := load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RetentionDays != 0 || c.RetentionMax != 0 || c.MaxStoredMessage != DefaultMaxStoredMsg {
		t.Errorf("defaults: days %d max %d stored %d", c.RetentionDays, c.RetentionMax, c.MaxStoredMessage)
	}
	c, err = load(nil, map[string]string{"SOCKMAIL_RETENTION_DAYS": "90", "SOCKMAIL_RETENTION_MAX": "100000", "SOCKMAIL_MAX_STORED_MESSAGE": "4096"})
	if err != nil || c.RetentionDays != 90 || c.RetentionMax != 100000 || c.MaxStoredMessage != 4096 {
		t.Errorf("env: %+v, %v", c, err)
	}
	c, err = load([]string{"-retention-days", "7", "-retention-max", "50"}, map[string]string{"SOCKMAIL_RETENTION_DAYS": "90"})
	if err != nil || c.RetentionDays != 7 || c.RetentionMax != 50 {
		t.Errorf("flags over env: %+v, %v", c, err)
	}

	pg := "postgres://sockmail@db.internal:5432/sockmail"
	if c, err := load(nil, map[string]string{"SOCKMAIL_DATABASE_URL": pg}); err != nil || c.DSN != pg {
		t.Errorf("SOCKMAIL_DATABASE_URL: %q, %v", c.DSN, err)
	}
	if c, err := load(nil, map[string]string{"SOCKMAIL_DATABASE_URL": pg, "SOCKMAIL_DATABASE": "/srv/x.db"}); err != nil || c.DSN != "/srv/x.db" {
		t.Errorf("SOCKMAIL_DATABASE wins: %q, %v", c.DSN, err)
	}

	bad := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"SOCKMAIL_RETENTION_DAYS": "-1"}, "retention days -1"},
		{map[string]string{"SOCKMAIL_RETENTION_DAYS": "ninety"}, "SOCKMAIL_RETENTION_DAYS"},
		{map[string]string{"SOCKMAIL_RETENTION_DAYS": "40000"}, "retention days"},
		{map[string]string{"SOCKMAIL_RETENTION_MAX": "-5"}, "retention max -5"},
		{map[string]string{"SOCKMAIL_RETENTION_MAX": "1e3"}, "SOCKMAIL_RETENTION_MAX"},
		{map[string]string{"SOCKMAIL_MAX_STORED_MESSAGE": "10"}, "max stored message 10"},
	}
	for _, tt := range bad {
		if _, err := load(nil, tt.env); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %q", tt.env, err, tt.want)
		}
	}
}
