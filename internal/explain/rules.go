package explain

import (
	"strconv"
	"strings"

	"sockmail/smtp"
)

// rule is one entry of the table: a name (for tests and logs), when it
// applies, and what it says.
type rule struct {
	name  string
	match func(Input) bool
	say   func(Input) Explanation
}

// match returns the first rule of the table that matches in.
func match(in Input) (rule, bool) {
	if in.Failure.IsZero() {
		return rule{}, false
	}
	for _, r := range rules() {
		if r.match(in) {
			return r, true
		}
	}
	return rule{}, false
}

// says is a fixed explanation.
func says(title, detail string, try ...string) func(Input) Explanation {
	return func(Input) Explanation { return Explanation{Title: title, Detail: detail, Try: try} }
}

// kind matches a failure of kind k.
func kind(k smtp.Kind) func(Input) bool { return func(in Input) bool { return in.Kind == k } }

// tlsVerify matches a certificate that did not verify for reason r.
func tlsVerify(r smtp.Reason) func(Input) bool {
	return func(in Input) bool { return in.Kind == smtp.KindTLSVerify && in.Reason == r }
}

// code matches any of the reply codes.
func code(codes ...int) func(Input) bool {
	return func(in Input) bool {
		for _, c := range codes {
			if in.Code == c {
				return true
			}
		}
		return false
	}
}

// codeOr matches a reply code or an enhanced code.
func codeOr(c int, enhanced string) func(Input) bool {
	return func(in Input) bool { return in.Code == c || in.Code != 0 && in.EnhancedCode == enhanced }
}

const testServerOnly = "For a test server only, untick \"Verify the server's certificate\": the transcript will show the override."

// rules is the ordered table; the first match wins. Failures without a
// reply come first, by kind; then replies, the specific codes before the
// classes they belong to.
func rules() []rule {
	return append(connectionRules(), replyRules()...)
}

// connectionRules explain failures that are not a server's refusal.
func connectionRules() []rule {
	return []rule{
		{"unknown outcome", kind(smtp.KindUnknownOutcome), says("The outcome is unknown",
			"The connection was lost after the whole message was sent and before the server's reply to it: the server may or may not have taken the message.",
			"Check whether the message arrived (the recipient's mailbox, or the server's log at the time in the transcript) before sending again, or it may arrive twice.")},
		{"aborted", kind(smtp.KindAborted), says("The send was aborted",
			"The send was stopped before it finished, by the time limit or because sockmail shut down. The transcript shows how far it got.",
			"Send again.")},
		{"stopped", kind(smtp.KindStopped), says("The send stopped where it was asked to",
			"This send was a probe that ended after the chosen step, before the message was sent; the transcript shows the server's answers up to there.",
			"Send again without a stop point to deliver the message.")},
		{"connection refused", kind(smtp.KindConnRefused), says("Connection refused",
			"Nothing accepted the connection at this address and port: the server is not running there, listens on another port, or a firewall rejects the connection.",
			"Check the host name and port (25 for server-to-server, 587 for submission with STARTTLS, 465 for implicit TLS).",
			"Try the port with another tool (swaks, openssl s_client) from the same machine.")},
		{"connect timeout", kind(smtp.KindConnectTimeout), says("The connection timed out",
			"No answer came to the connection attempt. Many home and cloud networks silently drop outgoing connections to port 25 to stop spam, so a connect to port 25 that times out is usually blocked by the network, not refused by the server.",
			"Use the submission port 587 (STARTTLS) or 465 (implicit TLS) with AUTH, which networks let through.",
			"Ask your provider whether outgoing port 25 is blocked, or send through a relay (smarthost).",
			"Check that the host name resolves to the right address (see the DNS line in the transcript).")},
		{"reply timeout", kind(smtp.KindReplyTimeout), says("The server stopped answering",
			"The connection was open but the server did not reply within the time limit.",
			"Try again later; the server may be overloaded.",
			"Try without PIPELINING or CHUNKING if the server stalls on them.")},
		{"dns", kind(smtp.KindDNS), says("The host name does not resolve",
			"DNS has no address for this host name.",
			"Check the spelling of the host name.",
			"Check that the machine running sockmail can resolve names (its DNS resolver).")},
		{"tls expired", tlsVerify(smtp.ReasonExpired), says("The server's TLS certificate has expired",
			"The certificate the server presented is outside its validity dates (see \"valid ... to ...\" in the certificate lines of the transcript): it has expired, or is not valid yet. Sending anyway would let anyone in the middle read the mail and the password.",
			"The server's administrator should renew the certificate (for Let's Encrypt, check that renewal runs and that the mail server was reloaded after it).",
			"If the dates look right, check the clock of the machine running sockmail.",
			testServerOnly)},
		{"tls wrong name", tlsVerify(smtp.ReasonWrongName), wrongName},
		{"tls unknown authority", tlsVerify(smtp.ReasonUnknownAuthority), says("The server's TLS certificate is from an authority this machine does not trust",
			"The certificate is self-signed or issued by a private certificate authority that is not among the authorities this machine trusts.",
			"If the server uses a private CA, give its certificate to sockmail (SOCKMAIL_CA_FILE) or install it on this machine.",
			"If it is a public server, its chain may be incomplete: the server's administrator should send the intermediate certificates too.",
			testServerOnly)},
		{"tls verify", kind(smtp.KindTLSVerify), says("The server's TLS certificate did not verify",
			"The certificate the server presented is not valid for this host name, has expired, or is signed by an authority this machine does not trust. Sending anyway would let anyone in the middle read the mail and the password.",
			"Connect with the host name that the certificate names (see the certificate lines in the transcript), not an IP address or alias.",
			"If the server uses a private CA, install it on this machine.",
			testServerOnly)},
		{"tls handshake", kind(smtp.KindTLSHandshake), says("The TLS handshake failed",
			"Client and server could not agree on TLS: a protocol version or cipher mismatch, a server that expects implicit TLS (or plain text) on this port, or a broken TLS setup.",
			"Port 465 wants implicit TLS; ports 25 and 587 want STARTTLS. Check the TLS mode against the port.",
			"Check the server's TLS configuration (openssl s_client -starttls smtp).")},
		{"starttls not offered", kind(smtp.KindNoStartTLS), says("The server does not offer STARTTLS",
			"TLS mode STARTTLS requires encryption, but the server did not announce STARTTLS in its EHLO reply.",
			"Use implicit TLS if the server listens on 465, or choose \"STARTTLS if offered\" to go on without encryption on a test server.")},
		{"auth before tls", kind(smtp.KindAuthBeforeTLS), says("Credentials not sent without TLS",
			"sockmail will not send a password over an unencrypted connection unless told to.",
			"Choose STARTTLS or implicit TLS.",
			"On a test server only, allow it where the server is set: for a saved profile (also used by contact forms and their outbox), open Server profiles, edit the profile and tick \"Allow AUTH without TLS\"; for \"Another server\" or the built-in server, tick \"Allow AUTH without TLS\" in the Server section of Compose; on the command line, add -allow-insecure-auth.")},
		{"auth not offered", kind(smtp.KindNoAuth), says("The server does not offer AUTH here",
			"AUTH was asked for but the server did not announce it (many servers offer AUTH only after STARTTLS, or only on the submission port).",
			"Use STARTTLS, or the submission port 587.",
			"Choose No AUTH if this server relays for you by address.")},
		{"421 closing", code(421), says("The server is closing the connection",
			"421 means the service is not available right now: the server is overloaded, shutting down, or limits connections from your address.",
			"Try again later.", "If it persists, check whether your address is rate-limited or listed on a blocklist.")},
		{"server closed", kind(smtp.KindClosed), says("The server closed the connection",
			"The connection ended without a proper reply. Servers do this when they reject a client outright (blocklists, too many connections) or crash.",
			"Look for a 421 or 554 greeting in the transcript.",
			"Check the server's log for the reason.")},
		{"greeting refused", kind(smtp.KindGreetingRefused), says("The server refuses to talk to you",
			"A refusal in the greeting (usually 554) means the server rejects connections from your address (blocklist or policy).",
			"Check whether your IP address is on a blocklist.", "Send through your provider's submission server instead.")},
	}
}

// wrongName quotes the names the certificate is valid for, from the x509
// error text, when the text has them.
func wrongName(in Input) Explanation {
	const marker = "x509: certificate is valid for"
	detail := "The certificate is valid for other names."
	if i := strings.Index(in.Text, marker); i >= 0 {
		detail = "The certificate is valid for" + in.Text[i+len(marker):] + "."
	}
	return Explanation{Title: "The server's TLS certificate is for another name",
		Detail: detail + " Connecting by an IP address, an alias or another name than the certificate's makes the check fail, as it should: it is how a client knows it reached the right server.",
		Try: []string{"Connect with a host name that the certificate names.",
			"If the name is right, the server's administrator should add it to the certificate.",
			testServerOnly}}
}

// replyRules explain a server's negative reply.
func replyRules() []rule {
	return []rule{
		{"starttls required", func(in Input) bool {
			return in.Code == 530 || in.EnhancedCode == "5.7.0" && strings.Contains(strings.ToLower(in.Text), "starttls")
		}, says("The server requires STARTTLS first",
			"530 (usually 5.7.0 \"Must issue a STARTTLS command first\") means this server accepts commands only over an encrypted connection.",
			"Set the TLS mode to STARTTLS.", "Or use implicit TLS on port 465.")},
		{"auth credentials", codeOr(535, "5.7.8"), says("Authentication failed: bad credentials",
			"535 5.7.8 means the server refused the user name or password.",
			"Check the user name: many servers want the full email address.",
			"Check the password; some providers (Gmail, Microsoft 365) need an app password or OAuth instead of the account password.",
			"Try another AUTH mechanism (PLAIN or LOGIN).")},
		{"auth mechanism too weak", codeOr(534, "5.7.9"), says("This authentication mechanism is too weak for the server",
			"534 5.7.9 means the server wants a stronger mechanism or an encrypted connection for this one.",
			"Use STARTTLS or implicit TLS, or choose another mechanism.")},
		{"auth temporary", func(in Input) bool { return in.Code == 454 && in.Phase == smtp.PhaseAuth }, says("Temporary authentication failure",
			"454 during AUTH means the server could not check the credentials right now (its authentication backend failed).",
			"Try again later.", "If it persists, the server's administrator should check its SASL setup.")},
		{"auth needs encryption", code(538), says("Encryption required for this mechanism",
			"538 means this AUTH mechanism needs an encrypted connection.", "Use STARTTLS or implicit TLS.")},
		{"mailbox unknown", kind(smtp.KindMailboxUnknown), says("The recipient does not exist",
			"550 5.1.1 means the receiving server has no mailbox for this address.",
			"Check the spelling of the address.", "Ask the recipient for their current address.")},
		{"relay denied", kind(smtp.KindRelayDenied), says("Relaying denied",
			"554 5.7.1 (or 550 5.7.1) \"Relay access denied\" means this server does not deliver to other domains for you: it accepts mail only for its own domains, or only from authenticated users.",
			"Authenticate (AUTH) on the submission port 587 with STARTTLS.",
			"Or send to an address at a domain this server handles.")},
		{"policy", func(in Input) bool { return in.Code != 0 && in.EnhancedCode == "5.7.1" }, says("Refused by policy",
			"5.7.1 means the server's policy refused the message or sender (spam filter, SPF/DMARC, sender not allowed).",
			"Read the server's message in the transcript for the reason.",
			"Check the From address and the sending domain's SPF/DKIM/DMARC records.")},
		{"too large", kind(smtp.KindTooLarge), says("The message is too large",
			"The message exceeds the size the server accepts: a 552 reply, or more than the SIZE limit in its EHLO reply.",
			"Send smaller attachments, or share large files by link.")},
		{"mailbox full or too many recipients", codeOr(452, "4.2.2"), says("Mailbox full or too many recipients",
			"452 is a temporary refusal: the mailbox is over quota (4.2.2), the server has no room (4.3.1), or too many recipients were given at once (4.5.3).",
			"Try again later.", "Send to fewer recipients per message.")},
		{"try again later", code(450, 451), func(in Input) Explanation {
			return Explanation{Title: "Temporary failure: try again later",
				Detail: strconv.Itoa(in.Code) + " means the server cannot take the message right now (greylisting, a lookup that failed, a local problem). Real mail servers retry such failures for days.",
				Try: []string{"Send again in a few minutes: greylisting accepts the second attempt.",
					"Read the server's message in the transcript for the reason."}}
		}},
		{"address not accepted", code(553), says("The address is not accepted",
			"553 means the server rejects this address's syntax or does not let you use it as sender.",
			"Check the From address; many servers allow only the authenticated user's own address.")},
		{"transaction failed", code(554), says("Transaction failed",
			"554 is a permanent refusal of the message, often by a content or spam filter.",
			"Read the server's message in the transcript for the reason.")},
		{"command not accepted", code(500, 501, 502, 503, 504), says("The server did not accept a command",
			"5.5.x replies mean a command or its parameters were not understood or came in the wrong order.",
			"Read the command just before this reply in the transcript.",
			"Try without an extension (DSN, SMTPUTF8) the server might not support.")},
		{"temporary", func(in Input) bool { return in.Code >= 400 && in.Code < 500 }, says("Temporary failure",
			"A 4xx reply means trying again later may work.", "Send again later.")},
		{"permanent", func(in Input) bool { return in.Code >= 500 }, says("Permanent failure",
			"A 5xx reply means the server refused; the same send will fail again.", "Read the server's message in the transcript.")},
		{"other", func(in Input) bool { return in.Code == 0 }, func(in Input) Explanation {
			return Explanation{Title: "The send failed", Detail: in.Text, Try: []string{"Read the transcript for the last lines exchanged."}}
		}},
	}
}
