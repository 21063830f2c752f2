package store

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// testForm returns a form with every field set.
func testForm(name string) *Form {
	return &Form{
		Name:             name,
		Recipients:       []string{"owner@example.org", "a&b@example.org"},
		ProfileID:        0,
		FromAddr:         "forms@example.org",
		FromName:         "Site Ünicode",
		AllowedOrigins:   []string{"https://www.example.org", "http://localhost:8000"},
		SuccessURL:       "https://www.example.org/thanks",
		ErrorURL:         "https://www.example.org/oops",
		SubjectTemplate:  "Contact from {{name}}",
		Fields:           []string{"name", "email", "message"},
		AllowUploads:     true,
		MaxUploadBytes:   5 << 20,
		MaxFieldBytes:    10000,
		CaptchaProvider:  CaptchaTurnstile,
		CaptchaSiteKey:   "0x4AAAAAAAB_site-key",
		CaptchaSecretEnc: []byte{1, 2, 3, 0, 255},
		RatePerAddr:      5,
		RatePerForm:      100,
		Enabled:          true,
	}
}

func TestForms(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		f := testForm("Contact")
		wantErr(t, "SaveForm insert", s.SaveForm(ctx, f), nil)
		if f.ID == 0 || f.CreatedAt.IsZero() || !f.UpdatedAt.Equal(f.CreatedAt) {
			t.Fatalf("after insert: %+v", f)
		}
		if !regexp.MustCompile(`^[a-z2-7]{24}$`).MatchString(f.Slug) {
			t.Errorf("generated slug %q: want 24 base32 characters", f.Slug)
		}
		got, err := s.Form(ctx, f.ID)
		wantErr(t, "Form", err, nil)
		if !reflect.DeepEqual(got, f) {
			t.Errorf("Form:\n got %+v\nwant %+v", got, f)
		}
		bySlug, err := s.FormBySlug(ctx, f.Slug)
		wantErr(t, "FormBySlug", err, nil)
		if !reflect.DeepEqual(bySlug, f) {
			t.Errorf("FormBySlug:\n got %+v\nwant %+v", bySlug, f)
		}

		// An update with an empty slug keeps it; lists become empty, the
		// secret goes away.
		slug := f.Slug
		f.Slug, f.Name, f.Recipients, f.AllowedOrigins, f.Fields, f.CaptchaSecretEnc = "", "Renamed", []string{"x@example.org"}, nil, nil, nil
		f.CaptchaSiteKey = "10000000-ffff-ffff-ffff-000000000001"
		f.Enabled, f.ProfileID = false, 42
		wantErr(t, "SaveForm update", s.SaveForm(ctx, f), nil)
		if f.Slug != slug {
			t.Errorf("update changed the slug to %q", f.Slug)
		}
		got, _ = s.Form(ctx, f.ID)
		if !reflect.DeepEqual(got, f) {
			t.Errorf("after update:\n got %+v\nwant %+v", got, f)
		}

		// Chosen slugs: valid, taken, malformed.
		g := testForm("Another")
		g.Slug = "my-form_1"
		wantErr(t, "SaveForm chosen slug", s.SaveForm(ctx, g), nil)
		dup := testForm("Dup")
		dup.Slug = "my-form_1"
		wantErr(t, "SaveForm taken slug", s.SaveForm(ctx, dup), ErrExists)
		f.Slug = "my-form_1"
		wantErr(t, "SaveForm update to a taken slug", s.SaveForm(ctx, f), ErrExists)
		for _, bad := range []string{"a b", "a/b", "x\x00", "ü", "a\r\nb", strings.Repeat("a", MaxSlugLength+1)} {
			h := testForm("Bad")
			h.Slug = bad
			wantErr(t, "SaveForm slug "+bad, s.SaveForm(ctx, h), ErrInvalidSlug)
			_, err := s.FormBySlug(ctx, bad)
			wantErr(t, "FormBySlug "+bad, err, ErrNotFound)
		}
		_, err = s.FormBySlug(ctx, "nosuchslug")
		wantErr(t, "FormBySlug missing", err, ErrNotFound)
		_, err = s.Form(ctx, 999999)
		wantErr(t, "Form missing", err, ErrNotFound)
		missing := testForm("Missing")
		missing.ID = 999999
		wantErr(t, "SaveForm update missing", s.SaveForm(ctx, missing), ErrNotFound)

		all, err := s.Forms(ctx)
		wantErr(t, "Forms", err, nil)
		if len(all) != 2 || all[0].Name != "Another" || all[1].Name != "Renamed" {
			t.Errorf("Forms = %+v", all)
		}
		wantErr(t, "DeleteForm", s.DeleteForm(ctx, g.ID), nil)
		wantErr(t, "DeleteForm again", s.DeleteForm(ctx, g.ID), ErrNotFound)
		_, err = s.Form(ctx, g.ID)
		wantErr(t, "Form deleted", err, ErrNotFound)
	})
}

func TestFormHostileText(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		for i, line := range hostileLines() {
			f := testForm(line)
			f.FromName, f.SubjectTemplate, f.SuccessURL = line, line, line
			f.Recipients, f.Fields, f.AllowedOrigins = []string{line}, []string{line, "x"}, []string{line}
			if err := s.SaveForm(ctx, f); err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			got, err := s.Form(ctx, f.ID)
			if err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			if !reflect.DeepEqual(got, f) {
				t.Errorf("line %d (%q) did not round-trip:\n got %+v\nwant %+v", i, line, got, f)
			}
		}
	})
}
