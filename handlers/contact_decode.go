package handlers

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"sockmail/internal/contact"
)

// contactBody is a decoded post to a contact form.
type contactBody struct {
	values  map[string][]string
	uploads []contact.Upload
	// json is set when the body was JSON (a script: it gets JSON
	// answers, never the confirmation page).
	json bool
}

// readContactBody decodes the request body: url-encoded, multipart or
// JSON. The body is already bounded by the caller.
func readContactBody(r *http.Request) (*contactBody, *contact.Problem) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	unreadable := func(err error) *contact.Problem {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return contact.ErrTooLarge(mbe.Limit)
		}
		return contact.ErrBadRequest("The form could not be read. Please try again.")
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return nil, unreadable(err)
		}
		return &contactBody{values: r.PostForm}, nil
	case "multipart/form-data":
		if err := r.ParseMultipartForm(contact.MultipartMemory); err != nil {
			return nil, unreadable(err)
		}
		return &contactBody{values: r.MultipartForm.Value, uploads: uploadsOf(r.MultipartForm)}, nil
	case "application/json":
		raw, p := readJSONFields(r.Body)
		if p != nil {
			return nil, p
		}
		return &contactBody{values: raw, json: true}, nil
	}
	return nil, contact.ErrUnsupportedType()
}

// uploadsOf lists a multipart form's files, skipping empty file inputs.
func uploadsOf(mf *multipart.Form) []contact.Upload {
	var out []contact.Upload
	for _, list := range mf.File {
		for _, fh := range list {
			if fh.Filename == "" && fh.Size == 0 {
				continue // an empty file input
			}
			out = append(out, contact.Upload{Name: fh.Filename, ContentType: fh.Header.Get("Content-Type"), Size: fh.Size,
				Open: func() (io.ReadCloser, error) { return fh.Open() }})
		}
	}
	return out
}

// readJSONFields reads a JSON object whose values are strings, numbers,
// booleans, null (skipped) or arrays of those.
func readJSONFields(body io.Reader) (map[string][]string, *contact.Problem) {
	bad := contact.ErrBadRequest("The message must be a JSON object of text fields.")
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(body)
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, contact.ErrTooLarge(mbe.Limit)
		}
		return nil, bad
	}
	out := make(map[string][]string, len(obj))
	for k, rv := range obj {
		vals, ok := jsonStrings(rv)
		if !ok {
			return nil, bad
		}
		if len(vals) > 0 {
			out[k] = append(out[k], vals...)
		}
	}
	return out, nil
}

// jsonStrings turns a JSON value (a scalar or an array of scalars) into
// strings; nulls give nothing.
func jsonStrings(rv json.RawMessage) ([]string, bool) {
	var v any
	d := json.NewDecoder(strings.NewReader(string(rv)))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return nil, false
	}
	items := []any{v}
	if list, ok := v.([]any); ok {
		items = list
	}
	var out []string
	for _, it := range items {
		switch x := it.(type) {
		case nil:
		case string:
			out = append(out, x)
		case json.Number:
			out = append(out, x.String())
		case bool:
			out = append(out, strconv.FormatBool(x))
		default:
			return nil, false
		}
	}
	return out, true
}
