package check

// The open relay test: MAIL FROM a foreign address and RCPT TO a foreign
// domain, stopping after RCPT (smtp.SendOptions.StopAfter), so that no
// message is ever sent (RFC 5321 3.6.2, RFC 2505 2.1).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"sockmail/smtp"
)

// relayDomains are the foreign domains (RFC 2606) the relay test uses;
// two that are not the domain being checked are taken.
var relayDomains = [...]string{"example.com", "example.net", "example.org"}

// relayAddresses returns a foreign sender and recipient for a check of
// the given target and From domains: in two foreign domains, or in the
// one left when the checked domains take two of the three.
func relayAddresses(own ...string) (from, to string) {
	var picked []string
	for _, d := range relayDomains {
		mine := false
		for _, o := range own {
			if o != "" && (o == d || strings.HasSuffix(o, "."+d)) {
				mine = true
			}
		}
		if !mine {
			picked = append(picked, d)
		}
	}
	to = picked[0]
	if len(picked) > 1 {
		to = picked[1]
	}
	return "sockmail-relay-test@" + picked[0], "sockmail-relay-test@" + to
}

// relay tries to relay mail through one address of h, unless the check
// could not even connect to it.
func (c *checker) relay(ctx context.Context, h Host, addr string) {
	for _, f := range c.rep.Findings() {
		if f.ID == "smtp.connect" && f.Host == h.Name && f.Addr == addr && f.Status == Fail {
			return
		}
	}
	conv := c.rep.newConversation(h.Name, net.JoinHostPort(addr, strconv.Itoa(h.Port)), "relay test")
	f := func(st Status, msg, fix string) {
		c.rep.add(Finding{ID: "smtp.relay", Host: h.Name, Addr: addr, Status: st, Message: msg, Fix: fix, Conversation: conv.ID})
	}
	from, to := relayAddresses(c.target.Host, c.opts.Sender.From)
	cfg := c.config(h, addr, conv, nil)
	res, err := smtp.SendMail(ctx, cfg, smtp.Envelope{From: from, To: []string{to}}, nil, smtp.SendOptions{StopAfter: smtp.PhaseRcpt})
	c.rep.setConversationErr(conv, err)
	accepted := err == nil && res != nil && len(res.Accepted()) > 0
	var se *smtp.Error
	switch {
	case accepted:
		f(Fail, fmt.Sprintf("The server is an open relay: it accepted mail from %s to %s, neither of them its own (the test stopped before DATA; nothing was sent).", from, to),
			"Let the server accept mail only for its own domains, and relaying only from authenticated users (Postfix: smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination).")
	case errors.As(err, &se) && se.Phase == smtp.PhaseRcpt && se.Code >= 500:
		f(Pass, fmt.Sprintf("The server refuses to relay: RCPT TO:<%s> got %d %s.", to, se.Code, oneLine(se.Message)), "")
	case errors.As(err, &se) && se.Phase == smtp.PhaseMail && se.Code >= 500:
		f(Pass, fmt.Sprintf("The server refuses to relay: MAIL FROM:<%s> got %d %s.", from, se.Code, oneLine(se.Message)), "")
	case err != nil:
		f(Warning, fmt.Sprintf("The relay test could not tell whether the server relays: %v.", err), "Run the test again; a temporary refusal (4xx) hides the answer.")
	default:
		f(Warning, "The relay test could not tell whether the server relays: the recipient got no answer.", "Run the test again.")
	}
}

// oneLine joins a multi-line reply text.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
