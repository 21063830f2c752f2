package smtp

import (
	"context"
	"strings"
	"testing"
)

// TestDiscardTranscript: a send recorded into a discarding transcript puts
// the same bytes on the wire and gives the same result as one recorded in
// full; the discarding transcript keeps no event, yet a subscriber still
// sees every event the full transcript kept.
func TestDiscardTranscript(t *testing.T) {
	server := ehloPipelining + "250 2.1.0 Ok\n250 2.1.5 Ok\n354 go\n250 2.0.0 Ok: queued as 4AbC12\n221 2.0.0 Bye\n"
	chunking := ehloFull + "250 2.1.0 Ok\n250 2.1.5 Ok\n250 2.0.0 Ok: queued as 4AbC12\n221 2.0.0 Bye\n"
	env := Envelope{From: "a@example.org", To: []string{"b@example.net"}}
	body := "Subject: hi\nFrom: a@example.org\n\nhello\n.dot\n"
	tests := []struct {
		name      string
		server    string
		subscribe bool
	}{
		{"DATA, nobody listens", server, false},
		{"DATA, a subscriber", server, true},
		{"BDAT, nobody listens", chunking, false},
		{"BDAT, a subscriber", chunking, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send := func(tr *Transcript) (string, *Result) {
				f := newFaker(tt.server)
				cfg := fakeConfig(f)
				cfg.Transcript = tr
				res, err := SendMail(context.Background(), cfg, env, strings.NewReader(body), SendOptions{})
				if err != nil {
					t.Fatalf("SendMail: %v", err)
				}
				return f.client(), res
			}
			full := NewTranscript()
			wantWire, wantRes := send(full)
			discard := NewDiscardTranscript()
			var seen []Event
			if tt.subscribe {
				discard.Subscribe(func(ev Event) { seen = append(seen, ev) })
			}
			gotWire, gotRes := send(discard)
			if gotWire != wantWire {
				t.Errorf("wire %q, want %q", gotWire, wantWire)
			}
			if StatusOf(gotRes, nil) != StatusOf(wantRes, nil) || gotRes.QueueID != wantRes.QueueID || gotRes.QueueID == "" {
				t.Errorf("result %v %q, want %v %q", StatusOf(gotRes, nil), gotRes.QueueID, StatusOf(wantRes, nil), wantRes.QueueID)
			}
			if n := len(discard.Events()); n != 0 {
				t.Errorf("discarding transcript kept %d events", n)
			}
			if !tt.subscribe {
				return
			}
			// The lines on the wire, in order; information lines carry
			// times and sizes that differ from run to run.
			wireLines := func(evs []Event) string {
				var lines []string
				for _, ev := range evs {
					if ev.Dir != DirInfo {
						lines = append(lines, string(ev.Dir)+" "+ev.Line)
					}
				}
				return strings.Join(lines, "\n")
			}
			if got, want := wireLines(seen), wireLines(full.Events()); got != want {
				t.Errorf("subscriber saw\n%s\nwant\n%s", got, want)
			}
		})
	}
}
