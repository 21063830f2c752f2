package views

// ProfileList is the server profiles page.
type ProfileList struct {
	Rows []ProfileRow
	// Refused, when not nil, says why a profile was not deleted.
	Refused *ProfileRefusal
}

// ProfileRefusal says why a profile was not deleted: what still delivers
// through it.
type ProfileRefusal struct {
	// Name is the profile's name.
	Name string
	// Forms are the contact forms configured with the profile.
	Forms []FormLink
	// Waiting counts the outbox messages still to be delivered through it.
	Waiting int
}

// FormLink names a contact form and links to its settings.
type FormLink struct {
	ID   int64
	Name string
}
