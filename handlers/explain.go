package handlers

import (
	"regexp"
	"strconv"
	"strings"

	"sockmail/smtp"
	"sockmail/views"
)

// Problem is what went wrong in a send, as far as it can be told from an
// error: the phase, the reply code and enhanced code if a reply came, and
// the message.
type Problem struct {
	Phase    smtp.Phase
	Code     int
	Enhanced string
	Message  string
}

// errorText is the format of smtp.Error.Error(): "smtp: PHASE: [CODE [X.Y.Z]] MESSAGE".
var errorText = regexp.MustCompile(`^smtp: ([a-z]+): (?:([2-5][0-9][0-9]) (?:([245]\.[0-9]{1,3}\.[0-9]{1,3}) )?)?(.*)$`)

// parseProblem recovers a Problem from a stored error text.
func parseProblem(s string) Problem {
	m := errorText.FindStringSubmatch(s)
	if m == nil {
		return Problem{Message: s}
	}
	code, _ := strconv.Atoi(m[2])
	return Problem{Phase: smtp.Phase(m[1]), Code: code, Enhanced: m[3], Message: m[4]}
}

// Explain says in plain language what a failure means and what to try.
// It knows the common reply codes and enhanced status codes (RFC 5321,
// RFC 3463) and the usual network and TLS failures. It returns nil when
// there is nothing to explain.
func Explain(p Problem) *views.Explanation {
	msg := strings.ToLower(p.Message)
	code := ""
	if p.Code != 0 {
		code = strings.TrimSpace(strconv.Itoa(p.Code) + " " + p.Enhanced)
	}
	x := func(title, detail string, try ...string) *views.Explanation {
		return &views.Explanation{Title: title, Detail: detail, Try: try, Code: code}
	}
	if p.Code == 0 {
		switch {
		case p.Message == "":
			return nil
		case strings.Contains(msg, "connection refused"):
			return x("Connection refused",
				"Nothing accepted the connection at this address and port: the server is not running there, listens on another port, or a firewall rejects the connection.",
				"Check the host name and port (25 for server-to-server, 587 for submission with STARTTLS, 465 for implicit TLS).",
				"Try the port with another tool (swaks, openssl s_client) from the same machine.")
		case strings.Contains(msg, "timed out") || strings.Contains(msg, "timeout") || strings.Contains(msg, "deadline exceeded"):
			if p.Phase == smtp.PhaseConnect || p.Phase == "" {
				return x("The connection timed out",
					"No answer came to the connection attempt. Many home and cloud networks silently drop outgoing connections to port 25 to stop spam, so a connect to port 25 that times out is usually blocked by the network, not refused by the server.",
					"Use the submission port 587 (STARTTLS) or 465 (implicit TLS) with AUTH, which networks let through.",
					"Ask your provider whether outgoing port 25 is blocked, or send through a relay (smarthost).",
					"Check that the host name resolves to the right address (see the DNS line in the transcript).")
			}
			return x("The server stopped answering",
				"The connection was open but the server did not reply within the time limit.",
				"Try again later; the server may be overloaded.",
				"Try without PIPELINING or CHUNKING if the server stalls on them.")
		case strings.Contains(msg, "no such host") || strings.Contains(msg, "cannot resolve"):
			return x("The host name does not resolve",
				"DNS has no address for this host name.",
				"Check the spelling of the host name.",
				"Check that the machine running sockmail can resolve names (its DNS resolver).")
		case strings.Contains(msg, "x509: certificate has expired or is not yet valid"):
			return x("The server's TLS certificate has expired",
				"The certificate the server presented is outside its validity dates (see \"valid ... to ...\" in the certificate lines of the transcript): it has expired, or is not valid yet. Sending anyway would let anyone in the middle read the mail and the password.",
				"The server's administrator should renew the certificate (for Let's Encrypt, check that renewal runs and that the mail server was reloaded after it).",
				"If the dates look right, check the clock of the machine running sockmail.",
				"For a test server only, untick \"Verify the server's certificate\": the transcript will show the override.")
		case strings.Contains(msg, "x509: certificate is valid for"):
			names := p.Message[strings.Index(msg, "x509: certificate is valid for")+len("x509: certificate is valid for"):]
			return x("The server's TLS certificate is for another name",
				"The certificate is valid for"+names+". Connecting by an IP address, an alias or another name than the certificate's makes the check fail, as it should: it is how a client knows it reached the right server.",
				"Connect with a host name that the certificate names.",
				"If the name is right, the server's administrator should add it to the certificate.",
				"For a test server only, untick \"Verify the server's certificate\": the transcript will show the override.")
		case strings.Contains(msg, "x509: certificate signed by unknown authority"):
			return x("The server's TLS certificate is from an authority this machine does not trust",
				"The certificate is self-signed or issued by a private certificate authority that is not among the authorities this machine trusts.",
				"If the server uses a private CA, give its certificate to sockmail (SOCKMAIL_CA_FILE) or install it on this machine.",
				"If it is a public server, its chain may be incomplete: the server's administrator should send the intermediate certificates too.",
				"For a test server only, untick \"Verify the server's certificate\": the transcript will show the override.")
		case strings.Contains(msg, "certificate") && (strings.Contains(msg, "verify") || strings.Contains(msg, "x509") || strings.Contains(msg, "did not verify")):
			return x("The server's TLS certificate did not verify",
				"The certificate the server presented is not valid for this host name, has expired, or is signed by an authority this machine does not trust. Sending anyway would let anyone in the middle read the mail and the password.",
				"Connect with the host name that the certificate names (see the certificate lines in the transcript), not an IP address or alias.",
				"If the server uses a private CA, install it on this machine.",
				"For a test server only, untick \"Verify the server's certificate\": the transcript will show the override.")
		case strings.Contains(msg, "tls handshake"):
			return x("The TLS handshake failed",
				"Client and server could not agree on TLS: a protocol version or cipher mismatch, a server that expects implicit TLS (or plain text) on this port, or a broken TLS setup.",
				"Port 465 wants implicit TLS; ports 25 and 587 want STARTTLS. Check the TLS mode against the port.",
				"Check the server's TLS configuration (openssl s_client -starttls smtp).")
		case strings.Contains(msg, "does not offer starttls"):
			return x("The server does not offer STARTTLS",
				"TLS mode STARTTLS requires encryption, but the server did not announce STARTTLS in its EHLO reply.",
				"Use implicit TLS if the server listens on 465, or choose \"STARTTLS if offered\" to go on without encryption on a test server.")
		case strings.Contains(msg, "refusing to send credentials"):
			return x("Credentials not sent without TLS",
				"sockmail will not send a password over an unencrypted connection unless told to.",
				"Choose STARTTLS or implicit TLS.",
				"On a test server only, tick \"Allow AUTH without TLS\".")
		case strings.Contains(msg, "does not offer auth"):
			return x("The server does not offer AUTH here",
				"AUTH was asked for but the server did not announce it (many servers offer AUTH only after STARTTLS, or only on the submission port).",
				"Use STARTTLS, or the submission port 587.",
				"Choose No AUTH if this server relays for you by address.")
		case strings.Contains(msg, "closed the connection") || strings.Contains(msg, "connection reset") || strings.Contains(msg, "broken pipe") || strings.Contains(msg, "eof"):
			return x("The server closed the connection",
				"The connection ended without a proper reply. Servers do this when they reject a client outright (blocklists, too many connections) or crash.",
				"Look for a 421 or 554 greeting in the transcript.",
				"Check the server's log for the reason.")
		case strings.Contains(msg, "aborted") || strings.Contains(msg, "canceled"):
			return x("The send was aborted",
				"The send was stopped before it finished, by the time limit or because sockmail shut down. The transcript shows how far it got.",
				"Send again.")
		}
		return x("The send failed", p.Message, "Read the transcript for the last lines exchanged.")
	}
	switch {
	case p.Code == 421:
		return x("The server is closing the connection",
			"421 means the service is not available right now: the server is overloaded, shutting down, or limits connections from your address.",
			"Try again later.", "If it persists, check whether your address is rate-limited or listed on a blocklist.")
	case p.Code == 530 || p.Enhanced == "5.7.0" && strings.Contains(msg, "starttls"):
		return x("The server requires STARTTLS first",
			"530 (usually 5.7.0 \"Must issue a STARTTLS command first\") means this server accepts commands only over an encrypted connection.",
			"Set the TLS mode to STARTTLS.", "Or use implicit TLS on port 465.")
	case p.Code == 535 || p.Enhanced == "5.7.8":
		return x("Authentication failed: bad credentials",
			"535 5.7.8 means the server refused the user name or password.",
			"Check the user name: many servers want the full email address.",
			"Check the password; some providers (Gmail, Microsoft 365) need an app password or OAuth instead of the account password.",
			"Try another AUTH mechanism (PLAIN or LOGIN).")
	case p.Code == 534 || p.Enhanced == "5.7.9":
		return x("This authentication mechanism is too weak for the server",
			"534 5.7.9 means the server wants a stronger mechanism or an encrypted connection for this one.",
			"Use STARTTLS or implicit TLS, or choose another mechanism.")
	case p.Code == 454 && p.Phase == smtp.PhaseAuth:
		return x("Temporary authentication failure",
			"454 during AUTH means the server could not check the credentials right now (its authentication backend failed).",
			"Try again later.", "If it persists, the server's administrator should check its SASL setup.")
	case p.Code == 538:
		return x("Encryption required for this mechanism",
			"538 means this AUTH mechanism needs an encrypted connection.", "Use STARTTLS or implicit TLS.")
	case p.Enhanced == "5.1.1" || p.Code == 550 && strings.Contains(msg, "user unknown"):
		return x("The recipient does not exist",
			"550 5.1.1 means the receiving server has no mailbox for this address.",
			"Check the spelling of the address.", "Ask the recipient for their current address.")
	case p.Enhanced == "5.7.1" && (strings.Contains(msg, "relay") || p.Code == 554 || p.Phase == smtp.PhaseRcpt):
		return x("Relaying denied",
			"554 5.7.1 (or 550 5.7.1) \"Relay access denied\" means this server does not deliver to other domains for you: it accepts mail only for its own domains, or only from authenticated users.",
			"Authenticate (AUTH) on the submission port 587 with STARTTLS.",
			"Or send to an address at a domain this server handles.")
	case p.Enhanced == "5.7.1":
		return x("Refused by policy",
			"5.7.1 means the server's policy refused the message or sender (spam filter, SPF/DMARC, sender not allowed).",
			"Read the server's message in the transcript for the reason.",
			"Check the From address and the sending domain's SPF/DKIM/DMARC records.")
	case p.Code == 552 || p.Enhanced == "5.3.4" || p.Enhanced == "5.2.3":
		return x("The message is too large",
			"552 means the message exceeds the size the server accepts (see SIZE in its EHLO reply).",
			"Send smaller attachments, or share large files by link.")
	case p.Code == 452 || p.Enhanced == "4.2.2":
		return x("Mailbox full or too many recipients",
			"452 is a temporary refusal: the mailbox is over quota (4.2.2), the server has no room (4.3.1), or too many recipients were given at once (4.5.3).",
			"Try again later.", "Send to fewer recipients per message.")
	case p.Code == 450 || p.Code == 451:
		return x("Temporary failure: try again later",
			strconv.Itoa(p.Code)+" means the server cannot take the message right now (greylisting, a lookup that failed, a local problem). Real mail servers retry such failures for days.",
			"Send again in a few minutes: greylisting accepts the second attempt.",
			"Read the server's message in the transcript for the reason.")
	case p.Code == 553:
		return x("The address is not accepted",
			"553 means the server rejects this address's syntax or does not let you use it as sender.",
			"Check the From address; many servers allow only the authenticated user's own address.")
	case p.Code == 554 && p.Phase == smtp.PhaseGreeting:
		return x("The server refuses to talk to you",
			"554 in the greeting means the server rejects connections from your address (blocklist or policy).",
			"Check whether your IP address is on a blocklist.", "Send through your provider's submission server instead.")
	case p.Code == 554:
		return x("Transaction failed",
			"554 is a permanent refusal of the message, often by a content or spam filter.",
			"Read the server's message in the transcript for the reason.")
	case p.Code == 500 || p.Code == 501 || p.Code == 502 || p.Code == 503 || p.Code == 504:
		return x("The server did not accept a command",
			"5.5.x replies mean a command or its parameters were not understood or came in the wrong order.",
			"Read the command just before this reply in the transcript.",
			"Try without an extension (DSN, SMTPUTF8) the server might not support.")
	case p.Code >= 400 && p.Code < 500:
		return x("Temporary failure", "A 4xx reply means trying again later may work.", "Send again later.")
	case p.Code >= 500:
		return x("Permanent failure", "A 5xx reply means the server refused; the same send will fail again.", "Read the server's message in the transcript.")
	}
	return nil
}
