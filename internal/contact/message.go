package contact

import (
	"bytes"
	"fmt"
	"net/http"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"

	"sockmail/internal/safetext"
	"sockmail/internal/store"
	"sockmail/internal/webform"
	"sockmail/smtp/message"
)

// Building the message of a submission. Who receives it and who it is
// from come from the form's settings only. What the visitor typed goes
// into the text body, where no character can start a header; the only
// header fields it reaches are the Subject (through the template, made
// one line of plain text) and Reply-To (an address validated by
// smtp/message, with the "name" field as its display name).

// Subject limits, in characters.
const (
	subjectValueMax = 100
	subjectMax      = 200
	// defaultSubjectTemplate is used when a form has none.
	defaultSubjectTemplate = "Message from the {{_form}} form"
)

// placeholder matches "{{field}}" in a subject template. It is compiled at
// first use, not when the program starts: every start of the binary
// ("sockmail send" too) would pay for it.
var placeholder = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\{\{\s*([^{}\s]{1,64})\s*\}\}`) })

// OneLine makes s safe for a header: control characters (CR, LF, TAB,
// NUL...) become spaces, runs of spaces one space, bidirectional controls
// are shown escaped (safetext.Line: \u202e), and "=?" is broken up
// so that nothing in it reads as an RFC 2047 encoded-word; then it is cut
// to at most max characters.
func OneLine(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r) {
			return ' '
		}
		return r
	}, s)
	s = safetext.Line(strings.Join(strings.Fields(s), " "))
	s = strings.ReplaceAll(s, "=?", "= ?")
	if r := []rune(s); len(r) > max {
		s = strings.TrimSpace(string(r[:max-1])) + "\u2026"
	}
	return s
}

// subjectFor fills the form's subject template: {{_form}} is the form's
// name, {{field}} the first value of that field. The result is one line.
func subjectFor(f *store.Form, in *values) string {
	tmpl := f.SubjectTemplate
	if strings.TrimSpace(tmpl) == "" {
		tmpl = defaultSubjectTemplate
	}
	tmpl = OneLine(tmpl, subjectMax*2)
	s := placeholder().ReplaceAllStringFunc(tmpl, func(m string) string {
		name := placeholder().FindStringSubmatch(m)[1]
		if name == "_form" {
			return OneLine(f.Name, subjectValueMax)
		}
		return OneLine(in.value(name), subjectValueMax)
	})
	s = OneLine(s, subjectMax)
	if s == "" {
		s = OneLine(f.Name, subjectMax)
	}
	return s
}

// replyTo validates the visitor's address (the "email" field), returning
// nil when there is none and an error for a bad one. Only a bare address
// is taken; its display name is the "name" field, made one line.
func replyTo(in *values) (*mail.Address, *Problem) {
	v := strings.TrimSpace(in.value(FieldEmail))
	if v == "" {
		return nil, nil
	}
	bad := &Problem{Kind: InvalidField, Status: http.StatusUnprocessableEntity, Code: "invalid_email", Field: FieldEmail,
		Message: "Please check your email address: it does not look valid, so nobody could reply to you."}
	if len(v) > 254 || strings.ContainsAny(v, "<>,;\" ") {
		return nil, bad
	}
	a, err := message.ParseAddress("Reply-To", v)
	if err != nil || a.Address != v {
		return nil, bad
	}
	return &mail.Address{Name: OneLine(in.value(FieldName), subjectValueMax), Address: a.Address}, nil
}

// contactBody is the text of the message: facts about the submission, then
// every field. A single-line value follows its name; a longer one starts
// on the next line, indented, so no value can pass itself off as another
// field.
func contactBody(f *store.Form, in *values, sub *store.Submission, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "New message from the contact form %q.\n\n", OneLine(f.Name, 200))
	width := 0
	for _, fv := range in.fields {
		width = max(width, len([]rune(fv.Name)))
	}
	width = min(width, 20)
	for _, fv := range in.fields {
		name := safetext.Line(fv.Name)
		pad := strings.Repeat(" ", max(0, width-len([]rune(name))))
		v := safetext.Block(strings.TrimRight(fv.Value, " \t\n"))
		switch {
		case v == "":
			fmt.Fprintf(&b, "%s:%s (empty)\n", name, pad)
		case !strings.Contains(v, "\n"):
			fmt.Fprintf(&b, "%s:%s %s\n", name, pad, v)
		default:
			fmt.Fprintf(&b, "%s:\n", name)
			for line := range strings.SplitSeq(v, "\n") {
				b.WriteString("    " + line + "\n")
			}
		}
	}
	if len(in.files) > 0 {
		b.WriteString("\nAttached files:\n")
		for _, file := range in.files {
			fmt.Fprintf(&b, "    %s (%s)\n", safetext.FileName(file.Name), webform.Bytes(int64(len(file.Data))))
		}
	}
	b.WriteString("\n-- \n")
	fmt.Fprintf(&b, "Received %s from %s", now.UTC().Format("2006-01-02 15:04:05 UTC"), sub.ClientAddr)
	if sub.Origin != "" {
		fmt.Fprintf(&b, " on %s", OneLine(sub.Origin, 200))
	}
	b.WriteString(".\n")
	if sub.ReplyTo != "" {
		fmt.Fprintf(&b, "Replying answers the visitor at %s.\n", sub.ReplyTo)
	} else {
		b.WriteString("The visitor left no email address.\n")
	}
	b.WriteString("Sent by sockmail.\n")
	return b.String()
}

// compose builds the message of a submission and the outbox item
// that delivers it. The Message-ID and Date are fixed here, once, so that
// a retry sends the very same bytes and can be recognised.
func compose(f *store.Form, in *values, sub *store.Submission, rt *mail.Address, now time.Time) (*store.OutboxItem, error) {
	from := &mail.Address{Name: OneLine(f.FromName, subjectValueMax), Address: f.FromAddr}
	m := &message.Message{
		From:    from,
		Subject: subjectFor(f, in),
		Date:    now,
		Text:    contactBody(f, in, sub, now),
		Headers: []message.Field{{Name: "X-Sockmail-Form", Value: OneLine(f.Slug, 100)}},
	}
	for _, r := range f.Recipients {
		m.To = append(m.To, &mail.Address{Address: r})
	}
	if rt != nil {
		m.ReplyTo = []*mail.Address{rt}
	}
	for _, file := range in.files {
		// The name as the site owner's mail program shows it: an upload
		// named "invoice\u202efdp.exe" arrives as "invoice[U+202E]fdp.exe".
		a := message.BytesAttachment(safetext.FileName(file.Name), file.Data)
		if file.ContentType != "" {
			a.ContentType = file.ContentType
		}
		m.Attachments = append(m.Attachments, a)
	}
	if err := m.Prepare(); err != nil {
		return nil, fmt.Errorf("contact: compose contact message: %w", err)
	}
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("contact: compose contact message: %w", err)
	}
	formID := f.ID
	return &store.OutboxItem{
		CreatedAt:     now,
		FormID:        &formID,
		ProfileID:     f.ProfileID,
		MailFrom:      m.EnvelopeFrom(),
		Rcpts:         m.Recipients(),
		MessageID:     m.MessageID,
		Message:       buf.Bytes(),
		NextAttemptAt: now,
	}, nil
}
