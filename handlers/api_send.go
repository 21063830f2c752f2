package handlers

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
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

// apiStartSend starts a send as the compose page does (the same
// validation, the same send start) and answers 202 at once with its id
// and URLs. The send's source is "api:<token name>".
func (h *Handler) apiStartSend(c echo.Context) error {
	r := c.Request()
	if ct := r.Header.Get(echo.HeaderContentType); !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return api.NewProblem("unsupported-media-type", "Unsupported media type", http.StatusUnsupportedMediaType, "Send the request as application/json.", "")
	}
	var req apiSendRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return api.NewProblem("bad-json", "Bad JSON", http.StatusBadRequest, "The body is not a send request: "+err.Error(), "")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return api.NewProblem("bad-json", "Bad JSON", http.StatusBadRequest, "The body holds more than one JSON value.", "")
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
	errs := f.Validate()
	if len(req.Attachments) > maxAPIAttachments {
		errs["attachments"] = fmt.Sprintf("At most %d attachments.", maxAPIAttachments)
	}
	var files []upload
	var total int64
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
