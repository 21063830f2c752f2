package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits on what a server may send. RFC 5321 4.5.3.1.5 sets 512 octets for
// a reply line; real servers stay well inside that. The limits are generous
// but finite, so a hostile server cannot make the client buffer without
// bound.
const (
	maxLineLength   = 4096
	maxReplyLines   = 256
	maxReplyLength  = 64 * 1024
	readBufferSize  = 16 * 1024
	writeBufferSize = 64 * 1024
)

// Reply is one complete server reply, possibly of several lines.
type Reply struct {
	// Code is the three-digit reply code.
	Code int
	// Lines holds the text of each line, without code and separator.
	Lines []string

	// plain is set when the server did not offer ENHANCEDSTATUSCODES on
	// the connection the reply came from: its text holds no status code,
	// whatever it looks like (RFC 2034 3).
	plain bool
}

// Text returns the reply's lines joined with "\n".
func (r *Reply) Text() string { return strings.Join(r.Lines, "\n") }

// EnhancedCode returns the RFC 3463 status code at the start of the first
// line ("2.1.0"), or "" when there is none. Its class must agree with the
// reply code, as RFC 2034 requires. A reply read by a Client from a server
// that did not offer ENHANCEDSTATUSCODES has none.
func (r *Reply) EnhancedCode() string {
	if r.plain || len(r.Lines) == 0 {
		return ""
	}
	code, _ := splitEnhanced(r.Lines[0])
	if code == "" || int(code[0]-'0') != r.Code/100 {
		return ""
	}
	return code
}

// splitEnhanced splits "2.1.0 Ok" into "2.1.0" and "Ok". It returns "" and
// the whole text when the text does not start with a status code.
func splitEnhanced(text string) (code, rest string) {
	field, rest, _ := strings.Cut(text, " ")
	parts := strings.Split(field, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return "", text
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return "", text
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return "", text
			}
		}
	}
	return field, rest
}

// Positive reports whether the reply is 2xx or 3xx.
func (r *Reply) Positive() bool { return r.Code >= 200 && r.Code < 400 }

// replyReader reads replies from a server with the limits above. It is our
// own rather than net/textproto's because textproto.Reader.ReadLine grows
// its buffer without limit and ReadResponse accepts continuation lines
// whose codes disagree; both are wrong for a client that must survive a
// hostile server.
type replyReader struct {
	br *bufio.Reader
	// onLine is called with every raw line read, before it is parsed.
	onLine func(line string)
}

// readLine returns one line without its line ending. A line longer than
// maxLineLength (not counting the CRLF) is an error; the rest of it is
// not read.
func (rr *replyReader) readLine() (string, error) {
	var buf []byte
	tooLong := func() (string, error) {
		if rr.onLine != nil {
			rr.onLine(string(buf))
		}
		return "", &ProtocolError{Reason: fmt.Sprintf("reply line longer than %d bytes", maxLineLength), Line: string(buf[:80]), Cut: true}
	}
	for {
		chunk, err := rr.br.ReadSlice('\n')
		buf = append(buf, chunk...)
		// Without its "\n" yet, the line may still end in "\r".
		if len(buf) > maxLineLength+2 || (err != nil && len(buf) > maxLineLength+1) {
			return tooLong()
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(buf) > 0 && rr.onLine != nil {
			rr.onLine(string(buf))
		}
		if errors.Is(err, io.EOF) {
			return "", errConnLost
		}
		return "", err
	}
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	buf = bytes.TrimSuffix(buf, []byte("\r"))
	if len(buf) > maxLineLength {
		return tooLong()
	}
	line := string(buf)
	if rr.onLine != nil {
		rr.onLine(line)
	}
	return line, nil
}

// readReply reads one whole reply. Every line must start with the same
// three-digit code followed by "-" (more lines follow), " " or nothing
// (last line). The number of lines and the total length are bounded.
func (rr *replyReader) readReply() (*Reply, error) {
	r := &Reply{}
	total := 0
	for {
		line, err := rr.readLine()
		if err != nil {
			return nil, err
		}
		code, more, text, err := parseReplyLine(line)
		if err != nil {
			return nil, err
		}
		if len(r.Lines) == 0 {
			r.Code = code
		} else if code != r.Code {
			return nil, &ProtocolError{Reason: fmt.Sprintf("reply code %d inside a %d reply", code, r.Code), Line: line}
		}
		r.Lines = append(r.Lines, text)
		total += len(line)
		if total > maxReplyLength {
			return nil, &ProtocolError{Reason: fmt.Sprintf("reply longer than %d bytes", maxReplyLength), Line: line}
		}
		if !more {
			return r, nil
		}
		if len(r.Lines) >= maxReplyLines {
			return nil, &ProtocolError{Reason: fmt.Sprintf("reply has more than %d lines", maxReplyLines), Line: line}
		}
	}
}

// parseReplyLine splits "250-SIZE 1000" into 250, true, "SIZE 1000". A
// line of only a code ("250") is accepted as a last line with no text.
func parseReplyLine(line string) (code int, more bool, text string, err error) {
	if len(line) < 3 {
		return 0, false, "", &ProtocolError{Reason: "reply line too short", Line: line}
	}
	for i := 0; i < 3; i++ {
		c := line[i]
		if c < '0' || c > '9' || (i == 0 && (c < '2' || c > '5')) {
			return 0, false, "", &ProtocolError{Reason: "reply line does not start with a reply code", Line: line}
		}
		code = code*10 + int(c-'0')
	}
	if len(line) == 3 {
		return code, false, "", nil
	}
	switch line[3] {
	case ' ':
		return code, false, line[4:], nil
	case '-':
		return code, true, line[4:], nil
	}
	return 0, false, "", &ProtocolError{Reason: "reply code not followed by space or hyphen", Line: line}
}
