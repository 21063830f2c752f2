package handlers

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"sockmail/internal/api"
	"sockmail/internal/store"
	"sockmail/internal/webform"
)

// apiSendBodyLimit bounds a POST /api/v1/sends body: the attachments'
// limit (MaxUpload) as base64 (4/3 of it) and room for the other fields.
func (h *Handler) apiSendBodyLimit() int64 { return h.maxUp/3*4 + 4 + smallBodyLimit }

// maxAPIAttachments bounds the number of attachments of one API send.
const maxAPIAttachments = 20

// apiSendRequest is the body of POST /api/v1/sends: the compose form's
// fields, as JSON.
type apiSendRequest struct {
	// Server is "builtin" (the capture server, the default), "adhoc"
	// (Host, Port, TLS... below) or empty when Profile names one.
	Server    string   `json:"server"`
	Profile   int64    `json:"profile"`
	Host      string   `json:"host"`
	Port      string   `json:"port"`
	TLS       string   `json:"tls"`
	Verify    *bool    `json:"verify"`
	AuthMech  string   `json:"auth_mech"`
	Username  string   `json:"username"`
	Password  string   `json:"password"`
	Helo      string   `json:"helo"`
	From      string   `json:"from"`
	To        []string `json:"to"`
	Cc        []string `json:"cc"`
	Bcc       []string `json:"bcc"`
	ReplyTo   string   `json:"reply_to"`
	Subject   string   `json:"subject"`
	Text      string   `json:"text"`
	HTML      string   `json:"html"`
	Headers   []string `json:"headers"`
	StopAfter string   `json:"stop_after"`
	// Attachments are files, their content base64.
	Attachments []struct {
		Name    string `json:"name"`
		Content string `json:"content"`
	} `json:"attachments"`
}

// decodeJSON reads one JSON value (what, for the problem's detail) from
// r into dst, refusing unknown fields and anything after it.
func decodeJSON(r io.Reader, dst any, what string) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return api.NewProblem("bad-json", "Bad JSON", http.StatusBadRequest, "The body is not "+what+": "+err.Error(), "")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return api.NewProblem("bad-json", "Bad JSON", http.StatusBadRequest, "The body holds more than one JSON value.", "")
	}
	return nil
}

// decodeJSONBody reads a request's JSON body (application/json, else a
// 415 problem) into dst.
func decodeJSONBody(c echo.Context, dst any, what string) error {
	if mt, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType)); mt != echo.MIMEApplicationJSON {
		return api.NewProblem("unsupported-media-type", "Unsupported media type", http.StatusUnsupportedMediaType, "Send the request as application/json.", "")
	}
	return decodeJSON(c.Request().Body, dst, what)
}

// apiStartSend starts a send as the compose page does (the same
// validation, the same send start) and answers 202 at once with its id
// and URLs. The send's source is "api:<token name>".
func (h *Handler) apiStartSend(c echo.Context) error {
	r := c.Request()
	mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	var req apiSendRequest
	var files []upload
	errs := map[string]string{}
	switch mt {
	case echo.MIMEApplicationJSON:
		if err := decodeJSON(r.Body, &req, "a send request"); err != nil {
			return err
		}
	case echo.MIMEMultipartForm:
		// The request as JSON in the "request" field, each file an
		// "attachments" part (read as the compose form reads its files).
		mr, err := r.MultipartReader()
		if err != nil {
			return api.NewProblem("bad-multipart", "Bad multipart body", http.StatusBadRequest, "The body cannot be read as multipart/form-data: "+err.Error(), "")
		}
		values, up, err := readComposeParts(mr, h.maxUp)
		if err != nil {
			return err
		}
		if up.truncated {
			return api.NewProblem("too-large", "Request body too large", http.StatusRequestEntityTooLarge,
				fmt.Sprintf("The body is larger than the limit of %d bytes.", h.apiSendBodyLimit()), "")
		}
		if err := decodeJSON(strings.NewReader(values.Get("request")), &req, "a send request"); err != nil {
			return err
		}
		if up.over {
			errs["attachments"] = fmt.Sprintf("The attachments are larger than the limit of %d bytes together.", h.maxUp)
		}
		files = up.files
	default:
		return api.NewProblem("unsupported-media-type", "Unsupported media type", http.StatusUnsupportedMediaType,
			"Send the request as application/json (attachments base64) or as multipart/form-data (the request as JSON in the \"request\" field, files as \"attachments\").", "")
	}
	f := webform.NewCompose()
	f.Text = ""
	f.ServerChoice = req.Server
	switch {
	case req.Profile > 0:
		f.ServerChoice = strconv.FormatInt(req.Profile, 10)
	case req.Server == "":
		f.ServerChoice = webform.ServerBuiltin
	}
	f.Host, f.Port, f.AuthMech, f.Username, f.Password, f.Helo = req.Host, req.Port, req.AuthMech, req.Username, req.Password, req.Helo
	if req.TLS != "" {
		f.TLS = req.TLS
	}
	if req.Verify != nil {
		f.Verify = *req.Verify
	}
	f.From, f.ReplyTo, f.Subject, f.Text, f.HTML, f.StopAfter = req.From, req.ReplyTo, req.Subject, req.Text, req.HTML, req.StopAfter
	f.To, f.Cc, f.Bcc = strings.Join(req.To, ", "), strings.Join(req.Cc, ", "), strings.Join(req.Bcc, ", ")
	f.Headers = strings.Join(req.Headers, "\n")
	maps.Copy(errs, f.Validate())
	if len(req.Attachments)+len(files) > maxAPIAttachments {
		errs["attachments"] = fmt.Sprintf("At most %d attachments.", maxAPIAttachments)
	}
	var total int64
	for _, u := range files {
		total += int64(len(u.data))
	}
	for i, a := range req.Attachments {
		data, err := base64.StdEncoding.DecodeString(a.Content)
		if err != nil || strings.TrimSpace(a.Name) == "" {
			errs["attachments"] = fmt.Sprintf("Attachment %d needs a name and base64 content.", i+1)
			break
		}
		total += int64(len(data))
		files = append(files, upload{name: a.Name, data: data})
	}
	if total > h.maxUp {
		errs["attachments"] = fmt.Sprintf("The attachments are larger than the limit of %d bytes together.", h.maxUp)
	}
	if len(errs) == 0 {
		job, err := h.prepareSend(c, f, files)
		var fe fieldError
		switch {
		case errors.As(err, &fe):
			errs[fe.field] = fe.msg
		case err != nil:
			return err
		default:
			tok, _ := c.Get(ctxToken).(*store.APIToken)
			if tok != nil {
				job.Send.Source = "api:" + tok.Name
			}
			id, err := h.start(c, job)
			if err != nil {
				return err
			}
			base := "/api/v1/sends/" + strconv.FormatInt(id, 10)
			c.Response().Header().Set(echo.HeaderLocation, base)
			return c.JSON(http.StatusAccepted, map[string]any{"id": id, "url": base, "events": base + "/events",
				"transcript": base + "/transcript", "page": "/sends/" + strconv.FormatInt(id, 10)})
		}
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(errs)) {
		parts = append(parts, k+": "+errs[k])
	}
	return api.NewProblem("invalid-send", "Invalid send request", http.StatusUnprocessableEntity, strings.Join(parts, " "), "")
}

// apiCancelSend aborts a send running in this process, as the result
// page's Cancel does, waits for its outcome to be stored and answers it:
// 200 with the send's status (aborted), or a 409 problem when the send
// has ended or runs on another instance.
func (h *Handler) apiCancelSend(c echo.Context) error {
	snd, ls, err := h.loadSend(c)
	if err != nil {
		return err
	}
	switch h.cancelRunning(c, snd, ls, "API token "+tokenName(c)) {
	case cancelElsewhere:
		return api.NewProblem("running-elsewhere", "The send runs elsewhere", http.StatusConflict,
			fmt.Sprintf("Send #%d runs on another sockmail instance and cannot be cancelled from this one; it ends at its time limit.", snd.ID), "")
	case cancelEnded:
		return api.NewProblem("not-running", "The send is not running", http.StatusConflict,
			fmt.Sprintf("Send #%d had already ended; there is nothing to cancel.", snd.ID), "")
	}
	if err := c.Request().Context().Err(); err != nil {
		return fmt.Errorf("handlers: api cancel send %d: %w", snd.ID, err)
	}
	h.log.Info("send cancelled", "send", snd.ID, "token", tokenName(c))
	after, _, err := h.readSend(c.Request().Context(), snd.ID)
	if err != nil {
		return fmt.Errorf("handlers: api cancel send %d: read back: %w", snd.ID, err)
	}
	url := "/api/v1/sends/" + strconv.FormatInt(snd.ID, 10)
	return c.JSON(http.StatusOK, map[string]any{"id": snd.ID, "status": after.Status, "url": url})
}
