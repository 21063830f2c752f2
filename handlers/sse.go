package handlers

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// ssePing is how often an idle event stream gets a comment line, so that
// a proxy does not take it for dead and close it.
const ssePing = 15 * time.Second

// eventStream is one server-sent event stream (text/event-stream, as the
// HTML standard defines it) to a browser: a send's transcript, the
// captured-mail list, a check's report.
type eventStream struct{ w *echo.Response }

// openEventStream answers c with the header of an event stream, at once,
// so the browser knows the stream is open before the first event.
func openEventStream(c echo.Context) eventStream {
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // no buffering in a proxy
	w.WriteHeader(http.StatusOK)
	w.Flush()
	return eventStream{w}
}

// send writes one event named event and flushes it. data may hold
// several lines: each goes on a "data:" line of its own, which the
// browser joins again with newlines. An error means the browser left.
func (s eventStream) send(event string, data []byte) error {
	var b strings.Builder
	b.WriteString("event: " + event + "\n")
	for _, line := range strings.Split(string(data), "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	if _, err := io.WriteString(s.w, b.String()); err != nil {
		return fmt.Errorf("handlers: write %s event: %w", event, err)
	}
	s.w.Flush()
	return nil
}

// ping writes a comment line (ignored by the browser) and flushes it.
func (s eventStream) ping() error {
	if _, err := io.WriteString(s.w, ": ping\n\n"); err != nil {
		return fmt.Errorf("handlers: write event-stream ping: %w", err)
	}
	s.w.Flush()
	return nil
}
