package message

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// rawInput is the user-supplied message of the raw golden file: LF, CRLF and
// bare CR line endings (the blank line after the header is a bare CR then
// CRLF), no final line break.
const rawInput = "From: Alice <alice@example.com>\nTo: bob@example.net\r\nSubject: raw\r\r\n" +
	"Body line one\nline two\r\rafter a blank line (two bare CRs)\nno final newline"

// goldens returns every golden file name and the content it holds.
func goldens(t *testing.T) map[string]Content {
	out := make(map[string]Content)
	for _, s := range shapes() {
		out[s.name+".eml"] = fixed(s.msg())
	}
	raw, err := RawBytes("alice@example.com", []string{"bob@example.net"}, []byte(rawInput))
	if err != nil {
		t.Fatal(err)
	}
	out["raw.eml"] = raw
	return out
}

func TestGolden(t *testing.T) {
	for name, c := range goldens(t) {
		t.Run(name, func(t *testing.T) {
			got := write(t, c)
			if again := write(t, c); !bytes.Equal(got, again) {
				t.Fatal("second WriteTo differs from the first")
			}
			size, err := c.Size()
			if err != nil {
				t.Fatal(err)
			}
			if size != int64(len(got)) {
				t.Errorf("Size() = %d, WriteTo wrote %d", size, len(got))
			}
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run go test -update after checking the change)\n--- got:\n%s", path, got)
			}
		})
	}
}

// TestGoldenFilesWellFormed guards every golden file: CRLF line endings only
// (no bare CR or LF), no line over 998 octets, header lines (message and
// MIME part headers) of at most 78 characters, no NUL and, except in the
// header of an SMTPUTF8 message, only ASCII.
func TestGoldenFilesWellFormed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < len(shapes())+1 {
		t.Fatalf("found %d golden files, want at least %d", len(files), len(shapes())+1)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkWellFormed(t, f, data, !strings.Contains(f, "intl"))
	}
}

// checkWellFormed checks what TestGoldenFilesWellFormed describes.
func checkWellFormed(t *testing.T, name string, data []byte, ascii bool) {
	t.Helper()
	for i := 0; i < len(data); i++ {
		switch {
		case data[i] == '\r' && (i+1 == len(data) || data[i+1] != '\n'):
			t.Fatalf("%s: bare CR at offset %d", name, i)
		case data[i] == '\n' && (i == 0 || data[i-1] != '\r'):
			t.Fatalf("%s: bare LF at offset %d", name, i)
		case data[i] == 0:
			t.Fatalf("%s: NUL at offset %d", name, i)
		}
	}
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		t.Fatalf("%s: does not end with CRLF", name)
	}
	inHeader := true
	for n, line := range lines(data) {
		if len(line) > hardLineLen {
			t.Fatalf("%s: line %d has %d octets", name, n+1, len(line))
		}
		if line == "" {
			inHeader = false
			continue
		}
		if strings.HasPrefix(line, "--=_") {
			inHeader = true // a part header follows a delimiter
			continue
		}
		if inHeader && len(line) > softLineLen && !strings.HasPrefix(name, "raw") {
			t.Errorf("%s: header line %d has %d characters: %q", name, n+1, len(line), line)
		}
		if !inHeader || ascii {
			for _, c := range []byte(line) {
				if c >= 0x80 {
					t.Fatalf("%s: line %d holds non-ASCII %q", name, n+1, line)
				}
			}
		}
	}
}
