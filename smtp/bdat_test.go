package smtp

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

// TestBDATChunkReplies sends a message of two BDAT chunks through a
// scripted server with PIPELINING and CHUNKING and checks what the client
// makes of the reply to the first chunk, read only after the last chunk
// (and the pipelined QUIT) went out: accepted, refused, or never given.
// The client's bytes are the same in every case and compared whole.
func TestBDATChunkReplies(t *testing.T) {
	body := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", chunkSize*3/2/80) // one and a half chunks
	last := len(body) - chunkSize
	if last <= 0 || last > chunkSize {
		t.Fatalf("body of %d bytes is not two chunks of %d", len(body), chunkSize)
	}
	client := lf("EHLO client.test\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\n") +
		"BDAT " + strconv.Itoa(chunkSize) + "\r\n" + body[:chunkSize] +
		"BDAT " + strconv.Itoa(last) + " LAST\r\n" + body[chunkSize:] + "QUIT\r\n"
	envelope := ehloFull + "250 2.1.0 Ok\n250 2.1.5 Ok\n"
	tests := []struct {
		name      string
		server    string
		status    Status
		queueID   string
		errCode   int  // 0: no reply in the error
		finalCode int  // Result.Final's code, 0 for none
		unknown   bool // the error says the outcome is unknown
	}{
		{
			name:   "both chunks accepted",
			server: envelope + "250 2.0.0 chunk Ok\n250 2.0.0 Ok: queued as BIG1\n221 2.0.0 Bye\n",
			status: StatusSent, queueID: "BIG1", finalCode: 250,
		},
		{
			name:   "first chunk refused",
			server: envelope + "552 5.3.4 message too big\n",
			status: StatusPermFail, errCode: 552, finalCode: 552,
		},
		{
			name:   "first chunk deferred",
			server: envelope + "452 4.3.1 insufficient storage\n",
			status: StatusTempFail, errCode: 452, finalCode: 452,
		},
		{
			name:   "connection lost before the first chunk's reply",
			server: envelope,
			status: StatusUnknown, unknown: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaker(tt.server)
			res, err := SendMail(context.Background(), fakeConfig(f), Envelope{From: "a@example.org", To: []string{"b@example.net"}},
				strings.NewReader(body), SendOptions{})
			if got := strings.ReplaceAll(f.client(), "|", ""); got != client {
				t.Errorf("client wrote %d bytes, want %d; first difference at byte %d", len(got), len(client), firstDiff(got, client))
			}
			if st := StatusOf(res, err); st != tt.status {
				t.Errorf("status = %q (err %v), want %q", st, err, tt.status)
			}
			if res.QueueID != tt.queueID {
				t.Errorf("queue id = %q, want %q", res.QueueID, tt.queueID)
			}
			finalCode := 0
			if res.Final != nil {
				finalCode = res.Final.Code
			}
			if finalCode != tt.finalCode {
				t.Errorf("final reply code = %d, want %d", finalCode, tt.finalCode)
			}
			if tt.status == StatusSent {
				if err != nil {
					t.Errorf("unexpected error: %v", err)
				}
				return
			}
			var e *Error
			if !asError(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Phase != PhaseBody || e.Code != tt.errCode || e.OutcomeUnknown != tt.unknown {
				t.Errorf("error phase/code/unknown = %s/%d/%v, want %s/%d/%v (%v)",
					e.Phase, e.Code, e.OutcomeUnknown, PhaseBody, tt.errCode, tt.unknown, e)
			}
		})
	}
}

// firstDiff returns the index of the first byte where a and b differ.
func firstDiff(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
