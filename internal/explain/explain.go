// Package explain says in plain language what a failed send means and what
// to try, from the failure as data (smtp.Failure: phase, reply code, RFC
// 3463 enhanced code, kind). It is an ordered table of rules over those
// fields (see rules.go); the first rule that matches explains. Reply codes
// follow RFC 5321 section 4.2, enhanced codes RFC 3463.
//
// Sends stored before failures were kept as data have only their error
// text; Send reads those with the legacy parser in legacy.go.
package explain

import (
	"strconv"
	"strings"

	"sockmail/smtp"
)

// Explanation is a failure explained. It has the fields of
// views.Explanation, in the same order, so that handlers convert a
// *Explanation to a *views.Explanation directly.
type Explanation struct {
	// Title says what happened in a few words.
	Title string
	// Detail explains it.
	Detail string
	// Try lists what to do about it.
	Try []string
	// Code is the reply and enhanced code explained, like "535 5.7.8".
	Code string
}

// Input is what the rules look at: the failure and its text, the
// server's reply text or the error message without its "smtp: phase:"
// prefix. Rules match on the text only where a server's text is the only
// signal; otherwise it is only quoted.
type Input struct {
	smtp.Failure
	Text string
}

// Explain explains in: the explanation of the first rule that matches,
// with in's codes, or nil when in is no failure.
func Explain(in Input) *Explanation {
	r, ok := match(in)
	if !ok {
		return nil
	}
	x := r.say(in)
	if in.Code != 0 {
		x.Code = strings.TrimSpace(strconv.Itoa(in.Code) + " " + in.EnhancedCode)
	}
	return &x
}

// Send explains a send's failure from its stored fields: f, and errText,
// the text of its error. A send stored before failures were kept has a
// zero f and only errText, which is parsed as the old error text. It
// returns nil for a send without a failure.
func Send(f smtp.Failure, errText string) *Explanation {
	if f.Kind == smtp.KindNone {
		if errText == "" {
			return nil
		}
		f, errText = legacyFailure(errText)
		return Explain(Input{Failure: f, Text: errText})
	}
	return Explain(Input{Failure: f, Text: messageOf(f, errText)})
}

// Recipient explains the refusal of one recipient, or returns nil for a
// recipient that was accepted or got no reply.
func Recipient(rc smtp.RecipientResult) *Explanation {
	if rc.Accepted {
		return nil
	}
	return Explain(Input{Failure: smtp.RecipientFailure(rc), Text: rc.Message})
}

// messageOf is the message of an smtp.Error text: errText without the
// "smtp: PHASE: CODE ENHANCED " that smtp.Error.Error() puts before it,
// cut by the stored fields (no parsing). Other texts come back whole.
func messageOf(f smtp.Failure, errText string) string {
	rest, ok := strings.CutPrefix(errText, "smtp: "+string(f.Phase)+": ")
	if !ok {
		return errText
	}
	if f.Code != 0 {
		rest = strings.TrimPrefix(rest, strconv.Itoa(f.Code)+" ")
		if f.EnhancedCode != "" {
			rest = strings.TrimPrefix(rest, f.EnhancedCode+" ")
		}
	}
	return rest
}
