package main

// Tests of display names in the address flags of "sockmail send": the
// envelope takes the address alone, the header keeps the name.

import (
	"bytes"
	"mime"
	"net/mail"
	"reflect"
	"strings"
	"testing"

	"sockmail/internal/testenv"
)

// headerAddresses parses the named address field of a rendered message,
// decoding RFC 2047 display names, as "Name <addr>" strings.
func headerAddresses(t *testing.T, msg, field string) []string {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(msg))
	if err != nil {
		t.Fatalf("message does not parse: %v\n%s", err, msg)
	}
	v := m.Header.Get(field)
	if v == "" {
		return nil
	}
	p := mail.AddressParser{WordDecoder: new(mime.WordDecoder)}
	list, err := p.ParseList(v)
	if err != nil {
		t.Fatalf("%s %q does not parse: %v", field, v, err)
	}
	var out []string
	for _, a := range list {
		out = append(out, a.Name+" <"+a.Address+">")
	}
	return out
}

func TestParseSendDisplayNames(t *testing.T) {
	// addrs returns the envelope and the decoded From, To, Cc and
	// Reply-To fields of message 1.
	addrs := func(t *testing.T, p *sendPlan) any {
		msg := render(t, p.first)
		env := envelopeOf(p.first)
		return []any{env.From, env.To, headerAddresses(t, msg, "From"), headerAddresses(t, msg, "To"),
			headerAddresses(t, msg, "Cc"), headerAddresses(t, msg, "Reply-To")}
	}
	tests := []parseCase{
		{name: "bare addresses as before", args: []string{"--from", "a@example.org", "--to", "b@example.org"}, got: addrs,
			want: []any{"a@example.org", []string{"b@example.org"}, []string{" <a@example.org>"}, []string{" <b@example.org>"}, []string(nil), []string(nil)}},
		{name: "ASCII names", args: []string{"--from", "Ada Example <ada@example.org>", "--to", "Bob <bob@example.org>", "--cc", `"Carol C." <carol@example.org>`},
			got: addrs,
			want: []any{"ada@example.org", []string{"bob@example.org", "carol@example.org"}, []string{"Ada Example <ada@example.org>"},
				[]string{"Bob <bob@example.org>"}, []string{"Carol C. <carol@example.org>"}, []string(nil)},
			has: []string{"From: Ada Example <ada@example.org>\r\n", "To: Bob <bob@example.org>\r\n"}},
		{name: "non-ASCII names are encoded", args: []string{"--from", "Zoë Ångström <zoe@example.org>", "--to", "Jürgen <j@example.org>", "--reply-to", "Søren <s@example.org>"},
			got: addrs,
			want: []any{"zoe@example.org", []string{"j@example.org"}, []string{"Zoë Ångström <zoe@example.org>"},
				[]string{"Jürgen <j@example.org>"}, []string(nil), []string{"Søren <s@example.org>"}},
			has: []string{"=?utf-8?"}},
		{name: "quoted comma is not a separator", args: []string{"--from", "a@example.org", "--to", `A <a@example.org>, "Last, First" <b@example.org>`, "--to", "c@example.org"},
			got: addrs,
			want: []any{"a@example.org", []string{"a@example.org", "b@example.org", "c@example.org"}, []string{" <a@example.org>"},
				[]string{"A <a@example.org>", "Last, First <b@example.org>", " <c@example.org>"}, []string(nil), []string(nil)}},
		{name: "angle brackets without a name", args: []string{"--from", "<a@example.org>", "--to", "<b@example.org>"}, got: addrs,
			want: []any{"a@example.org", []string{"b@example.org"}, []string{" <a@example.org>"}, []string{" <b@example.org>"}, []string(nil), []string(nil)}},
		{name: "bcc name accepted, neither name nor address written", args: []string{"--from", "a@example.org", "--to", "b@example.org", "--bcc", "Hidden Person <hidden@example.org>"},
			got: func(t *testing.T, p *sendPlan) any {
				msg := render(t, p.first)
				return []any{envelopeOf(p.first).To, strings.Contains(msg, "hidden@"), strings.Contains(msg, "Hidden Person")}
			},
			want: []any{[]string{"b@example.org", "hidden@example.org"}, false, false}},
		{name: "raw data takes the envelope address alone", args: []string{"--from", "Ada <ada@example.org>", "--to", "Bob <bob@example.org>", "--data", writeFile(t, "m.eml", "Subject: raw\n\nbody\n")},
			got: func(_ *testing.T, p *sendPlan) any {
				env := envelopeOf(p.first)
				return []any{env.From, env.To}
			},
			want: []any{"ada@example.org", []string{"bob@example.org"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.check(t) })
	}
}

func TestParseSendBadAddresses(t *testing.T) {
	base := []string{"--from", "a@example.org", "--to", "b@example.org"}
	tests := []struct {
		name string
		args []string
		want []string // each in the error
	}{
		{"CR in a from name", []string{"--from", "Ada\r\nBcc: v@example.org <a@example.org>", "--to", "b@example.org"}, []string{"--from", "line break"}},
		{"LF in a to name", append([]string{"--to", "Bob\n <b@example.org>"}, base...), []string{"--to", "line break"}},
		{"missing @", append([]string{"--to", "Bob <bob>"}, base...), []string{`--to "Bob <bob>"`, "@"}},
		{"missing @ in from", []string{"--from", "Ada Example", "--to", "b@example.org"}, []string{`--from "Ada Example"`, "want local@domain"}},
		{"unbalanced quote", append([]string{"--cc", `"Ada <a@example.org>`}, base...), []string{"--cc", "unclosed quoted-string"}},
		{"unclosed angle bracket", append([]string{"--to", "Ada <a@example.org"}, base...), []string{"--to", "unclosed angle-addr"}},
		{"stray closing angle bracket", append([]string{"--to", "Ada a@example.org>"}, base...), []string{"--to", "angle-addr"}},
		{"empty angle brackets", append([]string{"--bcc", "Ada <>"}, base...), []string{"--bcc"}},
		{"two senders", []string{"--from", "a@example.org, b@example.org", "--to", "b@example.org"}, []string{"--from", "want one address"}},
		{"quoted local part with a space", append([]string{"--to", `"x y"@example.org`}, base...), []string{"--to", "dot-atom"}},
		{"bad reply-to name", append([]string{"--reply-to", `"Help <help@example.org>`}, base...), []string{"--reply-to", "unclosed quoted-string"}},
		{"empty to", append([]string{"--to", " "}, base...), []string{"--to", "no address"}},
		{"From as a custom header", append([]string{"--header", "From: Ada <a@example.org>"}, base...), []string{"--header", "use --from", "Name <local@domain>"}},
		{"reply-to as a custom header", append([]string{"--header", "reply-to: h@example.org"}, base...), []string{"use --reply-to"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSend(tc.args, noEnv)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// TestPostfixDisplayNames sends with non-ASCII display names to the real
// Postfix and checks the delivered message: the header fields carry the
// names RFC 2047-encoded, the envelope (Return-Path, the "for <...>" of
// the trace) the bare addresses.
func TestPostfixDisplayNames(t *testing.T) {
	p := testenv.Postfix(t)
	if p == nil {
		return
	}
	token, to, cc := testenv.UniqueToken(), testenv.UniqueAddress(), testenv.UniqueAddress()
	from := "Zoë Ångström <" + p.User + ">"
	code, stdout, stderr := run(t, "--server", p.SMTPAddr, "--tls", "none", "--from", from,
		"--to", `"Müller, Jürgen" <`+to+`>`, "--cc", "Ωmega <"+cc+">",
		"--subject", "names "+token, "--timeout", "15s")
	if code != 0 {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"-> MAIL FROM:<" + p.User + ">", "-> RCPT TO:<" + to + ">", "-> RCPT TO:<" + cc + ">"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("transcript lacks %q:\n%s", want, stdout)
		}
	}
	// One copy per recipient; X-Original-To is the RCPT TO address Postfix
	// received (with two recipients it writes no "for <...>" in Received).
	for _, rcpt := range []string{to, cc} {
		raw := testenv.WaitForMessage(t, p.Maildir, "X-Original-To: "+rcpt+"\n", testenv.StallLimit)
		checkDeliveredNames(t, raw, p.User, rcpt, []any{[]string{"Zoë Ångström <" + p.User + ">"},
			[]string{"Müller, Jürgen <" + to + ">"}, []string{"Ωmega <" + cc + ">"}})
	}
}

// checkDeliveredNames checks one delivered copy: From, To and Cc carry
// encoded names that decode to names (want), and the envelope is the
// bare sender and recipient addresses.
func checkDeliveredNames(t *testing.T, raw []byte, sender, rcpt string, names []any) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("delivered message does not parse: %v", err)
	}
	for _, field := range []string{"From", "To", "Cc"} {
		v := m.Header.Get(field)
		if !strings.Contains(v, "=?utf-8?") || strings.ContainsFunc(v, func(r rune) bool { return r > 0x7f }) {
			t.Errorf("%s %q: want the name RFC 2047-encoded, ASCII only", field, v)
		}
	}
	msg := string(raw)
	got := []any{headerAddresses(t, msg, "From"), headerAddresses(t, msg, "To"), headerAddresses(t, msg, "Cc"),
		m.Header.Get("Return-Path"), m.Header.Get("X-Original-To")}
	want := append(names, "<"+sender+">", rcpt)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("delivered\n got %q\nwant %q\nmessage:\n%s", got, want, raw)
	}
}
