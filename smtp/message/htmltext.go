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
	var c htmlConverter
	z := html.NewTokenizer(strings.NewReader(s))
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return c.t.String()
		case html.TextToken:
			if c.skip == 0 {
				c.t.text(string(z.Text()), c.pre > 0)
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			a, attrs := readTag(z)
			if c.skip == 0 {
				c.startTag(a, tt == html.StartTagToken, attrs)
			}
		case html.EndTagToken:
			a, _ := readTag(z)
			c.endTag(a)
		}
	}
}

// htmlConverter is the state of HTMLToText between tokens.
type htmlConverter struct {
	t     textWriter
	skip  int        // depth inside elements whose content is dropped
	pre   int        // depth inside <pre>
	links []htmlLink // open <a> elements, innermost last
}

// htmlLink is an open <a>: its target and where its text starts.
type htmlLink struct {
	href  string
	start int
}

// readTag returns the atom of the current tag and its attributes.
func readTag(z *html.Tokenizer) (atom.Atom, map[string]string) {
	name, hasAttr := z.TagName()
	attrs := map[string]string{}
	for hasAttr {
		var k, v []byte
		k, v, hasAttr = z.TagAttr()
		attrs[string(k)] = string(v)
	}
	return atom.Lookup(name), attrs
}

// dropsContent reports elements whose content is not part of the text.
func dropsContent(a atom.Atom) bool {
	switch a {
	case atom.Head, atom.Script, atom.Style, atom.Template, atom.Noscript, atom.Title:
		return true
	}
	return false
}

// startTag handles a start tag (open true) or a self-closing one, outside
// dropped content.
func (c *htmlConverter) startTag(a atom.Atom, open bool, attrs map[string]string) {
	t := &c.t
	switch {
	case dropsContent(a):
		if open {
			c.skip++
		}
	case a == atom.Br:
		t.newline()
	case a == atom.Hr:
		t.breakLines(2)
		t.text("---", true)
		t.breakLines(2)
	case a == atom.Pre:
		t.breakLines(2)
		if open {
			c.pre++
		}
	case a == atom.Li:
		t.breakLines(1)
		t.text("* ", true)
	case a == atom.Tr, a == atom.Dt, a == atom.Dd:
		t.breakLines(1)
	case a == atom.Td, a == atom.Th:
		t.space()
	case a == atom.Img:
		if alt := strings.TrimSpace(attrs["alt"]); alt != "" {
			t.text(alt, false)
		}
	case a == atom.A:
		if open {
			t.flushSpace()
			c.links = append(c.links, htmlLink{href: strings.TrimSpace(attrs["href"]), start: t.b.Len()})
		}
	case block(a):
		t.breakLines(2)
	}
}

// endTag handles an end tag, inside dropped content or not.
func (c *htmlConverter) endTag(a atom.Atom) {
	switch {
	case dropsContent(a):
		c.skip = max(c.skip-1, 0)
	case a == atom.Pre:
		c.pre = max(c.pre-1, 0)
		c.t.breakLines(2)
	case a == atom.A:
		c.closeLink()
	case a == atom.Tr, a == atom.Li, a == atom.Dt, a == atom.Dd:
		c.t.breakLines(1)
	case block(a):
		c.t.breakLines(2)
	}
}

// closeLink ends the innermost open link, writing " (url)" after its text
// when the target adds anything to it.
func (c *htmlConverter) closeLink() {
	if len(c.links) == 0 {
		return
	}
	l := c.links[len(c.links)-1]
	c.links = c.links[:len(c.links)-1]
	text := strings.TrimSpace(c.t.b.String()[min(l.start, c.t.b.Len()):])
	if showHref(l.href, text) {
		c.t.text(" ("+l.href+")", false)
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
