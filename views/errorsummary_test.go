package views_test

import (
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"sockmail/internal/webform"
	"sockmail/views"
)

// TestErrorSummaryOrderAndFocus: the summary lists the form-wide problem,
// then every field's message top to bottom, each linking to a field that
// exists and says it is invalid; only the first field has autofocus.
func TestErrorSummaryOrderAndFocus(t *testing.T) {
	tests := []struct {
		name  string
		errs  webform.Errors
		links []string // in order
		focus string   // the one field with autofocus
	}{
		{"message fields", webform.Errors{"dsn_notify": "Notify: x.", "to": "To: x.", "attachments": "Attachments: x.", "from": "From: x."},
			[]string{"#f-from", "#f-to", "#f-attachments", "#f-dsn_notify"}, "f-from"},
		{"server before message", webform.Errors{"subject": "Subject: x.", "port": "Port: x.", "tls": "TLS mode: x.", "form": "The database cannot take writes."},
			[]string{"#f-port", "#f-tls", "#f-subject"}, "f-port"},
		{"a select first", webform.Errors{"stop_after": "Stop after: x.", "server": "Server: x."},
			[]string{"#f-server", "#f-stop_after"}, "f-server"},
		{"only the attachments", webform.Errors{"attachments": "Attachments: x."}, []string{"#f-attachments"}, "f-attachments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, d := get(t, views.ComposePage(page(), views.Compose{Form: webform.NewCompose(), Errors: tt.errs,
				BuiltinAddr: "127.0.0.1:1025", MaxUpload: 25 << 20, MaxFiles: 20}))
			var links []string
			byID(d, "summary-list").Find("a").Each(func(i int, a *goquery.Selection) {
				href, _ := a.Attr("href")
				links = append(links, href)
				name := strings.TrimPrefix(href, "#f-")
				if a.Text() != tt.errs[name] {
					t.Errorf("link %s reads %q, want %q", href, a.Text(), tt.errs[name])
				}
				field := d.Find(href)
				if inv, _ := field.Attr("aria-invalid"); field.Length() != 1 || inv != "true" {
					t.Errorf("link %s: %d fields, aria-invalid %q", href, field.Length(), inv)
				}
				if db, _ := field.Attr("aria-describedby"); !strings.Contains(db, "err-"+name) || d.Find("#err-"+name).Length() != 1 {
					t.Errorf("field %s: aria-describedby %q does not name its message", href, db)
				}
			})
			if strings.Join(links, " ") != strings.Join(tt.links, " ") {
				t.Errorf("summary links %v, want %v", links, tt.links)
			}
			if msg, ok := tt.errs["form"]; ok && byID(d, "form-error").Text() != msg {
				t.Errorf("form error %q", byID(d, "form-error").Text())
			}
			var focus []string
			d.Find("[autofocus]").Each(func(_ int, s *goquery.Selection) {
				id, _ := s.Attr("id")
				focus = append(focus, id)
			})
			if len(focus) != 1 || focus[0] != tt.focus {
				t.Errorf("autofocus on %v, want only %s", focus, tt.focus)
			}
		})
	}
}
