package capture

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// TestLimitsDropOldest writes messages to the capture server past its
// message-count and total-size limits, on both backends: the newest are
// kept within both limits, the oldest dropped, and each message was
// answered 250.
func TestLimitsDropOldest(t *testing.T) {
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		t.Run(backend, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "sockmail.db")
			if backend == store.BackendPostgres {
				dsn = testenv.Postgres(t)
			}
			st, err := store.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			tests := []struct {
				name         string
				opts         Options
				sizes        []int // body sizes sent, in order
				wantKept     int   // newest messages kept
				wantMaxTotal int64
			}{
				{"count", Options{MaxMessages: 3, MaxSize: 2048, MaxTotalBytes: 1 << 20}, []int{10, 10, 10, 10, 10}, 3, 1 << 20},
				{"bytes", Options{MaxMessages: 100, MaxSize: 2048, MaxTotalBytes: 5000}, []int{1500, 1500, 1500, 1500, 1500}, 3, 5000},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if _, err := st.DeleteAllCaptured(context.Background()); err != nil {
						t.Fatal(err)
					}
					s := start(t, tt.opts, st)
					var sent []string
					for i, n := range tt.sizes {
						subject := fmt.Sprintf("limit-%d", i)
						// Two lines: a line is at most 998 octets (RFC 5321 4.5.3.1.6).
						msg := "Subject: " + subject + "\r\n\r\n" + strings.Repeat("x", n/2) + "\r\n" + strings.Repeat("x", n-n/2) + "\r\n"
						env := smtp.Envelope{From: "a@example.test", To: []string{"b@example.test"}}
						if _, err := smtp.SendMail(context.Background(), smtp.Config{Addr: s.Addr(), TLS: smtp.TLSNone}, env,
							strings.NewReader(msg), smtp.SendOptions{}); err != nil {
							t.Fatalf("message %d: %v", i, err)
						}
						sent = append(sent, subject)
					}
					list, err := st.ListCaptured(context.Background(), 100, 0)
					if err != nil {
						t.Fatal(err)
					}
					var got []string
					var total int64
					for _, c := range list {
						got = append(got, c.Subject)
						total += c.Size
					}
					want := sent[len(sent)-tt.wantKept:]
					if len(got) != len(want) {
						t.Fatalf("kept %q, want the newest %q", got, want)
					}
					for i := range want {
						if got[i] != want[len(want)-1-i] {
							t.Errorf("kept %q, want the newest %q", got, want)
							break
						}
					}
					if total > tt.wantMaxTotal {
						t.Errorf("kept %d bytes, limit %d", total, tt.wantMaxTotal)
					}
				})
			}
		})
	}
}

// TestLimitsValidated: a total size limit below the message size limit
// is refused at start.
func TestLimitsValidated(t *testing.T) {
	_, err := Listen(Options{Addr: "127.0.0.1:0", MaxSize: 2048, MaxTotalBytes: 1024}, &memSaver{})
	if err == nil || !strings.Contains(err.Error(), "below the message size limit") {
		t.Fatalf("Listen = %v", err)
	}
}
