package handlers

import (
	"strings"
	"testing"

	"sockmail/internal/mailread"
)

func TestReleaseInputValidate(t *testing.T) {
	tests := []struct {
		name      string
		in        releaseInput
		id        int64
		rcpts     string
		errFields string
	}{
		{"one per line", releaseInput{"3", "a@x.test\r\nb@x.test\n"}, 3, "a@x.test,b@x.test", ""},
		{"commas, semicolons, spaces, duplicates", releaseInput{" 7 ", "a@x.test, b@x.test;a@x.test  c@x.test"}, 7, "a@x.test,b@x.test,c@x.test", ""},
		{"no profile", releaseInput{"", "a@x.test"}, 0, "a@x.test", "profile"},
		{"negative profile", releaseInput{"-1", "a@x.test"}, -1, "a@x.test", "profile"},
		{"no recipient", releaseInput{"1", ""}, 1, "", "rcpts"},
		{"NUL", releaseInput{"1", "a\x00@x.test"}, 1, "", "rcpts"},
		{"field too long", releaseInput{"1", strings.Repeat("a", maxReleaseRcptsField+1)}, 1, "", "rcpts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, rcpts, errs := tt.in.Validate()
			var fields []string
			for _, f := range []string{"profile", "rcpts"} {
				if errs[f] != "" {
					fields = append(fields, f)
				}
			}
			if strings.Join(fields, ",") != tt.errFields || (tt.errFields == "" && (id != tt.id || strings.Join(rcpts, ",") != tt.rcpts)) {
				t.Errorf("Validate() = %d, %q, %v", id, rcpts, errs)
			}
		})
	}
}

func TestRewriteCIDs(t *testing.T) {
	parts := []mailread.Part{{Index: 0, ContentID: "a@x"}, {Index: 1}, {Index: 2, ContentID: "b c@x"}}
	tests := []struct {
		in, out string
		shown   string
	}{
		{`<img src="cid:a@x">`, `<img src="/captured/9/parts/0">`, "0"},
		{`<img src='CID:a@x'>`, `<img src='/captured/9/parts/0'>`, "0"},
		{`<td style="background:url(cid:b%20c@x)">`, `<td style="background:url(/captured/9/parts/2)">`, "2"},
		{`<img src="cid:nope@x"> cid:`, `<img src="cid:nope@x"> cid:`, ""},
		{`no references`, `no references`, ""},
	}
	for _, tt := range tests {
		got, shown := rewriteCIDs(tt.in, 9, parts)
		var idx []string
		for _, p := range parts {
			if shown[p.Index] {
				idx = append(idx, string(rune('0'+p.Index)))
			}
		}
		if got != tt.out || strings.Join(idx, ",") != tt.shown {
			t.Errorf("rewriteCIDs(%q) = %q, %v; want %q, %s", tt.in, got, shown, tt.out, tt.shown)
		}
	}
}
