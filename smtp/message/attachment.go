package message

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Attachment limits.
const (
	maxFilename   = 255 // bytes
	maxContentID  = 250 // bytes
	sniffLen      = 512 // what http.DetectContentType looks at
	fallbackLimit = 60  // ASCII fallback file name length
)

// Attachment is a file attached to a message (Message.Attachments) or shown
// inline by its HTML body (Message.Inline). Its content is read from Open
// while the message is written, never held by the Message.
type Attachment struct {
	// Filename is the name shown to the recipient; it may be empty. It may
	// hold any Unicode text except control characters (CR, LF and NUL
	// included); it is sent with RFC 2231 encoding and an ASCII fallback.
	Filename string
	// ContentType is the MIME type, like "image/png". When empty, Prepare
	// detects it from the file name extension (mime.TypeByExtension) or,
	// failing that, from the first 512 bytes (http.DetectContentType).
	ContentType string
	// ContentID identifies an inline part for "cid:" URLs in the HTML body
	// (RFC 2392), without angle brackets. Required for Message.Inline.
	ContentID string
	// Size is the exact number of bytes Open yields. Message.Size relies on
	// it and Message.WriteTo fails if the source yields another number.
	Size int64
	// Open returns a new reader positioned at the start of the content each
	// time it is called. It must yield the same bytes every time (a DKIM
	// signature needs two passes).
	Open func() (io.ReadCloser, error)
}

// FileAttachment returns an attachment read from the file at path when the
// message is written. The file is checked now: a missing or unreadable file,
// or one that is not a regular file, is an error right away. The file name is
// the last element of path and the content type is detected now.
func FileAttachment(path string) (*Attachment, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("message: attachment: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("message: attachment %s: not a regular file", path)
	}
	a := &Attachment{
		Filename: filepath.Base(path),
		Size:     fi.Size(),
		Open:     func() (io.ReadCloser, error) { return os.Open(path) },
	}
	if err := a.detectType(); err != nil {
		return nil, err
	}
	return a, nil
}

// BytesAttachment returns an attachment holding data, named name, with its
// content type detected from the name or the data. data is not copied and
// must not change until the message is sent.
func BytesAttachment(name string, data []byte) *Attachment {
	a := &Attachment{
		Filename:    name,
		Size:        int64(len(data)),
		Open:        func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		ContentType: typeByExtension(name),
	}
	if a.ContentType == "" {
		a.ContentType = safeType(http.DetectContentType(data))
	}
	return a
}

// typeByExtension returns the type known for name's extension, or "".
func typeByExtension(name string) string {
	ext := path.Ext(name)
	if ext == "" {
		return ""
	}
	return safeType(mime.TypeByExtension(ext))
}

// safeType maps a detected type that cannot be sent base64-encoded
// (message/* and multipart/*, RFC 2046 5.2.1 and 5.1) to
// application/octet-stream.
func safeType(t string) string {
	lower := strings.ToLower(t)
	if strings.HasPrefix(lower, "message/") || strings.HasPrefix(lower, "multipart/") {
		return "application/octet-stream"
	}
	return t
}

// detectType fills in ContentType when it is empty: by extension, else by
// sniffing the first bytes of the content.
func (a *Attachment) detectType() error {
	if a.ContentType != "" {
		return nil
	}
	if t := typeByExtension(a.Filename); t != "" {
		a.ContentType = t
		return nil
	}
	if a.Open == nil {
		return fmt.Errorf("message: attachment %q: no source", a.Filename)
	}
	rc, err := a.Open()
	if err != nil {
		return fmt.Errorf("message: attachment %q: %w", a.Filename, err)
	}
	defer rc.Close()
	head, err := io.ReadAll(io.LimitReader(rc, sniffLen))
	if err != nil {
		return fmt.Errorf("message: attachment %q: %w", a.Filename, err)
	}
	a.ContentType = safeType(http.DetectContentType(head))
	return nil
}

// check validates the attachment; inline parts need a Content-ID.
func (a *Attachment) check(field string, inline bool) error {
	if a == nil {
		return fmt.Errorf("message: %s: nil attachment", field)
	}
	name := fmt.Sprintf("%s %q", field, a.Filename)
	if err := checkRaw(a.Filename); err != nil {
		return fmt.Errorf("message: %s: filename %w", name, err)
	}
	for _, r := range a.Filename {
		if r < ' ' || r == 0x7f || 0x80 <= r && r < 0xa0 {
			return fmt.Errorf("message: %s: filename contains control character %q", name, r)
		}
	}
	if len(a.Filename) > maxFilename {
		return fmt.Errorf("message: %s: filename longer than %d bytes", name, maxFilename)
	}
	if a.Open == nil {
		return fmt.Errorf("message: %s: no source (Open is nil)", name)
	}
	if a.Size < 0 {
		return fmt.Errorf("message: %s: negative size", name)
	}
	if a.ContentType != "" {
		if err := checkRaw(a.ContentType); err != nil {
			return fmt.Errorf("message: %s: content type %w", name, err)
		}
		mt, _, err := mime.ParseMediaType(a.ContentType)
		if err != nil {
			return fmt.Errorf("message: %s: content type %q: %w", name, a.ContentType, err)
		}
		if !strings.Contains(mt, "/") {
			return fmt.Errorf("message: %s: content type %q has no subtype", name, a.ContentType)
		}
		if safeType(mt) != mt {
			return fmt.Errorf("message: %s: content type %s cannot be sent base64-encoded; use application/octet-stream", name, mt)
		}
	}
	if inline || a.ContentID != "" {
		if err := checkContentID(a.ContentID); err != nil {
			return fmt.Errorf("message: %s: Content-ID %q: %w", name, a.ContentID, err)
		}
	}
	return nil
}

// checkContentID validates an RFC 2392 content-id (a msg-id without the
// angle brackets, RFC 5322 3.6.4); a missing "@" is tolerated, as many
// mailers omit it.
func checkContentID(id string) error {
	if err := checkRaw(id); err != nil {
		return err
	}
	id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	switch {
	case id == "":
		return errors.New("empty")
	case len(id) > maxContentID:
		return fmt.Errorf("longer than %d bytes", maxContentID)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 0x80 || !(isAtext(rune(c)) || c == '.' || c == '@') {
			return fmt.Errorf("invalid character %q", c)
		}
	}
	return nil
}

// fallbackName returns an ASCII file name safe in a quoted-string for
// clients that ignore RFC 2231: characters outside a conservative set are
// replaced by "_" and long names are shortened, keeping the extension.
func fallbackName(name string) string {
	var b strings.Builder
	for _, r := range name {
		ok := 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
			strings.ContainsRune(" ._-()+,!#&=@~", r)
		if ok {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) > fallbackLimit {
		ext := path.Ext(s)
		if len(ext) > 10 {
			ext = ""
		}
		s = s[:fallbackLimit-len(ext)] + ext
	}
	return s
}

// attrChar reports an RFC 2231 attribute-char: a token character other than
// "*", "'" and "%".
func attrChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}

// tokenChar reports an RFC 2045 token character.
func tokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && strings.IndexByte(`()<>@,;:\"/[]?=`, c) < 0
}

// percentEncode returns s as an RFC 2231 extended value without the
// charset prefix, split into segments of at most n characters that never
// split a %XX triplet.
func percentEncode(s string, n int) []string {
	const hex = "0123456789ABCDEF"
	var segs []string
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		w := 1
		if !attrChar(c) {
			w = 3
		}
		if b.Len()+w > n {
			segs = append(segs, b.String())
			b.Reset()
		}
		if w == 1 {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return append(segs, b.String())
}

// nameParam adds a file name parameter (filename or name) to f. A name that
// is safe ASCII is written as a quoted-string. Any other name is written
// twice: first in its exact RFC 2231 form (split in continuations when
// long), then as an ASCII fallback quoted-string for readers that do not
// know RFC 2231. The extended form comes first because readers differ when
// both are present: RFC 2231-aware ones (Go's mime, most mail clients)
// prefer it wherever it is, while some (Python's email package) take the
// first parameter of that name; those that ignore RFC 2231 skip "filename*"
// and find the fallback.
func (f *field) nameParam(key, name string) {
	fb := fallbackName(name)
	if fb != name {
		const seg = 50
		segs := percentEncode(name, seg)
		if len(segs) == 1 {
			f.glue(";")
			f.token(" ", key+"*=utf-8''"+segs[0], false)
		} else {
			for i, s := range segs {
				if i == 0 {
					s = "utf-8''" + s
				}
				f.glue(";")
				f.token(" ", fmt.Sprintf("%s*%d*=%s", key, i, s), false)
			}
		}
	}
	f.glue(";")
	f.token(" ", key+`="`+fb+`"`, false)
}

// mediaField builds a Content-Type or Content-Disposition field: value, the
// parameters in params (sorted, quoted when needed, RFC 2231 when not
// ASCII), then the file name parameter nameKey when name is not empty.
func mediaField(fieldName, value string, params map[string]string, nameKey, name string) (string, error) {
	f := newField(fieldName)
	f.token(" ", value, false)
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != nameKey {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := params[k]
		switch {
		case v != "" && strings.IndexFunc(v, func(r rune) bool { return r > 0x7f || !tokenChar(byte(r)) }) < 0:
			f.glue(";")
			f.token(" ", k+"="+v, false)
		case plainText(v, true):
			f.glue(";")
			f.token(" ", k+`="`+strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v)+`"`, false)
		default:
			f.nameParam(k, v)
		}
	}
	if name != "" {
		f.nameParam(nameKey, name)
	}
	return f.result()
}
