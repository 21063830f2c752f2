package contact

import (
	"encoding/base64"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"sockmail/internal/store"
	"sockmail/internal/webform"
)

// Contact form input limits. The per-form limits (MaxFieldBytes,
// MaxUploadBytes) apply within these.
const (
	// contactMaxValues bounds how many values a submission may carry.
	contactMaxValues = 50
	// contactMaxFiles bounds how many files a submission may carry.
	contactMaxFiles = 10
	// contactMaxName bounds a field name, in bytes.
	contactMaxName = 64
	// contactFieldsBudget bounds all field values together.
	contactFieldsBudget = 1 << 20
	// contactOverhead is room for names, encodings and the meta fields.
	contactOverhead = 64 << 10
	// MultipartMemory is what a multipart body may keep in memory before
	// spilling to temporary files.
	MultipartMemory = 1 << 20
	// DefaultMaxFieldBytes and DefaultMaxUploadBytes are the limits of
	// a form that does not set its own.
	DefaultMaxFieldBytes  = 32 << 10
	DefaultMaxUploadBytes = 5 << 20
)

// Meta fields: names starting with "_" are sockmail's own and never part
// of the message.
const (
	// FieldToken carries the time-trap token.
	FieldToken = "_token"
	// FieldHoneypot is the honeypot: people leave it empty.
	FieldHoneypot = "_gotcha"
	// FieldEmail is the visitor's address: Reply-To only.
	FieldEmail = "email"
	// FieldName is the visitor's name: Reply-To's display name.
	FieldName   = "name"
	fieldOrigin = "_origin" // the site's origin, carried by the confirmation page
	// Files carried through the confirmation page, base64-encoded.
	fieldUploadName = "_upload_name"
	fieldUploadType = "_upload_type"
	fieldUploadData = "_upload_data"
)

// CaptchaField returns the field the provider's widget adds to a form
// ("" for none).
func CaptchaField(provider string) string {
	switch provider {
	case store.CaptchaTurnstile:
		return "cf-turnstile-response"
	case store.CaptchaHCaptcha:
		return "h-captcha-response"
	}
	return ""
}

// values is what a visitor posted, bounded and cleaned.
type values struct {
	// fields are the message fields: the form's expected fields first,
	// in its order, then any others by name. Meta fields are not here.
	fields   []store.FieldValue
	files    []store.SubmissionFile
	token    string
	honeypot string
	captcha  string
	// origin is the site's origin that sockmail's confirmation page
	// carries (the page itself posts from sockmail's origin).
	origin string
}

// value returns the first value of the field name.
func (in *values) value(name string) string {
	for _, f := range in.fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// Limits returns a form's per-field and upload limits, in bytes, with
// defaults filled in (upload is 0 when the form takes no files).
func Limits(f *store.Form) (field, upload int64) {
	field, upload = f.MaxFieldBytes, f.MaxUploadBytes
	if field <= 0 {
		field = DefaultMaxFieldBytes
	}
	if upload <= 0 {
		upload = DefaultMaxUploadBytes
	}
	if !f.AllowUploads {
		upload = 0
	}
	return field, upload
}

// BodyLimit is the largest request body the form accepts: all
// fields at their limit, plus the uploads base64-encoded (as the
// confirmation page carries them), plus room for the rest.
func BodyLimit(f *store.Form) int64 {
	field, upload := Limits(f)
	fields := min(field*contactMaxValues, contactFieldsBudget)
	return fields + upload/3*4 + 4 + contactOverhead
}

// MaxBody bounds a request to any contact form, before the form is
// known: the largest BodyLimit a form with uploads up to maxUpload bytes
// may have.
func MaxBody(maxUpload int64) int64 {
	return contactFieldsBudget + maxUpload/3*4 + 4 + contactOverhead
}

// cleanFieldName makes a field name safe to show: printable, one line,
// bounded. It returns "" for a name that is nothing after cleaning.
func cleanFieldName(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > contactMaxName {
		s = truncateUTF8(s, contactMaxName)
	}
	return s
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// cleanValue makes a field value valid UTF-8 with LF line endings. It may
// hold any character: it only ever goes into the message body.
func cleanValue(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// take fills the fields and meta fields from the parsed values, checking
// the limits.
func (in *values) take(raw map[string][]string, f *store.Form) *Problem {
	fieldLimit, _ := Limits(f)
	first := func(name string) string {
		if v := raw[name]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	in.token = strings.TrimSpace(first(FieldToken))
	in.honeypot = first(FieldHoneypot)
	in.origin = first(fieldOrigin)
	if name := CaptchaField(f.CaptchaProvider); name != "" {
		in.captcha = strings.TrimSpace(first(name))
		if len(in.captcha) > 4096 {
			return problem(TooLarge, http.StatusRequestEntityTooLarge, "too_large", "The captcha answer is too long.")
		}
	}
	// Expected fields first, in the form's order; then the others sorted.
	var names []string
	seen := map[string]bool{}
	for _, n := range f.Fields {
		if _, ok := raw[n]; ok && !seen[n] {
			names = append(names, n)
			seen[n] = true
		}
	}
	var rest []string
	for n := range raw {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	names = append(names, rest...)

	count, total := 0, int64(0)
	for _, n := range names {
		if strings.HasPrefix(n, "_") || isCaptchaField(n) {
			continue
		}
		name := cleanFieldName(n)
		if name == "" || strings.HasPrefix(name, "_") || isCaptchaField(name) {
			continue // " _token" is no more a field than "_token"
		}
		for _, v := range raw[n] {
			count++
			if count > contactMaxValues {
				return problem(TooLarge, http.StatusRequestEntityTooLarge, "too_many_fields",
					"The form has more than "+strconv.Itoa(contactMaxValues)+" fields; this is more than it accepts.")
			}
			if int64(len(v)) > fieldLimit {
				return &Problem{Kind: TooLarge, Status: http.StatusRequestEntityTooLarge, Code: "field_too_large", Field: name,
					Message: "The field \u201c" + name + "\u201d is too long: at most " + webform.Bytes(fieldLimit) + " please."}
			}
			total += int64(len(v))
			if total > contactFieldsBudget {
				return ErrTooLarge(contactFieldsBudget)
			}
			in.fields = append(in.fields, store.FieldValue{Name: name, Value: cleanValue(v)})
		}
	}
	return nil
}

func isCaptchaField(n string) bool {
	switch n {
	case "cf-turnstile-response", "h-captcha-response", "g-recaptcha-response":
		return true
	}
	return false
}

// Upload is one uploaded file, not read yet.
type Upload struct {
	// Name and ContentType are as the client sent them.
	Name, ContentType string
	// Size is the file's size in bytes.
	Size int64
	// Open opens the content.
	Open func() (io.ReadCloser, error)
}

// takeFiles reads uploaded files and files carried base64-encoded by the
// confirmation page, within the form's limits.
func (in *values) takeFiles(uploads []Upload, raw map[string][]string, f *store.Form) *Problem {
	_, limit := Limits(f)
	carried := raw[fieldUploadData]
	if len(uploads) == 0 && len(carried) == 0 {
		return nil
	}
	if !f.AllowUploads {
		return problem(BadRequest, http.StatusBadRequest, "files_not_allowed", "This form does not accept files. Please send your message without attachments.")
	}
	if len(uploads)+len(carried) > contactMaxFiles {
		return problem(TooLarge, http.StatusRequestEntityTooLarge, "too_many_files",
			"Please attach at most "+strconv.Itoa(contactMaxFiles)+" files.")
	}
	var total int64
	tooBig := func() *Problem {
		return problem(TooLarge, http.StatusRequestEntityTooLarge, "files_too_large",
			"The attached files are too large: at most "+webform.Bytes(limit)+" in all, please.")
	}
	add := func(name, ctype string, data []byte) {
		in.files = append(in.files, store.SubmissionFile{Name: cleanFileName(name), ContentType: cleanContentType(ctype), Data: data})
	}
	for _, fh := range uploads {
		total += fh.Size
		if total > limit {
			return tooBig()
		}
		rc, err := fh.Open()
		if err != nil {
			return ErrBadRequest("An attached file could not be read. Please try again.")
		}
		data, err := io.ReadAll(io.LimitReader(rc, limit+1))
		rc.Close()
		if err != nil {
			return ErrBadRequest("An attached file could not be read. Please try again.")
		}
		add(fh.Name, fh.ContentType, data)
	}
	names, types := raw[fieldUploadName], raw[fieldUploadType]
	for i, enc := range carried {
		if int64(base64.StdEncoding.DecodedLen(len(enc)))+total > limit+2 {
			return tooBig()
		}
		data, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return ErrBadRequest("An attached file could not be read. Please attach it again.")
		}
		total += int64(len(data))
		if total > limit {
			return tooBig()
		}
		var name, ctype string
		if i < len(names) {
			name = names[i]
		}
		if i < len(types) {
			ctype = types[i]
		}
		add(name, ctype, data)
	}
	return nil
}

// cleanFileName keeps the last path element of an uploaded file's name,
// without control characters, bounded; "attachment" when nothing is left.
func cleanFileName(s string) string {
	s = strings.ToValidUTF8(s, "")
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '"' {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	s = truncateUTF8(s, 200)
	if s == "" || s == "." || s == ".." {
		return "attachment"
	}
	return s
}

// cleanContentType keeps a well-formed media type without parameters, or
// returns "" (the composer then detects the type).
func cleanContentType(s string) string {
	mt, _, err := mime.ParseMediaType(s)
	if err != nil || !strings.Contains(mt, "/") || len(mt) > 100 {
		return ""
	}
	if strings.HasPrefix(mt, "message/") || strings.HasPrefix(mt, "multipart/") {
		// Cannot be sent base64-encoded (RFC 2046 5.1, 5.2.1).
		return "application/octet-stream"
	}
	return mt
}
