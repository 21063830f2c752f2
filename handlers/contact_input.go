package handlers

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"sockmail/internal/store"
	"sockmail/views"
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
	// contactMultipartMemory is what a multipart form keeps in memory
	// before spilling to temporary files.
	contactMultipartMemory = 1 << 20
	// Defaults for a form that does not set its own limits.
	defaultMaxFieldBytes  = 32 << 10
	defaultMaxUploadBytes = 5 << 20
)

// Meta fields: names starting with "_" are sockmail's own and never part
// of the message.
const (
	fieldToken    = "_token"  // the time-trap token
	fieldHoneypot = "_gotcha" // the honeypot: people leave it empty
	fieldEmail    = "email"   // the visitor's address: Reply-To only
	fieldName     = "name"    // the visitor's name: Reply-To display name
	fieldOrigin   = "_origin" // the site's origin, carried by the confirmation page
	// Files carried through the confirmation page, base64-encoded.
	fieldUploadName = "_upload_name"
	fieldUploadType = "_upload_type"
	fieldUploadData = "_upload_data"
)

// captchaFields are the fields captcha widgets add to a form.
var captchaFields = map[string]string{
	"turnstile": "cf-turnstile-response",
	"hcaptcha":  "h-captcha-response",
}

// contactError is a problem to report to the visitor: an HTTP status, a
// stable code for scripts, and a friendly sentence. It never holds
// internal details.
type contactError struct {
	status     int
	code       string
	msg        string
	field      string // the field at fault, if one is
	retryAfter int    // seconds, for 429 and 503
}

func (e *contactError) Error() string { return e.code + ": " + e.msg }

func cerr(status int, code, msg string) *contactError {
	return &contactError{status: status, code: code, msg: msg}
}

// errUnavailable is the answer when the database (or another dependency
// sockmail needs to keep the message) is down: never a fake success.
func errUnavailable() *contactError {
	return &contactError{status: http.StatusServiceUnavailable, code: "unavailable", retryAfter: 60,
		msg: "Sorry, this form cannot take messages right now, so your message was not sent. Please try again in a few minutes."}
}

// contactInput is what a visitor posted, parsed and bounded.
type contactInput struct {
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
	json   bool
}

// value returns the first value of the field name.
func (in *contactInput) value(name string) string {
	for _, f := range in.fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// formLimits returns a form's limits with defaults filled in.
func formLimits(f *store.Form) (field, upload int64) {
	field, upload = f.MaxFieldBytes, f.MaxUploadBytes
	if field <= 0 {
		field = defaultMaxFieldBytes
	}
	if upload <= 0 {
		upload = defaultMaxUploadBytes
	}
	if !f.AllowUploads {
		upload = 0
	}
	return field, upload
}

// contactBodyLimit is the largest request body the form accepts: all
// fields at their limit, plus the uploads base64-encoded (as the
// confirmation page carries them), plus room for the rest.
func contactBodyLimit(f *store.Form) int64 {
	field, upload := formLimits(f)
	fields := min(field*contactMaxValues, contactFieldsBudget)
	return fields + upload/3*4 + 4 + contactOverhead
}

// contactMaxBody bounds a request to any contact form, before the form is
// known: the largest contactBodyLimit a form may have.
func (h *Handler) contactMaxBody() int64 {
	return contactFieldsBudget + h.maxUp/3*4 + 4 + contactOverhead
}

// tooLarge is the 413 answer for a body over the limit.
func tooLarge(limit int64) *contactError {
	return cerr(http.StatusRequestEntityTooLarge, "too_large",
		"Your message is larger than this form accepts ("+views.Bytes(limit)+"). Please shorten it or attach smaller files.")
}

// readContactInput parses the request body: url-encoded, multipart or
// JSON. The body is already bounded by the caller.
func readContactInput(r *http.Request, f *store.Form) (*contactInput, *contactError) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var raw map[string][]string
	var files []*multipart.FileHeader
	in := &contactInput{}
	var mbe *http.MaxBytesError
	switch mt {
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			if errors.As(err, &mbe) {
				return nil, tooLarge(mbe.Limit)
			}
			return nil, cerr(http.StatusBadRequest, "bad_request", "The form could not be read. Please try again.")
		}
		raw = r.PostForm
	case "multipart/form-data":
		if err := r.ParseMultipartForm(contactMultipartMemory); err != nil {
			if errors.As(err, &mbe) {
				return nil, tooLarge(mbe.Limit)
			}
			return nil, cerr(http.StatusBadRequest, "bad_request", "The form could not be read. Please try again.")
		}
		raw = r.MultipartForm.Value
		for _, list := range r.MultipartForm.File {
			for _, fh := range list {
				if fh.Filename == "" && fh.Size == 0 {
					continue // an empty file input
				}
				files = append(files, fh)
			}
		}
	case "application/json":
		in.json = true
		var err *contactError
		if raw, err = readJSONFields(r.Body); err != nil {
			return nil, err
		}
	default:
		return nil, cerr(http.StatusUnsupportedMediaType, "unsupported_type",
			"This form accepts url-encoded, multipart or JSON bodies.")
	}
	if err := in.take(raw, f); err != nil {
		return nil, err
	}
	if err := in.takeFiles(files, raw, f); err != nil {
		return nil, err
	}
	return in, nil
}

// readJSONFields reads a JSON object whose values are strings, numbers,
// booleans, null (skipped) or arrays of those.
func readJSONFields(body io.Reader) (map[string][]string, *contactError) {
	bad := cerr(http.StatusBadRequest, "bad_request", "The message must be a JSON object of text fields.")
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(body)
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(mbe.Limit)
		}
		return nil, bad
	}
	out := make(map[string][]string, len(obj))
	for k, rv := range obj {
		var v any
		d := json.NewDecoder(strings.NewReader(string(rv)))
		d.UseNumber()
		if d.Decode(&v) != nil {
			return nil, bad
		}
		items := []any{v}
		if list, ok := v.([]any); ok {
			items = list
		}
		for _, it := range items {
			switch x := it.(type) {
			case nil:
			case string:
				out[k] = append(out[k], x)
			case json.Number:
				out[k] = append(out[k], x.String())
			case bool:
				out[k] = append(out[k], strconv.FormatBool(x))
			default:
				return nil, bad
			}
		}
	}
	return out, nil
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
func (in *contactInput) take(raw map[string][]string, f *store.Form) *contactError {
	fieldLimit, _ := formLimits(f)
	first := func(name string) string {
		if v := raw[name]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	in.token = strings.TrimSpace(first(fieldToken))
	in.honeypot = first(fieldHoneypot)
	in.origin = first(fieldOrigin)
	if name := captchaFields[f.CaptchaProvider]; name != "" {
		in.captcha = strings.TrimSpace(first(name))
		if len(in.captcha) > 4096 {
			return cerr(http.StatusRequestEntityTooLarge, "too_large", "The captcha answer is too long.")
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
				return cerr(http.StatusRequestEntityTooLarge, "too_many_fields",
					"The form has more than "+strconv.Itoa(contactMaxValues)+" fields; this is more than it accepts.")
			}
			if int64(len(v)) > fieldLimit {
				return &contactError{status: http.StatusRequestEntityTooLarge, code: "field_too_large", field: name,
					msg: "The field \u201c" + name + "\u201d is too long: at most " + views.Bytes(fieldLimit) + " please."}
			}
			total += int64(len(v))
			if total > contactFieldsBudget {
				return tooLarge(contactFieldsBudget)
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

// takeFiles reads uploaded files and files carried base64-encoded by the
// confirmation page, within the form's limits.
func (in *contactInput) takeFiles(uploads []*multipart.FileHeader, raw map[string][]string, f *store.Form) *contactError {
	_, limit := formLimits(f)
	carried := raw[fieldUploadData]
	if len(uploads) == 0 && len(carried) == 0 {
		return nil
	}
	if !f.AllowUploads {
		return cerr(http.StatusBadRequest, "files_not_allowed", "This form does not accept files. Please send your message without attachments.")
	}
	if len(uploads)+len(carried) > contactMaxFiles {
		return cerr(http.StatusRequestEntityTooLarge, "too_many_files",
			"Please attach at most "+strconv.Itoa(contactMaxFiles)+" files.")
	}
	var total int64
	tooBig := func() *contactError {
		return cerr(http.StatusRequestEntityTooLarge, "files_too_large",
			"The attached files are too large: at most "+views.Bytes(limit)+" in all, please.")
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
			return cerr(http.StatusBadRequest, "bad_request", "An attached file could not be read. Please try again.")
		}
		data, err := io.ReadAll(io.LimitReader(rc, limit+1))
		rc.Close()
		if err != nil {
			return cerr(http.StatusBadRequest, "bad_request", "An attached file could not be read. Please try again.")
		}
		add(fh.Filename, fh.Header.Get("Content-Type"), data)
	}
	names, types := raw[fieldUploadName], raw[fieldUploadType]
	for i, enc := range carried {
		if int64(base64.StdEncoding.DecodedLen(len(enc)))+total > limit+2 {
			return tooBig()
		}
		data, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return cerr(http.StatusBadRequest, "bad_request", "An attached file could not be read. Please attach it again.")
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
