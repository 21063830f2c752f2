package smtp

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// checkEnvelope validates the envelope before anything is sent.
func checkEnvelope(env *Envelope) error {
	if env.From != "" {
		if err := CheckAddress(env.From); err != nil {
			return localError(PhaseMail, "sender: %v", err)
		}
	}
	if len(env.To) == 0 {
		return localError(PhaseRcpt, "no recipients")
	}
	for _, to := range env.To {
		if err := CheckAddress(to); err != nil {
			return localError(PhaseRcpt, "recipient: %v", err)
		}
	}
	if d := env.DSN; d != nil {
		for _, n := range d.Notify {
			switch strings.ToUpper(n) {
			case "NEVER", "SUCCESS", "FAILURE", "DELAY":
			default:
				return localError(PhaseRcpt, "DSN NOTIFY value %q is not NEVER, SUCCESS, FAILURE or DELAY", n)
			}
		}
		if len(d.Notify) > 1 && containsFold(d.Notify, "NEVER") {
			return localError(PhaseRcpt, "DSN NOTIFY=NEVER cannot be combined with other values")
		}
		if r := strings.ToUpper(d.Return); r != "" && r != "FULL" && r != "HDRS" {
			return localError(PhaseMail, "DSN RET value %q is not FULL or HDRS", d.Return)
		}
		if len(d.EnvID) > 100 {
			return localError(PhaseMail, "DSN ENVID is %d characters; the limit is 100", len(d.EnvID))
		}
		for i := 0; i < len(d.EnvID); i++ {
			if d.EnvID[i] < 0x21 || d.EnvID[i] > 0x7e {
				return localError(PhaseMail, "DSN ENVID must be printable ASCII without spaces")
			}
		}
		// The limits hold for the parameter values as sent, in xtext
		// (RFC 3461 4.2, 4.4).
		if n := len(xtext(d.EnvID)); n > 100 {
			return localError(PhaseMail, "DSN ENVID is %d characters as xtext; the limit is 100 (RFC 3461 4.4)", n)
		}
		if d.OriginalRecipient {
			for _, to := range env.To {
				if n := len(orcptValue(to)); n > 500 {
					return localError(PhaseRcpt, "DSN ORCPT for %s is %d characters; the limit is 500 (RFC 3461 4.2)", to, n)
				}
			}
		}
	}
	return nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// xtext encodes s as RFC 3461 xtext: '+', '=' and anything outside
// printable ASCII become "+XX".
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch < 0x21 || ch > 0x7e || ch == '+' || ch == '=' {
			fmt.Fprintf(&b, "+%02X", ch)
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// envelopeCommands builds the MAIL and RCPT lines, checking what the
// message needs against what the server offers.
func (c *Client) envelopeCommands(env *Envelope) (string, []string, error) {
	utf8Needed := env.SMTPUTF8 || !isASCII(env.From)
	for _, to := range env.To {
		utf8Needed = utf8Needed || !isASCII(to)
	}
	if err := c.checkOffered(env, utf8Needed); err != nil {
		return "", nil, err
	}
	mail, err := c.mailCommand(env, utf8Needed)
	if err != nil {
		return "", nil, err
	}
	var dsn *DSN // the DSN parameters to send, nil when none
	if env.DSN != nil {
		if c.hasExt("DSN") {
			dsn = env.DSN
		} else {
			c.tr.Info(PhaseMail, "the server does not offer DSN: notification options are not sent")
		}
	}
	if dsn != nil {
		mail = dsnMailParams(mail, dsn)
	}
	rcpts := make([]string, len(env.To))
	for i, to := range env.To {
		rcpts[i] = rcptCommand(to, dsn)
	}
	return mail, rcpts, nil
}

// checkOffered refuses a message that needs SMTPUTF8 or 8BITMIME from a
// server that does not offer it.
func (c *Client) checkOffered(env *Envelope, utf8Needed bool) error {
	if utf8Needed && !c.hasExt("SMTPUTF8") {
		return localError(PhaseMail, "the message needs SMTPUTF8 (internationalised addresses or headers) but the server does not offer it")
	}
	if env.EightBit && !c.hasExt("8BITMIME") {
		return localError(PhaseMail, "the message has an 8bit body but the server does not offer 8BITMIME")
	}
	return nil
}

// mailCommand builds the MAIL line without its DSN parameters: SIZE when
// the server offers it (refusing a message over its limit), BODY=8BITMIME
// (for an 8-bit body, and with SMTPUTF8 when the server offers 8BITMIME)
// and SMTPUTF8.
func (c *Client) mailCommand(env *Envelope, utf8Needed bool) (string, error) {
	mail := "MAIL FROM:<" + env.From + ">"
	if ok, v := c.Extension("SIZE"); ok && env.Size > 0 {
		// SIZE without a limit is common (go-smtp): no parse, whose error
		// would cost an allocation per message.
		if limit, err := parseSizeLimit(v); err == nil && limit > 0 && env.Size > limit {
			return "", refusal(KindTooLarge, PhaseMail, "the message is %d bytes and the server accepts at most %d (SIZE)", env.Size, limit)
		}
		mail += " SIZE=" + strconv.FormatInt(env.Size, 10)
	}
	// SMTPUTF8 does not imply 8BITMIME (RFC 6531 1.2, 3.4): a message sent
	// with it has, or may have, UTF-8 in its header, which is 8-bit
	// content, so it is declared BODY=8BITMIME (RFC 6152 3) wherever the
	// server offers 8BITMIME (every SMTPUTF8 server must, RFC 6531 3.1).
	if env.EightBit || (utf8Needed && c.hasExt("8BITMIME")) {
		mail += " BODY=8BITMIME"
	}
	if utf8Needed {
		mail += " SMTPUTF8"
	}
	return mail, nil
}

// dsnMailParams adds the RFC 3461 MAIL parameters RET and ENVID to mail.
func dsnMailParams(mail string, dsn *DSN) string {
	if dsn.Return != "" {
		mail += " RET=" + strings.ToUpper(dsn.Return)
	}
	if dsn.EnvID != "" {
		mail += " ENVID=" + xtext(dsn.EnvID)
	}
	return mail
}

// rcptCommand builds the RCPT line for to, with the RFC 3461 parameters
// NOTIFY and ORCPT when dsn is not nil.
func rcptCommand(to string, dsn *DSN) string {
	rcpt := "RCPT TO:<" + to + ">"
	if dsn == nil {
		return rcpt
	}
	if len(dsn.Notify) > 0 {
		rcpt += " NOTIFY=" + strings.ToUpper(strings.Join(dsn.Notify, ","))
	}
	if dsn.OriginalRecipient {
		rcpt += " ORCPT=" + orcptValue(to)
	}
	return rcpt
}

// orcptValue is the ORCPT value for to: "rfc822;" and the address in
// xtext, or for a UTF-8 address "utf-8;" and its RFC 6533 form.
func orcptValue(to string) string {
	if isASCII(to) {
		return "rfc822;" + xtext(to)
	}
	return "utf-8;" + utf8AddrXtext(to)
}

// utf8AddrXtext encodes an internationalised address for ORCPT (RFC 6533
// utf-8-addr-xtext): non-ASCII stays, '+', '=', controls become \x{HEX}.
func utf8AddrXtext(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x21 || r == 0x7f || r == '+' || r == '=' || r == '\\' {
			fmt.Fprintf(&b, `\x{%X}`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// parseSizeLimit parses the parameter of SIZE; an empty one is no limit.
func parseSizeLimit(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	return strconv.ParseInt(v, 10, 64)
}
