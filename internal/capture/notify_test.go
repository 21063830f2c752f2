package capture

import (
	"context"
	"errors"
	"strings"
	"testing"

	"sockmail/smtp"
)

// closed reports whether ch is closed, without waiting.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestNotifierOnStore: the notifier fires once a message is stored, before
// the client has the server's 250, and not for a message the store
// refused; each Notify makes a fresh channel.
func TestNotifierOnStore(t *testing.T) {
	tests := []struct {
		name    string
		saveErr error
		fired   bool
	}{
		{"stored", nil, true},
		{"store refused", errors.New("disk full"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := NewNotifier()
			s := start(t, Options{Notifier: n}, &memSaver{err: tt.saveErr})
			ch := n.Changed()
			if closed(ch) {
				t.Fatal("closed before any message")
			}
			_, err := smtp.SendMail(context.Background(), smtp.Config{Addr: s.Addr()},
				smtp.Envelope{From: "a@example.test", To: []string{"b@example.test"}}, strings.NewReader(testMessage), smtp.SendOptions{})
			if (err == nil) != tt.fired {
				t.Fatalf("send: %v", err)
			}
			if closed(ch) != tt.fired {
				t.Errorf("notified %v, want %v", closed(ch), tt.fired)
			}
			if tt.fired && closed(n.Changed()) {
				t.Error("the channel after a Notify is already closed")
			}
		})
	}
}
