package views

import "encoding/base64"

// ContactPage is what the public contact pages' layout needs. They are
// shown to a site's visitors: no navigation, no session.
type ContactPage struct {
	Title string
	// FormName is the contact form's name, "" when unknown.
	FormName string
}

// ContactField is one field of a submission.
type ContactField struct {
	Name, Value string
}

// ContactFile is a file carried through the confirmation page.
type ContactFile struct {
	Name        string
	ContentType string
	Data        []byte
}

// Base64 is the file's content for a hidden field.
func (f ContactFile) Base64() string { return base64.StdEncoding.EncodeToString(f.Data) }

// ContactConfirm is the confirmation page a plain (no JavaScript) form
// gets: the message in hidden fields, a fresh time-trap token and a Send
// button.
type ContactConfirm struct {
	// Action is the endpoint path the page posts to.
	Action   string
	FormName string
	// Origin is the site the visitor came from, carried as _origin.
	Origin string
	Token  string
	// Notice explains why the page is shown again, if it is.
	Notice string
	Fields []ContactField
	Files  []ContactFile
	// Captcha is the captcha widget's answer, carried as is.
	Captcha ContactField
	// EditEmail shows the email address as an input to correct, with
	// EmailError.
	EditEmail  bool
	Email      string
	EmailError string
}
