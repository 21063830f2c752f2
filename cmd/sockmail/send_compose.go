package main

// The message of "sockmail send": envelope addresses, a composed message
// or a raw one (--data), DKIM signing.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"slices"
	"strings"
	"time"

	"sockmail/smtp"
	"sockmail/smtp/message"
)

// addressList parses the values of an address flag: each one
// local@domain or an RFC 5322 mailbox with a display name ("Name
// <local@domain>"), or a comma-separated list of them, split by
// smtp/message's parser so that a comma inside a quoted name is not a
// separator. field is the header field the addresses go to, for the
// parser's checks. Errors name the flag and the value.
func addressList(flagName, field string, values []string) ([]*mail.Address, error) {
	var out []*mail.Address
	for _, v := range values {
		if err := checkLine("--"+flagName, v); err != nil {
			return nil, err
		}
		list, err := message.ParseAddressList(field, v)
		if err != nil {
			return nil, fmt.Errorf("--%s %q: want local@domain or \"Name <local@domain>\": %w", flagName, v, err)
		}
		out = append(out, list...)
	}
	return out, nil
}

// envelopeAddresses is addressList for the flags that also give the SMTP
// envelope: every address must be one the envelope can carry (smtp's own
// check); the display names stay for the header only.
func envelopeAddresses(flagName, field string, values []string) ([]*mail.Address, error) {
	list, err := addressList(flagName, field, values)
	if err != nil {
		return nil, err
	}
	for _, a := range list {
		if err := smtp.CheckAddress(a.Address); err != nil {
			return nil, fmt.Errorf("--%s: %w", flagName, err)
		}
	}
	return list, nil
}

// composer validates the message flags and returns the function that
// composes message i of the run. Files are checked now (attachments must
// exist, --data must be a valid message), so a bad file fails before
// anything is sent; they are read again, streaming, while sending.
func (f *sendFlags) composer() (func(int) (message.Content, error), error) {
	env, err := f.envelope()
	if err != nil {
		return nil, err
	}
	sign, err := f.signer(env.from)
	if err != nil {
		return nil, err
	}
	if f.data != "" {
		return f.rawComposer(env, sign)
	}
	return f.messageComposer(env, sign)
}

// envelopeFlags are the checked addresses of --from, --to, --cc and --bcc.
type envelopeFlags struct {
	from        *mail.Address
	to, cc, bcc []*mail.Address
}

// envelope checks the address flags.
func (f *sendFlags) envelope() (envelopeFlags, error) {
	var env envelopeFlags
	if f.from == "" {
		return env, errors.New("--from is required")
	}
	from, err := envelopeAddresses("from", "From", []string{f.from})
	if err != nil {
		return env, err
	}
	if len(from) != 1 {
		return env, fmt.Errorf("--from %q: want one address, got %d", f.from, len(from))
	}
	env.from = from[0]
	lists := []struct {
		name, field string
		in          []string
		out         *[]*mail.Address
	}{{"to", "To", f.to.values, &env.to}, {"cc", "Cc", f.cc.values, &env.cc}, {"bcc", "Bcc", f.bcc.values, &env.bcc}}
	for _, l := range lists {
		if *l.out, err = envelopeAddresses(l.name, l.field, l.in); err != nil {
			return env, err
		}
	}
	if len(env.to)+len(env.cc)+len(env.bcc) == 0 {
		return env, errors.New("no recipient: give --to, --cc or --bcc")
	}
	return env, nil
}

// recipients returns every envelope recipient: To, Cc, then Bcc.
func (e envelopeFlags) recipients() []string {
	var rcpts []string
	for _, l := range [][]*mail.Address{e.to, e.cc, e.bcc} {
		for _, a := range l {
			rcpts = append(rcpts, a.Address)
		}
	}
	return rcpts
}

// rawComposer returns the composer of --data: the file as it is, signed.
func (f *sendFlags) rawComposer(env envelopeFlags, sign signFunc) (func(int) (message.Content, error), error) {
	if f.composeFlagsSet() {
		return nil, errors.New("--data sends a complete message: it excludes --subject, --body, --body-file, --html, --html-file, --attach, --inline, --header and --reply-to")
	}
	raw, err := message.RawFile(env.from.Address, env.recipients(), f.data)
	if err != nil {
		return nil, fmt.Errorf("--data %s: %w", f.data, err)
	}
	return func(int) (message.Content, error) { return sign(raw) }, nil
}

// composeFlagsSet reports whether a flag that composes a message is given.
func (f *sendFlags) composeFlagsSet() bool {
	lists := len(f.attach.values) + len(f.inline.values) + len(f.headers.values) + len(f.replyTo.values)
	return slices.Contains([]bool{f.subjectSet, f.bodySet, f.bodyFile != "", f.htmlSet, f.htmlFile != "", lists > 0}, true)
}

// messageComposer returns the composer of a message built from the flags.
// With --count, each subject says which message of the run it is.
func (f *sendFlags) messageComposer(env envelopeFlags, sign signFunc) (func(int) (message.Content, error), error) {
	body, html, err := f.bodies()
	if err != nil {
		return nil, err
	}
	atts, inline, err := f.parts(html)
	if err != nil {
		return nil, err
	}
	fields, err := f.headerFields()
	if err != nil {
		return nil, err
	}
	replyTo, err := f.replyToList()
	if err != nil {
		return nil, err
	}
	subject := f.subject
	if !f.subjectSet {
		subject = "sockmail test " + time.Now().Format(time.RFC1123Z)
	}
	count := f.count
	// A small message with nothing to read from files and nothing to sign
	// is rendered once, when composed: its size and its bytes on the wire
	// then come from that one rendering instead of two (Size, then
	// WriteTo), which is most of the CPU a message of a --count run costs.
	renderable := len(atts)+len(inline) == 0 && f.dkimKey == "" && len(body)+len(html) <= maxRenderedBody
	compose := func(i int) (message.Content, error) {
		m := &message.Message{
			From: env.from, To: env.to, Cc: env.cc, Bcc: env.bcc, ReplyTo: replyTo,
			Subject: subject, Headers: fields, Text: body, HTML: html,
			Attachments: atts, Inline: inline,
		}
		if count > 1 {
			m.Subject = fmt.Sprintf("%s [%d/%d]", subject, i, count)
		}
		if renderable {
			return renderMessage(m)
		}
		if err := m.Prepare(); err != nil {
			return nil, err
		}
		return sign(m)
	}
	return compose, nil
}

// maxRenderedBody bounds the bodies of a message that is rendered into
// memory when composed: --count composes a batch of messages ahead, and
// each rendered one is held whole until it is sent.
const maxRenderedBody = 16 << 10

// rendered is a composed message held as the bytes WriteTo writes; the
// envelope methods are those of the message it was rendered from.
type rendered struct {
	message.Content
	data []byte
}

// renderMessage writes m (which prepares it first: Date, Message-ID, checks)
// into memory.
func renderMessage(m *message.Message) (*rendered, error) {
	var b bytes.Buffer
	if _, err := m.WriteTo(&b); err != nil {
		return nil, err
	}
	return &rendered{Content: m, data: b.Bytes()}, nil
}

// Size returns the exact size of the rendered message.
func (r *rendered) Size() (int64, error) { return int64(len(r.data)), nil }

// WriteTo writes the rendered message.
func (r *rendered) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(r.data)
	return int64(n), err
}

// bodies returns the plain-text and HTML bodies. Without a plain-text
// body, it is a one-line test text, or derived from the HTML if there is
// one.
func (f *sendFlags) bodies() (body, html string, err error) {
	if f.bodySet && f.bodyFile != "" {
		return "", "", errors.New("--body and --body-file exclude each other")
	}
	if f.htmlSet && f.htmlFile != "" {
		return "", "", errors.New("--html and --html-file exclude each other")
	}
	html = f.html
	if f.htmlFile != "" {
		data, err := readLimited(f.htmlFile, maxBodyFile)
		if err != nil {
			return "", "", fmt.Errorf("--html-file: %w", err)
		}
		html = string(data)
	}
	body = "This is a test message sent by sockmail.\n"
	if html != "" {
		body = "" // derived from the HTML unless given
	}
	if f.bodySet {
		body = f.body
	}
	if f.bodyFile != "" {
		data, err := readLimited(f.bodyFile, maxBodyFile)
		if err != nil {
			return "", "", fmt.Errorf("--body-file: %w", err)
		}
		body = string(data)
	}
	return body, html, nil
}

// parts returns the attachments and the inline parts, which need an
// HTML body to refer to them.
func (f *sendFlags) parts(html string) (atts, inline []*message.Attachment, err error) {
	for _, path := range f.attach.values {
		a, err := message.FileAttachment(path)
		if err != nil {
			return nil, nil, fmt.Errorf("--attach %s: %w", path, err)
		}
		atts = append(atts, a)
	}
	if len(f.inline.values) > 0 && html == "" {
		return nil, nil, errors.New("--inline needs an HTML body (--html or --html-file) to refer to it")
	}
	for _, path := range f.inline.values {
		a, err := message.FileAttachment(path)
		if err != nil {
			return nil, nil, fmt.Errorf("--inline %s: %w", path, err)
		}
		a.ContentID = a.Filename
		inline = append(inline, a)
	}
	return atts, inline, nil
}

// addressFlag returns the flag that sets the address header field name,
// which --header may not set, and whether name is one.
func addressFlag(name string) (string, bool) {
	switch n := strings.ToLower(strings.TrimSpace(name)); n {
	case "from", "to", "cc", "bcc", "reply-to":
		return n, true
	}
	return "", false
}

// headerFields returns the --header fields.
func (f *sendFlags) headerFields() ([]message.Field, error) {
	var fields []message.Field
	for _, h := range f.headers.values {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return nil, fmt.Errorf("--header %q: want \"Name: value\"", h)
		}
		if fl, ok := addressFlag(name); ok {
			return nil, fmt.Errorf("--header %q: use --%s, which takes \"Name <local@domain>\" and keeps the envelope in step", h, fl)
		}
		fields = append(fields, message.Field{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	}
	return fields, nil
}

// replyToList returns the --reply-to addresses.
func (f *sendFlags) replyToList() ([]*mail.Address, error) {
	return addressList("reply-to", "Reply-To", f.replyTo.values)
}

// signFunc signs a message as the --dkim-* flags ask.
type signFunc func(message.Content) (message.Content, error)

// signer returns the function that DKIM-signs a message as the --dkim-*
// flags ask, or returns it unchanged when they are not given.
func (f *sendFlags) signer(from *mail.Address) (signFunc, error) {
	if f.dkimKey == "" {
		if f.dkimSelector != "" || f.dkimDomain != "" {
			return nil, errors.New("--dkim-selector and --dkim-domain need --dkim-key")
		}
		return func(c message.Content) (message.Content, error) { return c, nil }, nil
	}
	if f.dkimSelector == "" {
		return nil, errors.New("--dkim-key needs --dkim-selector")
	}
	pem, err := readLimited(f.dkimKey, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--dkim-key: %w", err)
	}
	key, err := message.ParsePrivateKeyPEM(pem)
	if err != nil {
		return nil, fmt.Errorf("--dkim-key %s: %w", f.dkimKey, err)
	}
	domain := f.dkimDomain
	if domain == "" {
		domain = from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	}
	opts := message.DKIMOptions{Domain: domain, Selector: f.dkimSelector, Signer: key}
	return func(c message.Content) (message.Content, error) {
		s, err := message.SignDKIM(c, opts)
		if err != nil {
			return nil, err
		}
		return s, nil
	}, nil
}
