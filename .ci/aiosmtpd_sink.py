"""aiosmtpd handler for sockmail's real-server tests.

Used by .ci/servers.sh as
    /usr/bin/python3 -m aiosmtpd -n -c aiosmtpd_sink.MaildirSink DIR ...
with this folder on PYTHONPATH.

Each accepted message is written into the Maildir DIR (tmp/ then renamed
into new/). The file holds a few X-Sink-* trace lines describing the
envelope, followed byte-exactly by the message as the client sent it
(after dot-unstuffing, CRLF line ends kept). Unlike aiosmtpd's built-in
Mailbox handler nothing is parsed or re-serialised, so tests can check
line ends, dot-stuffing and 8-bit bytes.

The same failure-injection addresses as the Postfix test instance:
RCPT TO reject550@example.test -> 550, temp451@example.test -> 451,
full452@example.test -> 452; a header "X-Test-Reject: yes" -> 550 after DATA.
"""

import itertools
import os
import re
import socket
import time

RCPT_FAILURES = {
    "reject550@example.test": "550 5.1.1 <reject550@example.test>: Recipient address rejected: User unknown (test)",
    "temp451@example.test": "451 4.3.0 <temp451@example.test>: Recipient address rejected: Temporary failure (test)",
    "full452@example.test": "452 4.2.2 <full452@example.test>: Recipient address rejected: Mailbox full (test)",
}

REJECT_HEADER = re.compile(rb"(?im)^X-Test-Reject:[ \t]*yes[ \t]*\r?$")


class MaildirSink:
    """Writes every message, unparsed, into a Maildir."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.path, sub), exist_ok=True)
        self.counter = itertools.count(1)
        self.host = socket.gethostname().replace("/", "_").replace(":", "_")

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("MaildirSink takes exactly one argument: the Maildir path")
        return cls(args[0])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        failure = RCPT_FAILURES.get(address.lower())
        if failure:
            return failure
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        if not hasattr(envelope, "sink_rcpts"):
            envelope.sink_rcpts = []
        envelope.sink_rcpts.append((address, list(rcpt_options)))
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or b""
        head = data.split(b"\r\n\r\n", 1)[0]
        if REJECT_HEADER.search(head):
            return "550 5.7.1 Message content rejected (test)"

        name = "%d.P%dQ%d.%s" % (time.time_ns(), os.getpid(), next(self.counter), self.host)
        lines = []
        peer = session.peer
        if isinstance(peer, tuple):
            peer = "%s:%s" % (peer[0], peer[1])
        lines.append("X-Sink-Peer: %s" % peer)
        lines.append("X-Sink-Helo: %s" % (session.host_name or ""))
        lines.append("X-Sink-TLS: %s" % ("yes" if session.ssl else "no"))
        lines.append(("X-Sink-Mail-From: <%s> %s" % (envelope.mail_from or "", " ".join(envelope.mail_options))).rstrip())
        for addr, opts in getattr(envelope, "sink_rcpts", [(a, []) for a in envelope.rcpt_tos]):
            lines.append(("X-Sink-Rcpt-To: <%s> %s" % (addr, " ".join(opts))).rstrip())
        prefix = ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")

        tmp = os.path.join(self.path, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(prefix)
            f.write(data)
        os.rename(tmp, os.path.join(self.path, "new", name))
        return "250 Message accepted for delivery as %s" % name
