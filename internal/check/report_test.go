package check

import (
	"errors"
	"fmt"
	"testing"

	"sockmail/smtp"
)

// TestConversationStatus checks that a failed conversation keeps the
// send status its error amounts to, which the history shows: a refusal
// is permanent, a 4xx temporary.
func TestConversationStatus(t *testing.T) {
	tests := []struct {
		err  error
		want smtp.Status
	}{
		{&smtp.Error{Phase: smtp.PhaseRcpt, Code: 550, Message: "no such user"}, smtp.StatusPermFail},
		{fmt.Errorf("test message: %w", &smtp.Error{Phase: smtp.PhaseMail, Code: 451, Message: "try later"}), smtp.StatusTempFail},
		{errors.New("TLS 1.0 refused"), smtp.StatusPermFail},
	}
	for _, tt := range tests {
		r := &Report{}
		c := &Conversation{}
		r.setConversationErr(c, tt.err)
		if c.Status != tt.want || c.Err != tt.err.Error() {
			t.Errorf("%v: status %q, error %q; want %q", tt.err, c.Status, c.Err, tt.want)
		}
	}
	c := &Conversation{}
	(&Report{}).setConversationErr(c, nil)
	if c.Status != "" || c.Err != "" {
		t.Errorf("no error: %+v", c)
	}
}
