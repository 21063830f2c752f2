package message

import (
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// HTMLToText derives the text/plain alternative of an HTML body: tags are
// removed, entities decoded, white space collapsed as a browser would
// (except in <pre>), paragraphs and other blocks separated by a blank line,
// <br> and table rows by a line break, list items prefixed by "* ", images
// replaced by their alt text, and links written as "text (url)" unless the
// text already is the URL. <head>, <script>, <style>, <template> and
// <noscript> content is dropped.
func HTMLToText(s string) string {
	var t textWriter
	z := html.NewTokenizer(strings.NewReader(s))
	skip, pre := 0, 0
	type link struct {
		href  string
		start int
	}
	var links []link
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return t.String()
		case html.TextToken:
			if skip == 0 {
				t.text(string(z.Text()), pre > 0)
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, hasAttr := z.TagName()
			a := atom.Lookup(name)
			attrs := map[string]string{}
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				attrs[string(k)] = string(v)
			}
			if tt == html.EndTagToken {
				switch a {
				case atom.Head, atom.Script, atom.Style, atom.Template, atom.Noscript, atom.Title:
					skip = max(skip-1, 0)
				case atom.Pre:
					pre = max(pre-1, 0)
					t.breakLines(2)
				case atom.A:
					if len(links) > 0 {
						l := links[len(links)-1]
						links = links[:len(links)-1]
						text := strings.TrimSpace(t.b.String()[min(l.start, t.b.Len()):])
						if showHref(l.href, text) {
							t.text(" ("+l.href+")", false)
						}
					}
				case atom.Tr, atom.Li, atom.Dt, atom.Dd:
					t.breakLines(1)
				default:
					if block(a) {
						t.breakLines(2)
					}
				}
				continue
			}
			if skip > 0 {
				continue
			}
			switch a {
			case atom.Head, atom.Script, atom.Style, atom.Template, atom.Noscript, atom.Title:
				if tt == html.StartTagToken {
					skip++
				}
			case atom.Br:
				t.newline()
			case atom.Hr:
				t.breakLines(2)
				t.text("---", true)
				t.breakLines(2)
			case atom.Pre:
				t.breakLines(2)
				if tt == html.StartTagToken {
					pre++
				}
			case atom.Li:
				t.breakLines(1)
				t.text("* ", true)
			case atom.Tr, atom.Dt, atom.Dd:
				t.breakLines(1)
			case atom.Td, atom.Th:
				t.space()
			case atom.Img:
				if alt := strings.TrimSpace(attrs["alt"]); alt != "" {
					t.text(alt, false)
				}
			case atom.A:
				if tt == html.StartTagToken {
					t.flushSpace()
					links = append(links, link{href: strings.TrimSpace(attrs["href"]), start: t.b.Len()})
				}
			default:
				if block(a) {
					t.breakLines(2)
				}
			}
		}
	}
}

// showHref reports whether a link target adds anything to its text.
func showHref(href, text string) bool {
	lower := strings.ToLower(href)
	switch {
	case href == "", strings.HasPrefix(href, "#"), strings.HasPrefix(lower, "javascript:"):
		return false
	case href == text, strings.TrimPrefix(lower, "mailto:") == strings.ToLower(text):
		return false
	}
	return true
}

// block reports elements that separate paragraphs.
func block(a atom.Atom) bool {
	switch a {
	case atom.P, atom.Div, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6,
		atom.Ul, atom.Ol, atom.Dl, atom.Table, atom.Blockquote, atom.Section,
		atom.Article, atom.Header, atom.Footer, atom.Nav, atom.Aside, atom.Main,
		atom.Figure, atom.Form, atom.Address, atom.Body, atom.Html:
		return true
	}
	return false
}

// textWriter accumulates text, collapsing white space and line breaks.
type textWriter struct {
	b        strings.Builder
	pending  bool // a space is due before the next word
	newlines int  // trailing line breaks already written
}

// text adds s; outside pre, runs of white space become one space.
func (t *textWriter) text(s string, pre bool) {
	s = strings.ReplaceAll(s, "\u00a0", " ")
	if pre {
		t.flushSpace()
		s = normalizeNL(s)
		if s == "" {
			return
		}
		t.b.WriteString(s)
		t.newlines = len(s) - len(strings.TrimRight(s, "\n"))
		return
	}
	for i, w := range strings.Fields(s) {
		if i > 0 || startsWithSpace(s) {
			t.space()
		}
		t.flushSpace()
		t.b.WriteString(w)
		t.newlines = 0
	}
	if endsWithSpace(s) && strings.TrimSpace(s) != "" {
		t.space()
	}
	if strings.TrimSpace(s) == "" && s != "" {
		t.space()
	}
}

func startsWithSpace(s string) bool { return s != "" && strings.TrimLeft(s, " \t\r\n\f") != s }
func endsWithSpace(s string) bool   { return s != "" && strings.TrimRight(s, " \t\r\n\f") != s }

// space asks for a space before the next word, unless at a line start.
func (t *textWriter) space() {
	if t.b.Len() > 0 && t.newlines == 0 {
		t.pending = true
	}
}

func (t *textWriter) flushSpace() {
	if t.pending {
		t.b.WriteByte(' ')
		t.pending = false
	}
}

// newline writes a line break (a <br>), always.
func (t *textWriter) newline() {
	t.pending = false
	t.b.WriteByte('\n')
	t.newlines++
}

// breakLines makes sure the text ends with at least n line breaks, unless
// nothing was written yet.
func (t *textWriter) breakLines(n int) {
	t.pending = false
	if t.b.Len() == 0 {
		return
	}
	for t.newlines < n {
		t.b.WriteByte('\n')
		t.newlines++
	}
}

// String returns the text with trailing white space trimmed and a final
// line break.
func (t *textWriter) String() string {
	s := strings.TrimRight(t.b.String(), " \n")
	if s == "" {
		return ""
	}
	return s + "\n"
}
