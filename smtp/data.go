package smtp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// bodyWriter puts a message on the wire as RFC 5321 requires (2.3.8 and
// 4.5.2): every bare CR and bare LF becomes CRLF, and in DATA mode a line
// starting with "." gets a second one. finish ends the last line, so the
// terminator that follows is always on a line of its own and appears
// exactly once.
type bodyWriter struct {
	w           io.Writer
	dotStuff    bool
	atLineStart bool
	pendingCR   bool
	err         error
	rec         *bodyRecorder
	n           int64 // bytes written, stuffing and line endings included
	crlf        [2]byte
	lineLen     int   // octets of the current line so far
	lineNo      int   // lines ended so far
	tooLong     error // a line over maxTextLine, or an undeclared 8-bit octet, was met
	// sevenBit is set when the MAIL command declared no 8-bit content:
	// an octet with the high bit set must not go out (RFC 5321 2.4).
	sevenBit bool
}

// errUndeclared8Bit is the cause of the error for an 8-bit octet in a
// message whose MAIL command did not declare 8-bit content.
var errUndeclared8Bit = errors.New("the message has 8-bit content, but its envelope declares none (set Envelope.EightBit or SMTPUTF8; RFC 5321 2.4, RFC 6152 3)")

// has8Bit reports whether p holds an octet with the high bit set, eight
// octets at a time.
func has8Bit(p []byte) bool {
	for len(p) >= 32 {
		le := binary.LittleEndian
		if (le.Uint64(p)|le.Uint64(p[8:])|le.Uint64(p[16:])|le.Uint64(p[24:]))&0x8080808080808080 != 0 {
			return true
		}
		p = p[32:]
	}
	for len(p) >= 8 {
		if binary.LittleEndian.Uint64(p)&0x8080808080808080 != 0 {
			return true
		}
		p = p[8:]
	}
	for _, c := range p {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// maxTextLine is the longest line of a message, without its CRLF (RFC
// 5321 4.5.3.1.6, RFC 5322 2.1.1).
const maxTextLine = 998

// errLineTooLong is the cause of the error for a line over maxTextLine.
var errLineTooLong = errors.New("a line of the message is longer than 998 octets (RFC 5321 4.5.3.1.6)")

// grow counts n more octets of the current line and reports whether the
// line is still within maxTextLine; when it is not, b.tooLong says which.
func (b *bodyWriter) grow(n int) bool {
	b.lineLen += n
	if b.lineLen > maxTextLine {
		b.tooLong = fmt.Errorf("line %d: %w", b.lineNo+1, errLineTooLong)
		return false
	}
	return true
}

func newBodyWriter(w io.Writer, dotStuff bool, rec *bodyRecorder) *bodyWriter {
	return &bodyWriter{w: w, dotStuff: dotStuff, atLineStart: true, rec: rec, crlf: [2]byte{'\r', '\n'}}
}

func (b *bodyWriter) put(p []byte) {
	if b.err != nil || len(p) == 0 {
		return
	}
	n, err := b.w.Write(p)
	b.n += int64(n)
	b.err = err
}

func (b *bodyWriter) eol() {
	b.put(b.crlf[:])
	b.atLineStart = true
	b.lineLen = 0
	b.lineNo++
	b.rec.endLine()
}

// Write normalises p onto the wire.
func (b *bodyWriter) Write(p []byte) (int, error) {
	total := len(p)
	if b.sevenBit && b.tooLong == nil && has8Bit(p) {
		b.tooLong = fmt.Errorf("line %d or after: %w", b.lineNo+1, errUndeclared8Bit)
	}
	if b.tooLong != nil {
		return 0, b.tooLong
	}
	for len(p) > 0 && b.err == nil {
		if b.pendingCR {
			b.pendingCR = false
			if p[0] == '\n' {
				p = p[1:]
			}
			b.eol()
			continue
		}
		if b.atLineStart && b.dotStuff && p[0] == '.' {
			b.put([]byte{'.'})
		}
		// The first line end: '\n' found with IndexByte, then '\r' looked
		// for only before it (two assembly scans beat IndexAny's loop).
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			i = bytes.IndexByte(p, '\r')
		} else if j := bytes.IndexByte(p[:i], '\r'); j >= 0 {
			i = j
		}
		if i < 0 {
			if !b.grow(len(p)) {
				return 0, b.tooLong
			}
			b.put(p)
			b.rec.text(p)
			b.atLineStart = false
			break
		}
		if !b.grow(i) {
			return 0, b.tooLong
		}
		if p[i] == '\r' && i+1 < len(p) && p[i+1] == '\n' {
			// A CRLF line goes out as it is, its line end included: one
			// write instead of two.
			b.put(p[:i+2])
			b.rec.text(p[:i])
			b.atLineStart = true
			b.lineLen = 0
			b.lineNo++
			b.rec.endLine()
			p = p[i+2:]
			continue
		}
		if i > 0 {
			b.put(p[:i])
			b.rec.text(p[:i])
			b.atLineStart = false
		}
		if p[i] == '\r' {
			b.pendingCR = true
		} else {
			b.eol()
		}
		p = p[i+1:]
	}
	if b.err != nil {
		return 0, b.err
	}
	return total, nil
}

// finish ends the last line with CRLF if it is not ended yet.
func (b *bodyWriter) finish() error {
	if b.pendingCR {
		b.pendingCR = false
		b.eol()
	}
	if !b.atLineStart {
		b.eol()
	}
	return b.err
}

// maxBodyLinesShown bounds the message lines a transcript shows, so that
// a message without a blank line (all "headers") or a large body with
// ShowBody cannot fill the transcript and push the final reply out of it.
const maxBodyLinesShown = 2000

// bodyRecorder writes the message to the transcript as it goes out: the
// header lines as they are, and the body as one summary line with its
// size, unless the whole body was asked for.
type bodyRecorder struct {
	c        *Client
	showAll  bool
	inHeader bool
	line     []byte
	lines    int
	headers  int
	shown    int
	// hold keeps the lines until release: with BDAT the command line goes
	// on the wire before its chunk, and the transcript must say so.
	hold bool
	held []string
	// off: the transcript keeps nothing and nobody listens (the CLI's
	// --quiet), so the lines are not composed at all.
	off bool
}

func newBodyRecorder(c *Client) *bodyRecorder {
	return &bodyRecorder{c: c, showAll: c.cfg.ShowBody, inHeader: true, off: c.tr.idle()}
}

func (r *bodyRecorder) text(p []byte) {
	if r.off || (!r.inHeader && !r.showAll) || r.shown >= maxBodyLinesShown {
		return
	}
	if room := maxLineLength + 1 - len(r.line); room > 0 {
		r.line = append(r.line, p[:min(room, len(p))]...)
	}
}

func (r *bodyRecorder) endLine() {
	r.lines++
	if r.off {
		return
	}
	if r.inHeader && len(r.line) == 0 {
		r.inHeader = false
		if !r.showAll {
			r.show("")
		}
	}
	if r.inHeader || r.showAll {
		r.show(string(r.line))
		if r.inHeader && r.shown <= maxBodyLinesShown {
			r.headers++
		}
	}
	r.line = r.line[:0]
}

// show records one message line, up to maxBodyLinesShown.
func (r *bodyRecorder) show(line string) {
	if r.shown >= maxBodyLinesShown {
		r.shown = maxBodyLinesShown + 1 // remember that lines were left out
		return
	}
	r.shown++
	if r.hold {
		r.held = append(r.held, line)
		return
	}
	r.c.tr.add(DirClient, PhaseBody, line, false)
}

// release records the lines held back so far.
func (r *bodyRecorder) release() {
	for _, l := range r.held {
		r.c.tr.add(DirClient, PhaseBody, l, false)
	}
	r.held = r.held[:0]
}

// summary records what was not shown; total is the size on the wire.
func (r *bodyRecorder) summary(total int64) {
	r.release()
	if r.off {
		return
	}
	switch {
	case r.shown > maxBodyLinesShown:
		r.c.tr.Info(PhaseBody, "message: %d bytes in %d lines; the first %d lines are shown, the rest is not shown",
			total, r.lines, maxBodyLinesShown)
	case r.showAll:
		r.c.tr.Info(PhaseBody, "message: %d bytes in %d lines", total, r.lines)
	default:
		r.c.tr.Info(PhaseBody, "message: %d bytes in %d lines; %d header lines shown, the body is not shown",
			total, r.lines, r.headers)
	}
}

// chunkWriter cuts the normalised message into BDAT chunks (RFC 3030).
// Before the first chunk goes out, first is called: it may flush the
// envelope and wait for its replies (when the message is larger than one
// chunk), or let everything go out in one write (when it fits).
type chunkWriter struct {
	c       *Client
	buf     []byte
	size    int
	started bool
	first   func(last bool) error
	pending int // BDAT commands whose replies have not been read
	err     error
	// sync, if set, is called after each chunk but the last to wait for
	// its reply (no PIPELINING).
	sync func() error
	// rec, if set, holds the transcript lines of each chunk until its
	// BDAT command is recorded.
	rec *bodyRecorder
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if w.err != nil {
			return 0, w.err
		}
		room := w.size - len(w.buf)
		if room == 0 {
			w.emit(false)
			continue
		}
		n := min(room, len(p))
		if len(w.buf)+n > cap(w.buf) && cap(w.buf) >= w.size/16 {
			// A large message: take the whole chunk once rather than
			// doubling towards it, which would leave as much again as
			// garbage (peak memory of a large attachment).
			w.buf = append(make([]byte, 0, w.size), w.buf...)
		}
		w.buf = append(w.buf, p[:n]...)
		p = p[n:]
	}
	return total, w.err
}

// emit writes the buffered chunk as one BDAT command.
func (w *chunkWriter) emit(last bool) {
	if w.err != nil {
		return
	}
	if !w.started {
		w.started = true
		if err := w.first(last); err != nil {
			w.err = err
			return
		}
	}
	line := "BDAT " + strconv.Itoa(len(w.buf))
	if last {
		line += " LAST"
	}
	w.c.writeLine(PhaseBody, line, line, false)
	if w.rec != nil {
		w.rec.release() // the chunk's lines after its BDAT command
	}
	if _, err := w.c.bw.Write(w.buf); err != nil {
		w.err = fmt.Errorf("write chunk: %w", err)
	}
	w.pending++
	w.buf = w.buf[:0]
	if w.sync != nil && !last {
		w.err = w.sync()
		w.pending--
	}
}
