package handlers

import (
	"strings"
	"testing"

	"sockmail/internal/store"
	"sockmail/smtp"
)

// TestResultViewExplainsStoredFailure checks that the result and history
// pages explain a send from its stored failure fields, and a send stored
// before those fields from its error text.
func TestResultViewExplainsStoredFailure(t *testing.T) {
	refused := smtp.RecipientResult{Address: "b@x.test", Code: 550, EnhancedCode: "5.1.1", Message: "5.1.1 <b@x.test>: User unknown"}
	tests := []struct {
		name      string
		snd       store.Send
		wantTitle string // of the send's explanation
		wantRcpt  string // of the first recipient's, "" for none
	}{
		{"the fields decide, not the text",
			store.Send{Error: "smtp: connect: a text that says nothing", Failure: smtp.Failure{Phase: smtp.PhaseConnect, Kind: smtp.KindConnRefused}},
			"Connection refused", ""},
		{"an old row is explained from its text",
			store.Send{Error: "smtp: auth: 535 5.7.8 Error: authentication failed"},
			"bad credentials", ""},
		{"a refused recipient, and the send explained by it",
			store.Send{Recipients: []smtp.RecipientResult{refused}},
			"does not exist", "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.snd.Status = smtp.StatusPermFail
			r := resultView(&tt.snd, nil)
			if r.Explanation == nil || !strings.Contains(r.Explanation.Title, tt.wantTitle) {
				t.Errorf("explanation %+v, want title with %q", r.Explanation, tt.wantTitle)
			}
			if tt.wantRcpt == "" {
				return
			}
			if x := r.Recipients[0].Explanation; x == nil || !strings.Contains(x.Title, tt.wantRcpt) || x.Code != "550 5.1.1" {
				t.Errorf("recipient explanation %+v, want title with %q and code 550 5.1.1", x, tt.wantRcpt)
			}
		})
	}
}
