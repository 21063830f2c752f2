package handlers

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestEventStream checks the wire form of events: the header, one
// "data:" line per line of data (the browser joins them with newlines),
// the blank line that ends an event, and the ping comment.
func TestEventStream(t *testing.T) {
	tests := []struct {
		name  string
		write func(s eventStream) error
		want  string
	}{
		{"one line", func(s eventStream) error { return s.send("done", []byte("{}")) }, "event: done\ndata: {}\n\n"},
		{"several lines", func(s eventStream) error { return s.send("report", []byte("<p>a</p>\n<p>b</p>")) },
			"event: report\ndata: <p>a</p>\ndata: <p>b</p>\n\n"},
		{"empty data", func(s eventStream) error { return s.send("x", nil) }, "event: x\ndata: \n\n"},
		{"ping", func(s eventStream) error { return s.ping() }, ": ping\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/", nil), rec)
			s := openEventStream(c)
			if err := tt.write(s); err != nil {
				t.Fatal(err)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "text/event-stream" || rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("header %v", rec.Header())
			}
			if !rec.Flushed {
				t.Error("not flushed")
			}
			if got := rec.Body.String(); got != tt.want {
				t.Errorf("wrote %q, want %q", got, tt.want)
			}
		})
	}
}
