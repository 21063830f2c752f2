package api

// ProblemType is the base of the problem types sockmail answers with;
// each type is this followed by a short name ("unauthorized").
const ProblemType = "https://sockmail.invalid/problems/"

// ContentTypeProblem is the media type of problem details (RFC 9457).
const ContentTypeProblem = "application/problem+json"

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// NewProblem returns the problem of the given kind ("unauthorized"),
// title, HTTP status and detail, about the request path instance.
func NewProblem(kind, title string, status int, detail, instance string) *Problem {
	return &Problem{Type: ProblemType + kind, Title: title, Status: status, Detail: detail, Instance: instance}
}

// Error makes a *Problem an error, so that handlers can return it.
func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Title + ": " + p.Detail
	}
	return p.Title
}
