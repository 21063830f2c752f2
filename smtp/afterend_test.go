package smtp

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
)

// refusedAfterEnd is the reply of a server with Haraka's defence against
// SMTP smuggling to a command written in the same flight as the "." that
// ended a message.
const refusedAfterEnd = "503 Bad sequence of commands - pipelined after end of DATA"

// antiSmuggler is a scripted SMTP server on one end of a net.Pipe, where
// one client write is one server read: it behaves like Haraka 3.3.4, which
// answers every command that arrives in the same read as the end of a
// message's data 503 (RFC 2920 allows that pipelining; the server refuses
// it). It offers PIPELINING and 8BITMIME, keeps every message it takes,
// and records each read, so a test can compare the client's writes whole.
type antiSmuggler struct {
	conn net.Conn
	done chan struct{}
	// once: the rest of a read after the end of data gets one 503 in all
	// and is dropped, instead of a 503 for each command.
	once bool

	mu       sync.Mutex
	reads    []string
	messages []string
	refused  int // commands answered refusedAfterEnd
}

// newAntiSmuggler starts the server and returns it with the client's end.
func newAntiSmuggler(t *testing.T, once bool) (*antiSmuggler, net.Conn) {
	t.Helper()
	client, server := net.Pipe()
	s := &antiSmuggler{conn: server, done: make(chan struct{}), once: once}
	go s.serve()
	t.Cleanup(func() {
		client.Close()
		<-s.done
	})
	return s, client
}

// smugglerState is the server's view of the conversation.
type smugglerState struct {
	mail, rcpt, data bool
	body             []string
}

func (s *antiSmuggler) serve() {
	defer close(s.done)
	defer s.conn.Close()
	if _, err := s.conn.Write([]byte("220 haraka.test ESMTP\r\n")); err != nil {
		return
	}
	var st smugglerState
	var partial string
	buf := make([]byte, 1<<16)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.reads = append(s.reads, string(buf[:n]))
		s.mu.Unlock()
		lines := strings.Split(partial+string(buf[:n]), "\r\n")
		partial = lines[len(lines)-1]
		var out strings.Builder
		quit := s.answer(&st, lines[:len(lines)-1], &out)
		if _, err := s.conn.Write([]byte(out.String())); err != nil || quit {
			return
		}
	}
}

// answer answers the complete lines of one read into out and reports
// whether the server said 221 to QUIT.
func (s *antiSmuggler) answer(st *smugglerState, lines []string, out *strings.Builder) bool {
	afterEnd := false
	for _, line := range lines {
		if st.data {
			if line != "." {
				st.body = append(st.body, strings.TrimPrefix(line, "."))
				continue
			}
			s.mu.Lock()
			s.messages = append(s.messages, strings.Join(st.body, "\n"))
			fmt.Fprintf(out, "250 2.0.0 Message Queued (%d)\r\n", len(s.messages))
			s.mu.Unlock()
			*st = smugglerState{}
			afterEnd = true
			continue
		}
		if afterEnd {
			s.mu.Lock()
			s.refused++
			s.mu.Unlock()
			out.WriteString(refusedAfterEnd + "\r\n")
			if s.once {
				return false
			}
			continue
		}
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch {
		case verb == "EHLO":
			out.WriteString("250-haraka.test Hello\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
		case verb == "MAIL":
			st.mail = true
			out.WriteString("250 sender OK\r\n")
		case verb == "RCPT" && st.mail:
			st.rcpt = true
			out.WriteString("250 recipient OK\r\n")
		case verb == "DATA" && st.rcpt:
			st.data = true
			out.WriteString("354 go ahead, make my day\r\n")
		case verb == "RSET":
			*st = smugglerState{}
			out.WriteString("250 OK\r\n")
		case verb == "QUIT":
			out.WriteString("221 haraka.test closing connection\r\n")
			return true
		default:
			out.WriteString("503 5.5.1 Bad sequence of commands\r\n")
		}
	}
	return false
}

// result returns the reads joined by "|", the messages and the refusals.
func (s *antiSmuggler) result() (string, []string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.reads, "|"), append([]string(nil), s.messages...), s.refused
}

// TestPipeliningAfterEndRefused: a server that refuses commands pipelined
// after the end of data (Haraka's SMTP-smuggling defence) loses no
// message: a batch sends the refused message again on the same
// connection and stops pipelining after the end of data, and a QUIT
// refused that way is said again, the message's verdict standing.
func TestPipeliningAfterEndRefused(t *testing.T) {
	env := func(i int) string {
		return fmt.Sprintf("MAIL FROM:<a@example.org>\nRCPT TO:<b%d@example.net>\nDATA\n", i)
	}
	tests := []struct {
		name    string
		n       int    // messages; 0: one SendMail
		client  string // the client's writes, "|" between them; "" not checked
		refused int
		once    bool
	}{
		{
			name:    "one message: QUIT refused after the dot, said again",
			client:  segs("EHLO client.test\n", env(1), "Subject: m1\n\nbody1\n.\nQUIT\n", "QUIT\n"),
			refused: 1,
		},
		{
			name: "three messages: the second is refused once and sent again",
			n:    3,
			client: segs("EHLO client.test\n", env(1), bodySeg(1)+env(2), "RSET\n",
				env(2), bodySeg(2), env(3), bodySeg(3), "QUIT\n"),
			refused: 3,
		},
		{name: "twenty messages, each delivered once", n: 20, refused: 3},
		{
			name: "one 503 for the whole refused flight",
			n:    3, once: true,
			client: segs("EHLO client.test\n", env(1), bodySeg(1)+env(2), "RSET\n",
				env(2), bodySeg(2), env(3), bodySeg(3), "QUIT\n"),
			refused: 1,
		},
		{name: "twenty messages, one 503 for the refused flight", n: 20, once: true, refused: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, conn := newAntiSmuggler(t, tc.once)
			cfg := Config{Addr: "127.0.0.1:25", Dialer: connDialer{conn}, LocalName: "client.test", Transcript: NewTranscript()}
			var errs []error
			if tc.n == 0 {
				msg := strings.NewReader("Subject: m1\n\nbody1\n")
				res, err := SendMail(context.Background(), cfg, Envelope{From: "a@example.org", To: []string{"b1@example.net"}}, msg, SendOptions{})
				if st := StatusOf(res, err); st != StatusSent {
					t.Errorf("status %q (err %v), want sent", st, err)
				}
				errs = append(errs, err)
			} else {
				c, err := Open(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				out, err := c.SendBatch(context.Background(), batchMessages(tc.n), true)
				if err != nil {
					t.Errorf("batch: %v", err)
				}
				for _, o := range out {
					errs = append(errs, o.Err)
				}
			}
			reads, got, refused := srv.result()
			if tc.client != "" && reads != tc.client {
				t.Errorf("client wrote:\n%q\nwant:\n%q", reads, tc.client)
			}
			for i, err := range errs {
				if err != nil {
					t.Errorf("message %d: %v", i+1, err)
				}
			}
			n := max(tc.n, 1)
			if len(got) != n {
				t.Errorf("the server took %d messages, want %d", len(got), n)
			}
			for i, m := range got {
				if want := fmt.Sprintf("Subject: m%d\n\nbody%d", i+1, i+1); m != want {
					t.Errorf("message %d taken is %q, want %q", i+1, m, want)
				}
			}
			if refused != tc.refused {
				t.Errorf("the server refused %d commands after the end of data, want %d (once, then never again)", refused, tc.refused)
			}
			if t.Failed() {
				t.Logf("transcript:\n%s", dumpTranscript(cfg.Transcript))
			}
		})
	}
}
