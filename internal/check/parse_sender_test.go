package check

import (
	"net/netip"
	"strings"
	"testing"
)

// testKey1024 is the public half of a 1024-bit RSA key, as a DKIM record
// carries it.
const testKey1024 = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDeKRcwgz3irGcD35SiWVCLt33UmF4g+bNGswuHQ/uUBchnGVYNShNxSOYOw8bzaOdAODlLjSPdUjFEQrEuEhVOzr7Dc+O+5kWfJeBmdlNpvy8qT0L7lymePLpSKNgdjZo4aVgqdHFOgZtxBRYgSV0O8ttA8pSkpLAAswUFri8scwIDAQAB"

func TestParseSPF(t *testing.T) {
	tests := []struct {
		in      string
		want    string // the terms, re-rendered, joined by spaces
		redir   string
		wantErr string
	}{
		{in: "v=spf1", want: ""},
		{in: "V=SPF1 -ALL", want: "-all"},
		{in: "v=spf1 ip4:192.0.2.0/24 ip6:2001:DB8::/32 a mx:example.org/24//64 ptr ~all", want: "ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx:example.org/24//64 ptr ~all"},
		{in: "v=spf1  include:_spf.example.org   ?exists:%{ir}.%{l1r+-}._spf.%{d} -all", want: "include:_spf.example.org ?exists:%{ir}.%{l1r+-}._spf.%{d} -all"},
		{in: "v=spf1 a/24 mx//64 -all", want: "a/24 mx//64 -all"},
		{in: "v=spf1 redirect=_spf.example.org", want: "redirect=_spf.example.org", redir: "_spf.example.org"},
		{in: "v=spf1 -all exp=explain.%{d} foo=bar", want: "-all exp=explain.%{d} foo=bar"},
		{in: "v=spf10 -all", wantErr: `does not start with "v=spf1"`},
		{in: "spf1 -all", wantErr: `does not start with "v=spf1"`},
		{in: "v=spf1 ip4:192.0.2.300", wantErr: `"192.0.2.300" is not an IPv4 address`},
		{in: "v=spf1 ip4:2001:db8::1", wantErr: "is not an IPv4 address"},
		{in: "v=spf1 ip6:192.0.2.1", wantErr: "is not an IPv6 address"},
		{in: "v=spf1 ip4:192.0.2.0/33", wantErr: "prefix /33 is not from 0 to 32"},
		{in: "v=spf1 a//129", wantErr: "prefix /129 is not from 0 to 128"},
		{in: "v=spf1 include", wantErr: "include needs a domain"},
		{in: "v=spf1 exists:", wantErr: "exists needs a domain"},
		{in: "v=spf1 all:x", wantErr: "all takes no argument"},
		{in: "v=spf1 mx:", wantErr: "mx: has an empty domain"},
		{in: "v=spf1 foo:bar", wantErr: `unknown mechanism "foo"`},
		{in: "v=spf1 redirect=a.example redirect=b.example", wantErr: "redirect= appears twice"},
		{in: "v=spf1 redirect=", wantErr: "redirect= needs a domain"},
		{in: "v=spf1 1x=y", wantErr: "modifier name"},
		{in: "v=spf1 include:%{x}.example", wantErr: "no valid letter"},
		{in: "v=spf1 include:%{c}.example", wantErr: "no valid letter"},
		{in: "v=spf1 exp=%{c}.example", want: "exp=%{c}.example"},
		{in: "v=spf1 include:%{d1x}.example", wantErr: "invalid transformer"},
		{in: "v=spf1 include:50%.example", wantErr: `"%." is not a macro`},
		{in: "v=spf1 include:a.example%", wantErr: "ends the domain"},
		{in: "v=spf1 include:%{d.example", wantErr: "not closed"},
		{in: "v=spf1 " + strings.Repeat("a ", 3000), wantErr: "the limit here is 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 60)], func(t *testing.T) {
			rec, err := parseSPF(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseSPF(%q) = %+v, %v; want an error containing %q", tt.in, rec, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseSPF(%q): %v", tt.in, err)
			}
			var terms []string
			for _, term := range rec.Terms {
				terms = append(terms, term.String())
			}
			if got := strings.Join(terms, " "); got != tt.want || rec.Redirect != tt.redir {
				t.Errorf("parseSPF(%q) = %q redirect %q; want %q redirect %q", tt.in, got, rec.Redirect, tt.want, tt.redir)
			}
		})
	}
}

// TestSPFMacros checks macro expansion with the examples of RFC 7208 7.4.
func TestSPFMacros(t *testing.T) {
	e4 := &spfEval{ip: netip.MustParseAddr("192.0.2.3"), sender: "strong-bad@email.example.com", helo: "mx.example.org"}
	e6 := &spfEval{ip: netip.MustParseAddr("2001:db8::cb01"), sender: "strong-bad@email.example.com"}
	tests := []struct {
		e    *spfEval
		spec string
		want string
	}{
		{e4, "%{s}", "strong-bad@email.example.com"},
		{e4, "%{o}", "email.example.com"},
		{e4, "%{d}", "email.example.com"},
		{e4, "%{d4}", "email.example.com"},
		{e4, "%{d3}", "email.example.com"},
		{e4, "%{d2}", "example.com"},
		{e4, "%{d1}", "com"},
		{e4, "%{dr}", "com.example.email"},
		{e4, "%{d2r}", "example.email"},
		{e4, "%{l}", "strong-bad"},
		{e4, "%{l-}", "strong.bad"},
		{e4, "%{lr}", "strong-bad"},
		{e4, "%{lr-}", "bad.strong"},
		{e4, "%{l1r-}", "strong"},
		{e4, "%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
		{e4, "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
		{e4, "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
		{e4, "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"},
		{e4, "%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"},
		{e4, "%{h}.%%.%_.%-", "mx.example.org.%. .%20"},
		{e4, "%{S}", "strong-bad%40email.example.com"},
		{e6, "%{ir}.%{v}._spf.%{d2}", "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"},
	}
	for _, tt := range tests {
		got, err := tt.e.expand(tt.spec, "email.example.com")
		if err != nil || got != tt.want {
			t.Errorf("expand(%q) = %q, %v; want %q", tt.spec, got, err, tt.want)
		}
	}
	if got, err := e4.expand("%{c}", "email.example.com"); err == nil {
		t.Errorf("expand(%%{c}) outside exp= = %q, want an error", got)
	}
	long, err := e4.expand("%{s}."+strings.Repeat("abcdefghi.", 26), "email.example.com")
	if err != nil || len(long) > 253 || !strings.HasSuffix(long, "abcdefghi") {
		t.Errorf("a long expansion is %d bytes (%v), want at most 253 with its left labels dropped", len(long), err)
	}
}

func TestInNet(t *testing.T) {
	tests := []struct {
		ip, addr string
		p4, p6   int
		want     bool
	}{
		{"192.0.2.5", "192.0.2.0", 24, -1, true},
		{"192.0.3.5", "192.0.2.0", 24, -1, false},
		{"192.0.2.5", "192.0.2.5", -1, -1, true},
		{"192.0.2.6", "192.0.2.5", -1, -1, false},
		{"::ffff:192.0.2.5", "192.0.2.5", -1, -1, true},
		{"2001:db8::1", "192.0.2.5", 0, 0, false},
		{"2001:db8::1", "2001:db8::", -1, 32, true},
		{"2001:db9::1", "2001:db8::", -1, 32, false},
	}
	for _, tt := range tests {
		term := spfTerm{Prefix4: tt.p4, Prefix6: tt.p6}
		if got := inNet(netip.MustParseAddr(tt.ip), netip.MustParseAddr(tt.addr), term); got != tt.want {
			t.Errorf("inNet(%s, %s/%d//%d) = %v, want %v", tt.ip, tt.addr, tt.p4, tt.p6, got, tt.want)
		}
	}
}

func TestParseDMARC(t *testing.T) {
	tests := []struct {
		in      string
		want    dmarcRecord
		wantErr string
	}{
		{in: "v=DMARC1; p=none", want: dmarcRecord{P: "none", SP: "none", Pct: 100, ADKIM: 'r', ASPF: 'r'}},
		{in: "v=DMARC1;p=reject;sp=none;pct=25;adkim=s;aspf=r;rua=mailto:a@example.org!10m,mailto:b@example.net;ruf=mailto:f@example.org;fo=1",
			want: dmarcRecord{P: "reject", SP: "none", Pct: 25, ADKIM: 's', ASPF: 'r', RUA: []string{"a@example.org", "b@example.net"}, RUF: []string{"f@example.org"}}},
		{in: " v = DMARC1 ; P=Quarantine ; ", want: dmarcRecord{P: "quarantine", SP: "quarantine", Pct: 100, ADKIM: 'r', ASPF: 'r'}},
		{in: "v=DMARC1", wantErr: "p= (the policy) is missing"},
		{in: "p=reject; v=DMARC1", wantErr: `does not start with "v=DMARC1"`},
		{in: "v=DMARC2; p=reject", wantErr: `does not start with "v=DMARC1"`},
		{in: "v=DMARC1; p=maybe", wantErr: "p=maybe is not none, quarantine or reject"},
		{in: "v=DMARC1; p=none; pct=101", wantErr: "pct=101 is not a number from 0 to 100"},
		{in: "v=DMARC1; p=none; adkim=x", wantErr: "adkim=x is not r (relaxed) or s (strict)"},
		{in: "v=DMARC1; p=none; rua=https://example.org/r", wantErr: "is not a mailto: URI"},
		{in: "v=DMARC1; p=none; p=reject", wantErr: "p= appears twice"},
		{in: "v=DMARC1; p=none; junk", wantErr: `"junk" is not a tag=value pair`},
		{in: "v=DMARC1; p=none; x=" + strings.Repeat("y", 3000), wantErr: "the limit here is 2048"},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 60)], func(t *testing.T) {
			got, err := parseDMARC(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseDMARC(%q) = %+v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseDMARC(%q): %v", tt.in, err)
			}
			if got.P != tt.want.P || got.SP != tt.want.SP || got.Pct != tt.want.Pct || got.ADKIM != tt.want.ADKIM || got.ASPF != tt.want.ASPF ||
				strings.Join(got.RUA, ",") != strings.Join(tt.want.RUA, ",") || strings.Join(got.RUF, ",") != strings.Join(tt.want.RUF, ",") {
				t.Errorf("parseDMARC(%q) = %+v, want %+v", tt.in, *got, tt.want)
			}
		})
	}
}

func TestOrgDomain(t *testing.T) {
	for in, want := range map[string]string{
		"example.org": "example.org", "mail.example.org": "example.org", "a.b.c.example.org": "example.org", "org": "org",
	} {
		if got := orgDomain(in); got != want {
			t.Errorf("orgDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDKIMKey(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    dkimKey
		wantErr string
	}{
		{name: "rsa 1024", in: "v=DKIM1; k=rsa; p=" + testKey1024, want: dkimKey{Type: "rsa", Bits: 1024}},
		{name: "default type, folded key, flags", in: "v=DKIM1; t=y:s; p=" + testKey1024[:50] + " " + testKey1024[50:], want: dkimKey{Type: "rsa", Bits: 1024, Testing: true, Strict: true}},
		{name: "no version", in: "p=" + testKey1024, want: dkimKey{Type: "rsa", Bits: 1024}},
		{name: "ed25519", in: "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", want: dkimKey{Type: "ed25519", Bits: 256}},
		{name: "revoked", in: "v=DKIM1; p=", want: dkimKey{Type: "rsa", Revoked: true}},
		{name: "service email", in: "v=DKIM1; s=email:x; p=", want: dkimKey{Type: "rsa", Revoked: true}},
		{name: "service any", in: "v=DKIM1; s=*; p=", want: dkimKey{Type: "rsa", Revoked: true}},
		{name: "service other", in: "v=DKIM1; s=tlsrpt; p=", want: dkimKey{Type: "rsa", Revoked: true, NotEmail: true}},
		{name: "no key", in: "v=DKIM1; k=rsa", wantErr: "p= (the public key) is missing"},
		{name: "version not first", in: "k=rsa; v=DKIM1; p=", wantErr: "come first"},
		{name: "bad version", in: "v=DKIM2; p=", wantErr: `must be "DKIM1"`},
		{name: "not base64", in: "v=DKIM1; p=!!!", wantErr: "p= is not base64"},
		{name: "not a key", in: "v=DKIM1; p=AAAA", wantErr: "is not an RSA public key"},
		{name: "short ed25519", in: "v=DKIM1; k=ed25519; p=AAAA", wantErr: "p= holds 3 bytes; an Ed25519 key is 32"},
		{name: "unknown type", in: "v=DKIM1; k=dsa; p=AAAA", wantErr: "k=dsa is not a known key type"},
		{name: "twice", in: "v=DKIM1; p=; p=", wantErr: "p= appears twice"},
		{name: "too long", in: "v=DKIM1; p=" + strings.Repeat("A", 5000), wantErr: "the limit here is 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDKIMKey(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseDKIMKey(%q) = %+v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || *got != tt.want {
				t.Fatalf("parseDKIMKey = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestSenderOptionsValidate(t *testing.T) {
	tests := []struct {
		in      SenderOptions
		want    SenderOptions
		wantErr string
	}{
		{in: SenderOptions{}, want: SenderOptions{}},
		{in: SenderOptions{From: "Example.ORG.", IP: "::ffff:192.0.2.1", DKIMSelector: "S1.2024"}, want: SenderOptions{From: "example.org", IP: "192.0.2.1", DKIMSelector: "s1.2024"}},
		{in: SenderOptions{IP: "192.0.2.1"}, wantErr: "needs the From domain"},
		{in: SenderOptions{DKIMSelector: "s1"}, wantErr: "needs the From domain"},
		{in: SenderOptions{From: "localhost"}, wantErr: "From domain: \"localhost\" is not a domain name"},
		{in: SenderOptions{From: "example.org", IP: "192.0.2"}, wantErr: "sending address: \"192.0.2\" is not an IP address"},
		{in: SenderOptions{From: "example.org", IP: "fe80::1%eth0"}, wantErr: "is not an IP address"},
		{in: SenderOptions{From: "example.org", DKIMSelector: "s 1"}, wantErr: "DKIM selector \"s 1\" is not one or more DNS labels"},
		{in: SenderOptions{From: "example.org", DKIMSelector: strings.Repeat("s", 129)}, wantErr: "the limit is 128"},
	}
	for _, tt := range tests {
		got := tt.in
		err := got.Validate()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate(%+v) = %v; want an error containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Validate(%+v) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}
