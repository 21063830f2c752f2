package message

import (
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Address limits.
const (
	maxLocalPart   = 64  // RFC 5321 4.5.3.1.1
	maxDomain      = 255 // RFC 5321 4.5.3.1.2
	maxPath        = 254 // RFC 5321 4.5.3.1.3, less the angle brackets
	maxDisplayName = 512 // ours: a sane bound for a display name in bytes
	maxAddresses   = 1000
)

// addr is a validated address, ready to be written in a header field or an
// SMTP envelope. It is always built by checkAddr, never from raw input.
type addr struct {
	name   string // display name, Unicode text
	local  string // dot-atom local part, ASCII or UTF-8
	domain string // A-label (ASCII) form when the domain has one
	utf8   bool   // RFC 6532 UTF-8 is needed to write it
}

// spec returns the addr-spec, local@domain.
func (a addr) spec() string { return a.local + "@" + a.domain }

// checkAddr validates a and returns the form to write. The Address field of
// a mail.Address holds local@domain as net/mail parses it; only dot-atom
// local parts are accepted, so the address never needs quoting and never
// holds a space, a quote or angle brackets, in a header or in the envelope.
// A non-ASCII domain is converted to its IDNA A-label form, so that only a
// non-ASCII local part (or a domain IDNA refuses) needs SMTPUTF8.
func checkAddr(field string, a *mail.Address) (addr, error) {
	if a == nil {
		return addr{}, fmt.Errorf("message: %s: nil address", field)
	}
	if err := checkText(field+": display name", a.Name); err != nil {
		return addr{}, err
	}
	if len(a.Name) > maxDisplayName {
		return addr{}, fmt.Errorf("message: %s: display name longer than %d bytes", field, maxDisplayName)
	}
	out, err := checkSpec(a.Address)
	if err != nil {
		return addr{}, fmt.Errorf("message: %s: address %q: %w", field, a.Address, err)
	}
	out.name = a.Name
	return out, nil
}

// checkSpec validates an addr-spec, local@domain.
func checkSpec(s string) (addr, error) {
	if err := checkRaw(s); err != nil {
		return addr{}, err
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return addr{}, errors.New("missing @")
	}
	local, domain := s[:at], s[at+1:]
	if err := checkLocal(local); err != nil {
		return addr{}, err
	}
	domain, err := checkDomain(domain)
	if err != nil {
		return addr{}, err
	}
	a := addr{local: local, domain: domain, utf8: !isASCII(local) || !isASCII(domain)}
	if len(a.spec()) > maxPath {
		return addr{}, fmt.Errorf("longer than %d bytes", maxPath)
	}
	return a, nil
}

// isAtext reports an RFC 5322 atext character; with RFC 6532, any non-ASCII
// UTF-8 character that is not a control character is atext too.
func isAtext(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	case r < 0x80:
		return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
	default:
		return r >= 0xa0 && r != utf8.RuneError
	}
}

// checkLocal validates a dot-atom local part.
func checkLocal(local string) error {
	switch {
	case local == "":
		return errors.New("empty local part")
	case len(local) > maxLocalPart:
		return fmt.Errorf("local part longer than %d bytes", maxLocalPart)
	}
	for _, atom := range strings.Split(local, ".") {
		if atom == "" {
			return errors.New("local part has an empty dot-separated part")
		}
		for _, r := range atom {
			if !isAtext(r) {
				return fmt.Errorf("local part has %q: only dot-atom local parts are supported", r)
			}
		}
	}
	return nil
}

// checkDomain validates a domain and returns the form to write: an address
// literal as is, an ASCII domain as is, and a non-ASCII domain in its IDNA
// A-label form, or in UTF-8 when IDNA refuses it.
func checkDomain(domain string) (string, error) {
	switch {
	case domain == "":
		return "", errors.New("empty domain")
	case len(domain) > maxDomain:
		return "", fmt.Errorf("domain longer than %d bytes", maxDomain)
	case domain[0] == '[':
		if err := checkAddressLiteral(domain); err != nil {
			return "", err
		}
		return domain, nil
	}
	if !isASCII(domain) {
		if ace, err := idna.Lookup.ToASCII(domain); err == nil && isASCII(ace) {
			domain = ace
		}
	}
	for label := range strings.SplitSeq(domain, ".") { // no slice: checked for every message of a run
		if err := checkLabel(label); err != nil {
			return "", err
		}
	}
	return domain, nil
}

// checkAddressLiteral validates an RFC 5321 4.1.3 address literal:
// [IPv4] or [IPv6:address].
func checkAddressLiteral(domain string) error {
	if len(domain) < 3 || domain[len(domain)-1] != ']' {
		return errors.New("unterminated address literal")
	}
	lit := domain[1 : len(domain)-1]
	v6, isV6 := strings.CutPrefix(lit, "IPv6:")
	ip, err := netip.ParseAddr(v6)
	if err != nil || ip.Zone() != "" || isV6 != ip.Is6() || ip.Is4In6() {
		return fmt.Errorf("address literal %q is neither [IPv4] nor [IPv6:address]", domain)
	}
	return nil
}

// checkLabel validates one dot-separated label of a domain.
func checkLabel(label string) error {
	if label == "" {
		return errors.New("domain has an empty label")
	}
	if len(label) > 63 {
		return errors.New("domain label longer than 63 bytes")
	}
	if label[0] == '-' || label[len(label)-1] == '-' {
		return fmt.Errorf("domain label %q starts or ends with a hyphen", label)
	}
	for _, r := range label {
		if !isLabelRune(r) {
			return fmt.Errorf("domain has %q", r)
		}
	}
	return nil
}

// isLabelRune reports a character allowed in a domain label: ASCII letters,
// digits, "-" and "_", and any non-ASCII character that is not a control
// character.
func isLabelRune(r rune) bool {
	return r == '-' || r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' ||
		'0' <= r && r <= '9' || r >= 0xa0 && r != utf8.RuneError
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// ParseAddress parses one address as a user would type it ("Name
// <local@domain>" or "local@domain"), decoding RFC 2047 encoded-words in
// the display name, and validates it as Message does. field names the
// header field in errors, like "From".
func ParseAddress(field, s string) (*mail.Address, error) {
	list, err := ParseAddressList(field, s)
	if err != nil {
		return nil, err
	}
	if len(list) != 1 {
		return nil, fmt.Errorf("message: %s: want one address, got %d", field, len(list))
	}
	return list[0], nil
}

// ParseAddressList parses a comma-separated address list as a user would
// type it, decoding RFC 2047 encoded-words in display names, and validates
// every address as Message does. field names the header field in errors,
// like "To". Line breaks are refused before parsing, so input can never
// carry a folded continuation into a header.
func ParseAddressList(field, s string) ([]*mail.Address, error) {
	if err := checkRaw(s); err != nil {
		return nil, fmt.Errorf("message: %s: %w", field, err)
	}
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("message: %s: no address", field)
	}
	p := mail.AddressParser{WordDecoder: new(mime.WordDecoder)}
	list, err := p.ParseList(s)
	if err != nil {
		return nil, fmt.Errorf("message: %s: %w", field, err)
	}
	if len(list) > maxAddresses {
		return nil, fmt.Errorf("message: %s: more than %d addresses", field, maxAddresses)
	}
	for _, a := range list {
		if _, err := checkAddr(field, a); err != nil {
			return nil, err
		}
	}
	return list, nil
}

// maxAtom is the longest display name atom or quoted-string written as is;
// longer ones become encoded-words, which can be folded.
const maxAtom = 60

// atomPhrase reports whether name can be written as a run of atoms
// separated by single spaces, each short enough to fit a folded line.
func atomPhrase(name string) bool {
	if name == "" || strings.Contains(name, "=?") {
		return false
	}
	for _, w := range strings.Split(name, " ") {
		if w == "" || len(w) > maxAtom {
			return false
		}
		for i := 0; i < len(w); i++ {
			if w[i] >= 0x80 || !isAtext(rune(w[i])) {
				return false
			}
		}
	}
	return true
}

// phrase adds a display name: atoms when it is made of them, a quoted-string
// when it is short printable ASCII, RFC 2047 encoded-words otherwise (also
// for names holding "=?", so that they read back literally).
func (f *field) phrase(ws, name string) {
	if atomPhrase(name) {
		for i, w := range strings.Split(name, " ") {
			if i > 0 {
				ws = " "
			}
			f.token(ws, w, false)
		}
		return
	}
	printable := !strings.Contains(name, "=?")
	for i := 0; i < len(name) && printable; i++ {
		printable = name[i] >= ' ' && name[i] <= '~'
	}
	if printable && len(name) <= maxAtom {
		q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name)
		f.token(ws, `"`+q+`"`, false)
		return
	}
	f.encoded(ws, name, true)
}

// addressField builds an address-list field.
func addressField(name string, list []addr) (string, error) {
	f := newField(name)
	for i, a := range list {
		if i > 0 {
			f.glue(",")
		}
		if a.name == "" {
			f.token(" ", a.spec(), false)
			continue
		}
		f.phrase(" ", a.name)
		f.token(" ", "<"+a.spec()+">", false)
	}
	return f.result()
}
