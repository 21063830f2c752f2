package webform

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func validCompose() *Compose {
	f := NewCompose()
	f.To = "Someone <someone@example.test>, other@example.test"
	return f
}

func TestComposeValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(f *Compose)
		want   []string // fields with an error
	}{
		{"defaults are valid", func(f *Compose) {}, nil},
		{"ad hoc needs host and port", func(f *Compose) { f.ServerChoice = ServerAdhoc }, []string{"host", "port"}},
		{"ad hoc ok", func(f *Compose) { f.ServerChoice, f.Host, f.Port = ServerAdhoc, "mail.example.org", "587" }, nil},
		{"bad port", func(f *Compose) { f.ServerChoice, f.Host, f.Port = ServerAdhoc, "h", "0" }, []string{"port"}},
		{"host with a space", func(f *Compose) { f.ServerChoice, f.Host, f.Port = ServerAdhoc, "a b", "25" }, []string{"host"}},
		{"profile id", func(f *Compose) { f.ServerChoice = "12" }, nil},
		{"bad server", func(f *Compose) { f.ServerChoice = "x" }, []string{"server"}},
		{"bad TLS", func(f *Compose) { f.TLS = "ssl" }, []string{"tls"}},
		{"AUTH needs a user", func(f *Compose) { f.AuthMech = "PLAIN" }, []string{"username"}},
		{"bad AUTH", func(f *Compose) { f.AuthMech, f.Username = "NTLM", "u" }, []string{"auth_mech"}},
		{"HELO with a space", func(f *Compose) { f.Helo = "a b" }, []string{"helo"}},
		{"no From", func(f *Compose) { f.From = "" }, []string{"from"}},
		{"bad From", func(f *Compose) { f.From = "not an address" }, []string{"from"}},
		{"From with CRLF", func(f *Compose) { f.From = "a@example.test\r\nBcc: x@example.test" }, []string{"from"}},
		{"no recipient", func(f *Compose) { f.To = "" }, []string{"to"}},
		{"only Bcc", func(f *Compose) { f.To, f.Bcc = "", "b@example.test" }, nil},
		{"bad Cc", func(f *Compose) { f.Cc = "x@" }, []string{"cc"}},
		{"subject with LF", func(f *Compose) { f.Subject = "a\nBcc: x" }, []string{"subject"}},
		{"header without colon", func(f *Compose) { f.Headers = "X-Test yes" }, []string{"headers"}},
		{"header ok", func(f *Compose) { f.Headers = "X-Test: yes\r\nX-Two: 2\n" }, nil},
		{"DSN NEVER alone", func(f *Compose) { f.DSNNotify = []string{"NEVER", "SUCCESS"} }, []string{"dsn_notify"}},
		{"DSN ok", func(f *Compose) {
			f.DSNNotify, f.DSNReturn, f.DSNEnvID = []string{"SUCCESS", "FAILURE"}, "HDRS", "abc-1"
		}, nil},
		{"DSN bad ret", func(f *Compose) { f.DSNReturn = "ALL" }, []string{"dsn_ret"}},
		{"DSN envid with space", func(f *Compose) { f.DSNEnvID = "a b" }, []string{"dsn_envid"}},
		{"stop after", func(f *Compose) { f.StopAfter = "rcpt" }, nil},
		{"bad stop after", func(f *Compose) { f.StopAfter = "data" }, []string{"stop_after"}},
		{"body too long", func(f *Compose) { f.Text = strings.Repeat("x", maxBody+1) }, []string{"text"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := validCompose()
			tt.change(f)
			errs := f.Validate()
			if len(errs) != len(tt.want) {
				t.Fatalf("errors %v, want fields %v", errs, tt.want)
			}
			for _, k := range tt.want {
				if errs[k] == "" {
					t.Errorf("no error for %s (got %v)", k, errs)
				}
			}
		})
	}
}

func TestComposeParts(t *testing.T) {
	f := validCompose()
	f.Bcc = "hidden@example.test"
	f.DSNNotify = []string{"FAILURE"}
	if errs := f.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	to, cc, bcc, _ := f.Lists()
	if len(to) != 2 || len(cc) != 0 || len(bcc) != 1 || to[0].Name != "Someone" {
		t.Errorf("lists %v %v %v", to, cc, bcc)
	}
	if d := f.DSN(); d == nil || d.Notify[0] != "FAILURE" {
		t.Errorf("DSN %+v", d)
	}
	if NewCompose().DSN() != nil {
		t.Error("DSN without options")
	}
}

func TestReadCompose(t *testing.T) {
	form := url.Values{"server": {"adhoc"}, "host": {" mail.example.org "}, "port": {"587"}, "verify": {"on"},
		"from": {"a@example.test"}, "to": {"b@example.test"}, "dsn_notify": {"SUCCESS", "DELAY"}, "show_body": {"on"}}
	r, _ := http.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_ = r.ParseForm()
	f := ReadCompose(r)
	if f.Host != "mail.example.org" || !f.Verify || f.AllowInsecureAuth || len(f.DSNNotify) != 2 || !f.ShowBody {
		t.Errorf("%+v", f)
	}
}

func TestProfileValidate(t *testing.T) {
	ok := &Profile{Name: "relay", Server: Server{Host: "smtp.example.org", Port: "587", TLS: "starttls", AuthMech: "auto", Username: "u"}}
	if errs := ok.Validate(); len(errs) > 0 {
		t.Errorf("valid profile: %v", errs)
	}
	bad := &Profile{Server: Server{TLS: "x"}}
	errs := bad.Validate()
	for _, k := range []string{"name", "host", "port", "tls"} {
		if errs[k] == "" {
			t.Errorf("no error for %s", k)
		}
	}
}

func TestAccountValidate(t *testing.T) {
	tests := []struct {
		a    Account
		want []string
	}{
		{Account{"admin@example.org", "0123456789", "0123456789"}, nil},
		{Account{"admin", "0123456789", "0123456789"}, []string{"email"}},
		{Account{"Admin <admin@example.org>", "0123456789", "0123456789"}, []string{"email"}},
		{Account{"admin@example.org", "short", "short"}, []string{"password"}},
		{Account{"admin@example.org", strings.Repeat("x", 73), strings.Repeat("x", 73)}, []string{"password"}},
		{Account{"admin@example.org", "0123456789", "0123456780"}, []string{"confirm"}},
	}
	for _, tt := range tests {
		errs := tt.a.ValidateSignUp()
		if len(errs) != len(tt.want) {
			t.Errorf("%+v: %v, want %v", tt.a, errs, tt.want)
		}
		for _, k := range tt.want {
			if errs[k] == "" {
				t.Errorf("%+v: no error for %s", tt.a, k)
			}
		}
	}
	if errs := (&Account{}).ValidateSignIn(); errs["email"] == "" || errs["password"] == "" {
		t.Errorf("empty sign-in: %v", errs)
	}
}
