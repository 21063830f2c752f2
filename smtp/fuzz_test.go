package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// Fuzz targets for what a hostile server controls (replies, EHLO
// keywords) and for the body normaliser (RFC 5321 2.3.8). Seeds live here
// and in testdata/fuzz; `make fuzz` runs each for a short while.

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"220 mx.test ESMTP\r\n",
		"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n",
		"250\r\n",
		"250-\r\n250 \r\n",
		"250-a\r\n251 b\r\n",
		"250-a\n250 b\n",
		"250 a\rb\r\n",
		"220-x\r\n220-x\r\n",
		"x\r\n",
		"25",
		"",
		"250 " + strings.Repeat("x", 5000) + "\r\n",
		strings.Repeat("220-x\r\n", 300),
		"354 go\r\n250 Ok: queued as Q\r\n221 Bye\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var raw []string
		rr := replyReader{br: bufio.NewReaderSize(bytes.NewReader(data), readBufferSize), onLine: func(l string) { raw = append(raw, l) }}
		for range 1000 {
			raw = raw[:0]
			r, err := rr.readReply()
			if err != nil {
				var pe *ProtocolError
				if !errors.As(err, &pe) && !errors.Is(err, errConnLost) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				if pe != nil && len(pe.Error()) > 512 { // 80 bytes of line, quoted
					t.Fatalf("protocol error message is %d bytes", len(pe.Error()))
				}
				return
			}
			if r.Code < 200 || r.Code > 599 {
				t.Fatalf("code %d out of range", r.Code)
			}
			if len(r.Lines) == 0 || len(r.Lines) > maxReplyLines {
				t.Fatalf("%d lines", len(r.Lines))
			}
			if len(raw) != len(r.Lines) {
				t.Fatalf("%d raw lines for %d reply lines", len(raw), len(r.Lines))
			}
			total := 0
			code := strconv.Itoa(r.Code)
			for i, l := range raw {
				total += len(l)
				if len(l) > maxLineLength {
					t.Fatalf("line of %d bytes accepted", len(l))
				}
				if !strings.HasPrefix(l, code) {
					t.Fatalf("line %q inside a %d reply", l, r.Code)
				}
				last := i == len(raw)-1
				switch {
				case len(l) == 3:
					if !last {
						t.Fatalf("bare code %q before the last line", l)
					}
				case l[3] == '-' && last, l[3] == ' ' && !last:
					t.Fatalf("line %q at position %d of %d", l, i, len(raw))
				}
				if want := strings.TrimPrefix(l, code); len(want) > 0 && want[1:] != r.Lines[i] {
					t.Fatalf("text %q from line %q", r.Lines[i], l)
				}
			}
			if total > maxReplyLength {
				t.Fatalf("reply of %d bytes accepted", total)
			}
		}
	})
}

func FuzzParseEHLO(f *testing.F) {
	for _, s := range []string{
		"mx.test\nPIPELINING\nSIZE 10240000\nSTARTTLS\nAUTH PLAIN LOGIN\nAUTH=PLAIN LOGIN\n8BITMIME",
		"mx.test\npipelining\nauth plain\nsize",
		"mx.test\nSIZE\nSIZE 100\nSIZE 200",
		"mx.test\nAUTH=\nAUTH\nAUTH= x",
		"mx.test\n\n  \nX  a\tb ",
		"mx.test\n\xff\xfe AUTH",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ext, mechs := parseEHLO(strings.Split(s, "\n"))
		seen := map[string]bool{}
		for _, m := range mechs {
			if m == "" || m != strings.ToUpper(m) || strings.ContainsAny(m, " \t\r\n") {
				t.Fatalf("mechanism %q", m)
			}
			if seen[m] {
				t.Fatalf("mechanism %q twice", m)
			}
			seen[m] = true
		}
		if len(mechs) > 0 && ext["AUTH"] != strings.Join(mechs, " ") {
			t.Fatalf("AUTH = %q, mechanisms %q", ext["AUTH"], mechs)
		}
		for k, v := range ext {
			if k == "" || k != strings.ToUpper(k) || strings.Contains(k, " ") {
				t.Fatalf("keyword %q", k)
			}
			if strings.HasPrefix(k, "AUTH=") {
				t.Fatalf("legacy keyword %q kept as its own extension", k)
			}
			if v != strings.TrimSpace(v) {
				t.Fatalf("parameter %q not trimmed", v)
			}
		}
	})
}

// FuzzBodyWriter: whatever the message and however it is cut into writes,
// the wire never carries a bare CR or LF, no line is a lone ".", and
// undoing the stuffing gives back the message with normalised line ends.
func FuzzBodyWriter(f *testing.F) {
	for _, s := range []string{"", "a", ".", "\n.\n", "\r.\r\n", "a\rb\nc\r\n", "..\r\n.", "\r\r\n\n", "x\r"} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, msg []byte, cut uint8) {
		var out bytes.Buffer
		c := &Client{tr: NewTranscript()}
		bw := newBodyWriter(&out, true, newBodyRecorder(c))
		step := int(cut%16) + 1
		var err error
		for i := 0; i < len(msg) && err == nil; i += step {
			_, err = bw.Write(msg[i:min(i+step, len(msg))])
		}
		if err == nil {
			err = bw.finish()
		}
		longest := 0
		for _, l := range strings.FieldsFunc(string(msg), func(r rune) bool { return r == '\r' || r == '\n' }) {
			longest = max(longest, len(l))
		}
		switch {
		case errors.Is(err, errLineTooLong) && longest > maxTextLine:
			return // refused, as it must be: the end of the message never goes out
		case err != nil:
			t.Fatalf("%v (longest line %d octets)", err, longest)
		case longest > maxTextLine:
			t.Fatalf("a line of %d octets went out", longest)
		}
		wire := out.Bytes()
		for i, b := range wire {
			if b == '\r' && (i+1 >= len(wire) || wire[i+1] != '\n') {
				t.Fatalf("bare CR at %d in %q", i, wire)
			}
			if b == '\n' && (i == 0 || wire[i-1] != '\r') {
				t.Fatalf("bare LF at %d in %q", i, wire)
			}
		}
		if len(wire) > 0 && !bytes.HasSuffix(wire, []byte("\r\n")) {
			t.Fatalf("last line not ended: %q", wire)
		}
		// Undo: split into lines, unstuff, join with "\n".
		var lines []string
		if len(wire) > 0 {
			lines = strings.Split(strings.TrimSuffix(string(wire), "\r\n"), "\r\n")
		}
		for i, l := range lines {
			if l == "." {
				t.Fatalf("a lone dot line would end the message early: %q", wire)
			}
			if strings.HasPrefix(l, ".") {
				lines[i] = l[1:]
			}
		}
		want := strings.ReplaceAll(string(msg), "\r\n", "\n")
		want = strings.ReplaceAll(want, "\r", "\n")
		want = strings.TrimSuffix(want, "\n")
		if got := strings.Join(lines, "\n"); got != want {
			t.Fatalf("round trip:\n got %q\nwant %q", got, want)
		}
		if bw.n != int64(len(wire)) {
			t.Fatalf("counted %d bytes, wrote %d", bw.n, len(wire))
		}
	})
}
