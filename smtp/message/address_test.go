package message

import (
	"net/mail"
	"strings"
	"testing"
)

func TestCheckMsgID(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"a@b", "a@b", true},
		{"<a.b@c.d>", "a.b@c.d", true},
		{"a@[192.0.2.1]", "a@[192.0.2.1]", true},
		{"a@[IPv6:2001:db8::1]", "a@[IPv6:2001:db8::1]", true},
		{"a@b..c", "", false},
		{".a@b", "", false},
		{"a@b@c", "", false},
		{"a b@c", "", false},
		{"a@[x]y]", "", false},
		{"a@b\r\n", "", false},
		{"ä@b", "", false},
	} {
		got, err := checkMsgID("Message-ID", tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("checkMsgID(%q) = %q, %v", tt.in, got, err)
		}
	}
}

// FuzzAddress: whatever checkAddr accepts is written as an addr-spec that
// holds no CR, LF, NUL, space, quote or angle bracket (so it is safe in a
// header and as an SMTP path), and that net/mail parses back to the same
// address, with or without a display name.
func FuzzAddress(f *testing.F) {
	for _, s := range []string{"a@example.com", "jöran@bücher.example", "用户@例子.广告", "a@[192.0.2.1]",
		"a b@c", "a@b>,<c@d", "\"q\"@x", "a@b\r\n", "x@-y.z", "a..b@c", "a@xn--bcher-kva.example"} {
		f.Add(s, "Name")
	}
	f.Fuzz(func(t *testing.T, address, name string) {
		a, err := checkAddr("To", &mail.Address{Name: name, Address: address})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "message: To: ") {
				t.Fatalf("error %q", err)
			}
			return
		}
		spec := a.spec()
		if strings.ContainsAny(spec, "\r\n\x00 \t<>\"") {
			t.Fatalf("spec %q holds a forbidden character", spec)
		}
		if strings.Contains(spec, "[IPv6:") {
			return // net/mail knows no RFC 5321 IPv6 literal; checked in TestAddressLiteral
		}
		got, err := mail.ParseAddress("<" + spec + ">")
		if err != nil {
			t.Fatalf("net/mail cannot parse %q: %v", spec, err)
		}
		if got.Address != spec {
			t.Fatalf("net/mail reads %q as %q", spec, got.Address)
		}
		field, err := addressField("To", []addr{a})
		if err != nil {
			t.Fatal(err)
		}
		fields := headerFields(t, strings.TrimSuffix(field, "\r\n"))
		list, err := (&mail.AddressParser{WordDecoder: nil}).ParseList(fields["To"])
		if err != nil {
			t.Fatalf("net/mail cannot parse %q: %v", field, err)
		}
		if len(list) != 1 || list[0].Address != spec {
			t.Fatalf("field %q reads back as %v", field, list)
		}
	})
}

func TestAddressLiteral(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"a@[192.0.2.1]", true},
		{"a@[IPv6:2001:db8::1]", true},
		{"a@[2001:db8::1]", false},
		{"a@[IPv6:192.0.2.1]", false},
		{"a@[0]", false},
		{"a@[x]", false},
		{"a@[192.0.2.1", false},
	} {
		if _, err := checkSpec(tt.in); (err == nil) != tt.ok {
			t.Errorf("checkSpec(%q) = %v", tt.in, err)
		}
	}
}
