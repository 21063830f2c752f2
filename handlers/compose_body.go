package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"sockmail/views"
)

// Limits of the compose form's body. The attachments have their own limit
// (Deps.MaxUpload, h.maxUp): the one number the form's hint, the
// browser's check and the server's error all state. The other fields
// share composeFieldsLimit (text and HTML bodies are 4 MiB each at most).
// Files beyond the attachment limit are read and dropped, not kept, so
// that the fields after them still arrive and the form can be shown again
// in full; composeDiscardFactor bounds how much is read that way.
const (
	composeFieldsLimit   = 10 << 20
	composeMaxParts      = 200
	composeDiscardFactor = 4
	ctxComposeUploads    = "sockmail.compose.uploads"
)

// composeUploads is what the compose form's file fields brought: the
// files, when they fit the limit, and what they came to.
type composeUploads struct {
	files []upload
	// total is the size of every file chosen, counted past the limit
	// (as far as the body was read).
	total int64
	// count is the number of files chosen.
	count int
	// over says the files add up to more than the attachment limit;
	// files is then empty.
	over bool
	// truncated says the body was larger than even the discard bound:
	// the fields after the files were not read.
	truncated bool
}

// composeBodyLimit is the most of a compose body that is read: the fields,
// and the files up to composeDiscardFactor times their limit.
func (h *Handler) composeBodyLimit() int64 {
	return composeFieldsLimit + composeDiscardFactor*h.maxUp
}

// readComposeForm reads the compose form's body as a stream before the
// CSRF check, which then finds the fields where it looks (the request's
// parsed form). Unlike ParseMultipartForm it does not give up on a body
// over the limit: files beyond the attachment limit are counted and
// dropped, every other field is kept, so that the handler can show the
// form again with what was typed and say what was too large. Nothing is
// written to disk.
func (h *Handler) readComposeForm(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method != http.MethodPost {
			return next(c)
		}
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt != "multipart/form-data" {
			// A form without files (a hand-made request: the page sends
			// multipart): its fields have their limit.
			r.Body = http.MaxBytesReader(c.Response(), r.Body, composeFieldsLimit)
			if err := r.ParseForm(); err != nil {
				if bodyCut(err) {
					return echo.NewHTTPError(http.StatusRequestEntityTooLarge,
						"The form's text fields add up to more than "+views.Bytes(composeFieldsLimit)+"; shorten the bodies.")
				}
				return echo.NewHTTPError(http.StatusBadRequest, "The form could not be read: "+err.Error()+".")
			}
			return next(c)
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, h.composeBodyLimit())
		mr, err := r.MultipartReader()
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "The form could not be read: "+err.Error()+".")
		}
		values, up, err := readComposeParts(mr, h.maxUp)
		if err != nil {
			return err
		}
		r.Form, r.PostForm = values, values
		r.MultipartForm = &multipart.Form{Value: values}
		c.Set(ctxComposeUploads, up)
		return next(c)
	}
}

// readComposeParts reads every part of a compose body: field values (at
// most composeFieldsLimit together) and files (kept while they add up to
// at most limit, counted and dropped after). A body cut by the
// http.MaxBytesReader ends the reading with what came so far.
func readComposeParts(mr *multipart.Reader, limit int64) (url.Values, *composeUploads, error) {
	values := url.Values{}
	up := &composeUploads{}
	var fieldBytes int64
	for n := 0; ; n++ {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return values, up, nil
		}
		if err != nil {
			if bodyCut(err) {
				up.truncated = true
				return values, up, nil
			}
			return nil, nil, echo.NewHTTPError(http.StatusBadRequest, "The form could not be read: "+err.Error()+".")
		}
		if n == composeMaxParts {
			return nil, nil, echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("The form has more than %d parts.", composeMaxParts))
		}
		name := p.FormName()
		if p.FileName() == "" && name != "attachments" {
			var b bytes.Buffer
			m, err := b.ReadFrom(io.LimitReader(p, composeFieldsLimit-fieldBytes+1))
			fieldBytes += m
			if fieldBytes > composeFieldsLimit {
				return nil, nil, echo.NewHTTPError(http.StatusRequestEntityTooLarge,
					"The form's text fields add up to more than "+views.Bytes(composeFieldsLimit)+"; shorten the bodies.")
			}
			if err != nil {
				if bodyCut(err) {
					up.truncated = true
					return values, up, nil
				}
				return nil, nil, echo.NewHTTPError(http.StatusBadRequest, "The form could not be read: "+err.Error()+".")
			}
			values.Add(name, b.String())
			continue
		}
		if err := up.read(p, limit); err != nil {
			if bodyCut(err) {
				up.truncated = true
				return values, up, nil
			}
			return nil, nil, echo.NewHTTPError(http.StatusBadRequest, "The form could not be read: "+err.Error()+".")
		}
	}
}

// read takes one file part: kept while the files fit the limit, counted
// and dropped once they do not.
func (u *composeUploads) read(p *multipart.Part, limit int64) error {
	if p.FileName() == "" {
		// The empty file input: nothing chosen.
		_, err := io.Copy(io.Discard, p)
		return err
	}
	u.count++
	if u.over || u.count > maxAttachments {
		n, err := io.Copy(io.Discard, p)
		u.total += n
		return err
	}
	var b bytes.Buffer
	n, err := b.ReadFrom(io.LimitReader(p, limit-u.total+1))
	u.total += n
	if err != nil {
		return err
	}
	if u.total > limit {
		u.over, u.files = true, nil
		m, err := io.Copy(io.Discard, p)
		u.total += m
		return err
	}
	u.files = append(u.files, upload{name: p.FileName(), data: b.Bytes()})
	return nil
}

// bodyCut reports whether err is the body limit ending the read.
func bodyCut(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
