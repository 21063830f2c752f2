package views

import "time"

// CheckForm is the form that starts a check.
type CheckForm struct {
	Target      string
	Port        string
	ImplicitTLS bool
	// From, IP and DKIMSelector are the sender-side fields; RelayTest the
	// open relay test switch.
	From, IP, DKIMSelector string
	RelayTest              bool
	// SendTo, SendFrom and Profile ask for a real test message; Profiles
	// are the saved profiles to choose from (Value "" sends through the
	// checked server).
	SendTo, SendFrom, Profile string
	Profiles                  []Option
	Errors                    map[string]string
}

// CheckRow is one check in a list.
type CheckRow struct {
	ID      int64
	Target  string
	Options string
	Started time.Time
	Running bool
	// Worst is the worst status of a finished check.
	Worst string
}

// CheckList is the Check page: the form and the checks run, newest first.
type CheckList struct {
	Form CheckForm
	Rows []CheckRow
	// Next is the cursor of the next page (older checks); 0 when none.
	Next int64
}

// CheckFinding is one finding on the report page.
type CheckFinding struct {
	ID, Status, Addr, Message, Fix string
	// SendID is the send keeping the SMTP conversation the finding comes
	// from, 0 when none.
	SendID int64
}

// CheckGroup is the findings about one host ("" for the domain's DNS).
type CheckGroup struct {
	Host     string
	Findings []CheckFinding
}

// CheckSuggestion is a working profile derived from a server check.
type CheckSuggestion struct {
	Host     string
	Port     int
	TLSMode  string
	AuthMech string
}

// CheckReport is a check's report page, while it runs or when done.
type CheckReport struct {
	CheckRow
	Took      string
	Resolver  string
	Hosts     []string
	Groups    []CheckGroup
	Lookups   []string
	Suggested *CheckSuggestion
	// Others are the other checks of the same target, to compare with.
	Others []CheckRow
}

// CheckChange is one finding that differs between two checks.
type CheckChange struct {
	Host, Addr, ID, Old, New, Message string
}

// CheckCompare compares two checks of one target.
type CheckCompare struct {
	A, B                    CheckRow
	Added, Removed, Changed []CheckChange
}

// boolText is "true" or "false", for data attributes.
func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
