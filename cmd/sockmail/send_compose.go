package main

// The message of "sockmail send": envelope addresses, a composed message
// or a raw one (--data), DKIM signing.

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"sockmail/smtp"
	"sockmail/smtp/message"
)

// envelopeAddress checks one address given on the command line: a plain
// local@domain, nothing the SMTP envelope cannot carry.
func envelopeAddress(flagName, s string) (*mail.Address, error) {
	if err := smtp.CheckAddress(s); err != nil {
		return nil, fmt.Errorf("--%s: %w", flagName, err)
	}
	a, err := message.ParseAddress(flagName, s)
	if err != nil {
		return nil, fmt.Errorf("--%s %q: %w", flagName, s, err)
	}
	return a, nil
}

func envelopeAddresses(flagName string, list []string) ([]*mail.Address, error) {
	var out []*mail.Address
	for _, s := range list {
		a, err := envelopeAddress(flagName, s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// composer validates the message flags and returns the function that
// composes message i of the run. Files are checked now (attachments must
// exist, --data must be a valid message), so a bad file fails before
// anything is sent; they are read again, streaming, while sending.
func (f *sendFlags) composer() (func(int) (message.Content, error), error) {
	if f.from == "" {
		return nil, errors.New("--from is required")
	}
	from, err := envelopeAddress("from", f.from)
	if err != nil {
		return nil, err
	}
	to, err := envelopeAddresses("to", f.to.values)
	if err != nil {
		return nil, err
	}
	cc, err := envelopeAddresses("cc", f.cc.values)
	if err != nil {
		return nil, err
	}
	bcc, err := envelopeAddresses("bcc", f.bcc.values)
	if err != nil {
		return nil, err
	}
	if len(to)+len(cc)+len(bcc) == 0 {
		return nil, errors.New("no recipient: give --to, --cc or --bcc")
	}
	sign, err := f.signer(from)
	if err != nil {
		return nil, err
	}
	if f.data != "" {
		if f.subjectSet || f.bodySet || f.bodyFile != "" || f.htmlSet || f.htmlFile != "" ||
			len(f.attach.values)+len(f.inline.values)+len(f.headers.values)+len(f.replyTo.values) > 0 {
			return nil, errors.New("--data sends a complete message: it excludes --subject, --body, --body-file, --html, --html-file, --attach, --inline, --header and --reply-to")
		}
		var rcpts []string
		for _, l := range [][]*mail.Address{to, cc, bcc} {
			for _, a := range l {
				rcpts = append(rcpts, a.Address)
			}
		}
		raw, err := message.RawFile(from.Address, rcpts, f.data)
		if err != nil {
			return nil, fmt.Errorf("--data %s: %w", f.data, err)
		}
		return func(int) (message.Content, error) { return sign(raw) }, nil
	}
	if f.bodySet && f.bodyFile != "" {
		return nil, errors.New("--body and --body-file exclude each other")
	}
	if f.htmlSet && f.htmlFile != "" {
		return nil, errors.New("--html and --html-file exclude each other")
	}
	html := f.html
	if f.htmlFile != "" {
		data, err := readLimited(f.htmlFile, maxBodyFile)
		if err != nil {
			return nil, fmt.Errorf("--html-file: %w", err)
		}
		html = string(data)
	}
	body := "This is a test message sent by sockmail.\n"
	if html != "" {
		body = "" // derived from the HTML unless given
	}
	if f.bodySet {
		body = f.body
	}
	if f.bodyFile != "" {
		data, err := readLimited(f.bodyFile, maxBodyFile)
		if err != nil {
			return nil, fmt.Errorf("--body-file: %w", err)
		}
		body = string(data)
	}
	var atts, inline []*message.Attachment
	for _, path := range f.attach.values {
		a, err := message.FileAttachment(path)
		if err != nil {
			return nil, fmt.Errorf("--attach %s: %w", path, err)
		}
		atts = append(atts, a)
	}
	if len(f.inline.values) > 0 && html == "" {
		return nil, errors.New("--inline needs an HTML body (--html or --html-file) to refer to it")
	}
	for _, path := range f.inline.values {
		a, err := message.FileAttachment(path)
		if err != nil {
			return nil, fmt.Errorf("--inline %s: %w", path, err)
		}
		a.ContentID = a.Filename
		inline = append(inline, a)
	}
	var fields []message.Field
	for _, h := range f.headers.values {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return nil, fmt.Errorf("--header %q: want \"Name: value\"", h)
		}
		fields = append(fields, message.Field{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	}
	var replyTo []*mail.Address
	for _, r := range f.replyTo.values {
		list, err := message.ParseAddressList("Reply-To", r)
		if err != nil {
			return nil, fmt.Errorf("--reply-to: %w", err)
		}
		replyTo = append(replyTo, list...)
	}
	subject := f.subject
	if !f.subjectSet {
		subject = "sockmail test " + time.Now().Format(time.RFC1123Z)
	}
	count := f.count
	compose := func(i int) (message.Content, error) {
		m := &message.Message{
			From: from, To: to, Cc: cc, Bcc: bcc, ReplyTo: replyTo,
			Subject: subject, Headers: fields, Text: body, HTML: html,
			Attachments: atts, Inline: inline,
		}
		if count > 1 {
			m.Subject = fmt.Sprintf("%s [%d/%d]", subject, i, count)
		}
		if err := m.Prepare(); err != nil {
			return nil, err
		}
		return sign(m)
	}
	return compose, nil
}

// signer returns the function that DKIM-signs a message as the --dkim-*
// flags ask, or returns it unchanged when they are not given.
func (f *sendFlags) signer(from *mail.Address) (func(message.Content) (message.Content, error), error) {
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
