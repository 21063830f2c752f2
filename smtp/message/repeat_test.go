package message

import (
	"bytes"
	"testing"
)

// TestWriteToRepeatable: Message says it is Repeatable (smtp.SendBatch
// then sends it again after a server refused it mid-batch), so WriteTo
// must write the same bytes every time, attachments included.
func TestWriteToRepeatable(t *testing.T) {
	for _, s := range shapes() {
		t.Run(s.name, func(t *testing.T) {
			m := fixed(s.msg())
			m.Attachments = append(m.Attachments, genAttachment("data.bin", 70_000))
			if !m.Repeatable() {
				t.Fatal("Repeatable() = false")
			}
			first, second := write(t, m), write(t, m)
			if !bytes.Equal(first, second) {
				t.Errorf("a second WriteTo wrote %d bytes that differ from the first %d", len(second), len(first))
			}
		})
	}
}
