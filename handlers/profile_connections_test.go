package handlers_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestProfileConnections: the profile form's connection limit for
// contact-form delivery is saved (1 for a server that limits
// connections), shown again on the edit page, emptied back to the
// default, and refused out of range beside its field.
func TestProfileConnections(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	form := profileValues(c.csrf("/profiles/new"), "limited", "smtp.example.test:587", "u", "a-secret")
	form.Set("connections", "1")
	c.saveProfile("/profiles", form)
	p := a.profileByName("limited")
	if p.MaxConnections != 1 {
		t.Fatalf("stored MaxConnections %d, want 1", p.MaxConnections)
	}
	edit := "/profiles/" + strconv.FormatInt(p.ID, 10)
	r := c.get(edit)
	if v, _ := r.testid(t, "input-connections").Attr("value"); v != "1" {
		t.Errorf("edit page shows connections %q, want 1", v)
	}
	for _, tc := range []struct {
		value  string
		status int
		want   int
	}{
		{"", http.StatusSeeOther, 0},
		{"0", http.StatusUnprocessableEntity, 0},
		{"65", http.StatusUnprocessableEntity, 0},
		{"8", http.StatusSeeOther, 8},
	} {
		form := profileValues(c.csrf(edit), "limited", "smtp.example.test:587", "u", "")
		form.Set("connections", tc.value)
		r := c.post(edit, form)
		if r.status != tc.status {
			t.Fatalf("connections %q: status %d, want %d", tc.value, r.status, tc.status)
		}
		if tc.status == http.StatusUnprocessableEntity {
			if got := r.testid(t, "error-connections").Text(); !strings.HasPrefix(got, "Connections:") {
				t.Errorf("connections %q: message %q", tc.value, got)
			}
			continue
		}
		if got := a.profileByName("limited").MaxConnections; got != tc.want {
			t.Errorf("connections %q: stored %d, want %d", tc.value, got, tc.want)
		}
	}
}
