package message

import "testing"

func TestHTMLToText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"plain", "hello", "hello\n"},
		{"entities", "a &amp; b &lt;c&gt; &eacute; &#8364; &nbsp;x", "a & b <c> é € x\n"},
		{"whitespace collapsed", "a \n\t  b", "a b\n"},
		{"paragraphs", "<p>one</p><p>two</p>", "one\n\ntwo\n"},
		{"br", "a<br>b<br/><br>c", "a\nb\n\nc\n"},
		{"link", `see <a href="https://example.com/x?a=1&amp;b=2">the docs</a>.`, "see the docs (https://example.com/x?a=1&b=2).\n"},
		{"link equal to text", `<a href="https://example.com">https://example.com</a>`, "https://example.com\n"},
		{"mailto", `<a href="mailto:a@example.com">a@example.com</a>`, "a@example.com\n"},
		{"anchor", `<a href="#top">top</a>`, "top\n"},
		{"javascript", `<a href="javascript:alert(1)">x</a>`, "x\n"},
		{"list", "<ul><li>one</li><li>two</li></ul>after", "* one\n* two\n\nafter\n"},
		{"headings", "<h1>Title</h1>text", "Title\n\ntext\n"},
		{"table", "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>", "a b\nc d\n"},
		{"head, script and style dropped", "<html><head><title>T</title><style>p{}</style></head><body><script>var x = 1 < 2;</script><p>body</p></body></html>", "body\n"},
		{"pre kept", "<pre>  a\n    b</pre>x", "  a\n    b\n\nx\n"},
		{"img alt", `<p>logo: <img src="cid:x" alt="Logo"></p>`, "logo: Logo\n"},
		{"nested inline", "<p>Hello <b>bold</b> and <i>it</i>alic</p>", "Hello bold and italic\n"},
		{"broken markup", "<p>unclosed <b>bold", "unclosed bold\n"},
		{"hr", "a<hr>b", "a\n\n---\n\nb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HTMLToText(tt.in); got != tt.want {
				t.Errorf("HTMLToText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
