package smtp

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestEndNotSentIsNeverSent: when the attempt's time runs out between the
// BeforeEnd hook and the write of the end of the message (the outbox's
// end-of-message mark failing with the deadline, then the flush finding
// the context done), the message is reported not sent, a temporary
// failure that the outbox sends again. That report must stay true: the
// end, left in the client's buffer, may never reach the server later, not
// with a QUIT and not with the next message on a kept connection.
// (TestFaultSIGKILL found messages delivered twice this way: the buffered
// end went out with the next batch on the kept connection.)
func TestEndNotSentIsNeverSent(t *testing.T) {
	body := "Subject: hi\n\nhello\n"
	env := Envelope{From: "a@example.org", To: []string{"b@example.net"}}
	tests := []struct {
		name string
		send func(ctx context.Context, c *Client, hook func(context.Context) error) error
	}{
		{"Send on a kept connection", func(ctx context.Context, c *Client, hook func(context.Context) error) error {
			c.SetBeforeEnd(hook)
			_, err := c.Send(ctx, env, strings.NewReader(body))
			return err
		}},
		{"pipelined batch, first message", func(ctx context.Context, c *Client, hook func(context.Context) error) error {
			out, _ := c.SendBatch(ctx, []BatchMessage{
				{Envelope: env, Message: strings.NewReader(body), BeforeEnd: hook},
				{Envelope: env, Message: strings.NewReader(body)},
			}, false)
			return out[0].Err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The server takes everything it is given, and would take
			// the message if its end came.
			f := newFaker(ehloPipelining + strings.Repeat("250 Ok\n250 Ok\n354 go\n250 Ok: queued as X1\n", 3) + "221 Bye\n")
			cfg := fakeConfig(f)
			cfg.DisableChunking = true
			c, err := Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// The hook succeeds, but the attempt's time is up when it
			// returns (the worker sends anyway when only the mark failed).
			hook := func(context.Context) error { cancel(); return nil }
			err = tt.send(ctx, c, hook)
			var se *Error
			if err == nil || !errors.As(err, &se) || se.OutcomeUnknown {
				t.Fatalf("send with the time up before the end: %v; want a failure saying the message was not sent", err)
			}
			if c.Idle() {
				t.Errorf("the client is idle (reusable) after the end of a message was left unsent")
			}
			// Whatever comes next on this client must not carry the end.
			_ = c.Quit(context.Background())
			_, _ = c.Send(context.Background(), env, strings.NewReader(body))
			c.Close()
			wire := f.client()
			if ends := strings.Count(strings.ReplaceAll(wire, "|", ""), "\r\n.\r\n"); ends != 0 {
				t.Errorf("the server got %d end(s) of a message after the client reported it not sent (%v):\n%q", ends, err, wire)
			}
		})
	}
}
