package smtp

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

// BenchmarkBodyWriter measures the line-end normalisation and dot
// stuffing of a text message with CRLF and with bare LF line ends.
func BenchmarkBodyWriter(b *testing.B) {
	line := "The quick brown fox jumps over the lazy dog, and .dots stay inside.\n"
	for _, eol := range []string{"\r\n", "\n"} {
		name := map[string]string{"\r\n": "crlf", "\n": "lf"}[eol]
		msg := []byte(strings.Repeat(strings.ReplaceAll(line, "\n", eol), 1000))
		b.Run(name, func(b *testing.B) {
			c := &Client{tr: NewTranscript()}
			w := bufio.NewWriterSize(io.Discard, writeBufferSize)
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				rec := newBodyRecorder(c)
				rec.inHeader = false // the body: not recorded line by line
				bw := newBodyWriter(w, true, rec)
				if _, err := bw.Write(msg); err != nil {
					b.Fatal(err)
				}
				if err := bw.finish(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
