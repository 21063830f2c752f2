package smtp_test

// Benchmarks of sockmail's SMTP client against Go's net/smtp, in the same
// run and against the same servers (issue 2, "Benchmarks"):
//
//   - BenchmarkClientWaits: client waits and time per message through a
//     proxy that emulates a 20 ms round trip (internal/delayproxy), for 1
//     and 10 recipients, against a server offering PIPELINING (smtp-sink),
//     PIPELINING and CHUNKING (go-smtp), and neither (smtp-sink -p).
//   - BenchmarkReuse: messages per second over one connection to a local
//     sink, straight and at a 5 ms round trip.
//   - BenchmarkBatch: the same with SendBatch, the next envelope pipelined
//     after the end of each message.
//   - BenchmarkAttachment: a 2 MB and a 20 MB attachment streamed from a
//     file on disk: time and peak heap growth.
//
// Each comparison runs net/smtp first and then sockmail in the same
// benchmark function; the sockmail rows report "x-vs-net/smtp", the
// net/smtp time divided by sockmail's (above 1 means sockmail is faster),
// computed from the numbers measured just before, so no script is needed
// to get the ratios. Run with
//
//	go test -run '^$' -bench . -benchmem -count 5 ./smtp/
//
// On loopback the sinks' own work per message is a large, fixed part of
// the time: a client that halves its round trips does not halve the time.
// The machine's other load shows in the numbers; compare medians.
//
// smtp-sink comes with Postfix (make testservers installs it); without it
// the benchmarks that need it are skipped, or fail under CI=true.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/mail"
	netsmtp "net/smtp"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"sockmail/internal/benchsink"
	"sockmail/internal/delayproxy"
	"sockmail/smtp"
	"sockmail/smtp/message"
)

// benchRTT is the round-trip time the delay proxy emulates.
const benchRTT = 20 * time.Millisecond

const benchFrom = "sender@example.org"

// benchRecipients returns n recipient addresses.
func benchRecipients(n int) []string {
	to := make([]string, n)
	for i := range to {
		to[i] = fmt.Sprintf("rcpt%d@example.org", i)
	}
	return to
}

// benchMessage composes a small text message (about 1 KB) to n
// recipients and returns its bytes, the same for both clients.
func benchMessage(b *testing.B, n int) []byte {
	b.Helper()
	m := &message.Message{
		From:    &mail.Address{Name: "Bench Sender", Address: benchFrom},
		Subject: "sockmail benchmark",
		Text:    strings.Repeat("The quick brown fox jumps over the lazy dog.\n", 20),
	}
	for _, a := range benchRecipients(n) {
		m.To = append(m.To, &mail.Address{Address: a})
	}
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// sockmailConfig is the client configuration of every benchmark: plain
// TCP, no AUTH, a fresh transcript per conversation.
func sockmailConfig(addr string) smtp.Config {
	return smtp.Config{Addr: addr, TLS: smtp.TLSNone, LocalName: "localhost", Transcript: smtp.NewTranscript()}
}

// sendSockmail sends msg in one whole conversation with sockmail.
func sendSockmail(addr string, to []string, msg []byte) error {
	env := smtp.Envelope{From: benchFrom, To: to, Size: int64(len(msg))}
	_, err := smtp.SendMail(context.Background(), sockmailConfig(addr), env, bytes.NewReader(msg), smtp.SendOptions{})
	return err
}

// sendNetSMTP sends msg in one whole conversation with net/smtp.
func sendNetSMTP(addr string, to []string, msg []byte) error {
	return netsmtp.SendMail(addr, nil, benchFrom, to, msg)
}

// reportRatio reports how many times faster than net/smtp a run was,
// given both times per message.
func reportRatio(b *testing.B, netNS, ownNS float64) {
	if netNS > 0 && ownNS > 0 {
		b.ReportMetric(netNS/ownNS, "x-vs-net/smtp")
	}
}

// BenchmarkClientWaits counts the client's waits for the server and the
// time per message through a proxy adding a 20 ms round trip. Targets
// (issue 2): 3 waits with PIPELINING, 2 with CHUNKING, whatever the number
// of recipients; net/smtp needs 5+K.
func BenchmarkClientWaits(b *testing.B) {
	pipelining := benchsink.SMTPSink(b)
	neither := benchsink.SMTPSink(b, "-p")
	chunking := benchsink.GoSMTP(b)
	for _, n := range []int{1, 10} {
		to := benchRecipients(n)
		b.Run(fmt.Sprintf("rcpt=%d", n), func(b *testing.B) {
			msg := benchMessage(b, n)
			var netNS float64
			b.Run("net-smtp", func(b *testing.B) {
				netNS = measureWaits(b, pipelining, func(addr string) error { return sendNetSMTP(addr, to, msg) })
			})
			for _, s := range []struct{ name, addr string }{
				{"sockmail-pipelining", pipelining},
				{"sockmail-chunking", chunking},
				{"sockmail-neither", neither},
			} {
				b.Run(s.name, func(b *testing.B) {
					ns := measureWaits(b, s.addr, func(addr string) error { return sendSockmail(addr, to, msg) })
					reportRatio(b, netNS, ns)
				})
			}
		})
	}
}

// measureWaits runs send b.N times through a delay proxy in front of
// target, reports waits/msg and ms/msg, and returns the time per message
// in nanoseconds.
func measureWaits(b *testing.B, target string, send func(addr string) error) float64 {
	p, err := delayproxy.Start(target, benchRTT)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := send(p.Addr()); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	conns := p.Conns()
	if len(conns) != b.N {
		b.Fatalf("%d connections through the proxy for %d messages", len(conns), b.N)
	}
	ns := float64(elapsed.Nanoseconds()) / float64(b.N)
	b.ReportMetric(float64(p.Waits())/float64(b.N), "waits/msg")
	b.ReportMetric(ns/1e6, "ms/msg")
	return ns
}

// BenchmarkReuse sends messages over one connection and reports messages
// per second. Target (issue 2): at least 2x net/smtp. net/smtp says MAIL,
// RCPT, DATA and the message one after another (4 waits per message);
// sockmail pipelines the envelope with DATA (smtp-sink: 2 waits) or sends
// envelope and message in one BDAT write (go-smtp, CHUNKING: 1 wait).
//
// Each sink is measured straight on loopback ("rtt=0s"), where the sink's
// own work per message is a large fixed cost, and through the delay proxy
// at a 5 ms round trip ("rtt=5ms"), which also reports waits/msg. (Go's
// timers overshoot short sleeps by about a millisecond, so the proxy
// cannot emulate a sub-millisecond LAN faithfully.)
func BenchmarkReuse(b *testing.B) {
	sinks := []struct{ name, addr string }{
		{"smtp-sink", benchsink.SMTPSink(b)},
		{"go-smtp", benchsink.GoSMTP(b)},
	}
	to := benchRecipients(1)
	for _, s := range sinks {
		for _, rtt := range []time.Duration{0, 5 * time.Millisecond} {
			b.Run(fmt.Sprintf("sink=%s/rtt=%v", s.name, rtt), func(b *testing.B) {
				msg := benchMessage(b, 1)
				var netNS float64
				b.Run("net-smtp", func(b *testing.B) { netNS = netSMTPReuse(b, s.addr, rtt, to, msg) })
				b.Run("sockmail", func(b *testing.B) {
					ctx := context.Background()
					addr, waits := reuseTarget(b, s.addr, rtt)
					c, err := smtp.Open(ctx, sockmailConfig(addr))
					if err != nil {
						b.Fatal(err)
					}
					defer c.Close()
					env := smtp.Envelope{From: benchFrom, To: to, Size: int64(len(msg))}
					w0, cpu0 := waits(), processCPU()
					b.ResetTimer()
					start := time.Now()
					for i := 0; i < b.N; i++ {
						if _, err := c.Send(ctx, env, bytes.NewReader(msg)); err != nil {
							b.Fatal(err)
						}
					}
					reportRatio(b, netNS, reportRate(b, time.Since(start), processCPU()-cpu0))
					reportWaits(b, rtt, waits()-w0)
					c.Quit(ctx)
				})
			})
		}
	}
}

// netSMTPReuse sends b.N messages over one net/smtp connection, reports
// msgs/s (and waits/msg through a proxy) and returns the time per message
// in ns: the baseline of BenchmarkReuse and BenchmarkBatch.
func netSMTPReuse(b *testing.B, sink string, rtt time.Duration, to []string, msg []byte) float64 {
	addr, waits := reuseTarget(b, sink, rtt)
	c, err := netsmtp.Dial(addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		b.Fatal(err)
	}
	w0, cpu0 := waits(), processCPU()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := netSMTPTransaction(c, to, func(w io.Writer) error { _, err := w.Write(msg); return err }); err != nil {
			b.Fatal(err)
		}
	}
	ns := reportRate(b, time.Since(start), processCPU()-cpu0)
	reportWaits(b, rtt, waits()-w0)
	c.Quit()
	return ns
}

// batchSize is how many messages one SendBatch carries in BenchmarkBatch.
const batchSize = 100

// BenchmarkBatch is BenchmarkReuse with SendBatch: messages per second
// over one connection, in batches of batchSize, against net/smtp sending
// one after another. Target (issue 2): at least 2x net/smtp. With
// smtp-sink (PIPELINING, no CHUNKING) each envelope goes in the same write
// as the end of the message before it: one wait per message, where Send
// needs two and net/smtp four. go-smtp offers CHUNKING: each message's
// RSET, envelope and BDAT LAST go before the replies to the one before are
// read, so the server works on one while the client reads the other's
// replies (at most one wait a message, often less); "go-smtp-data" is the
// same sink with CHUNKING turned off in the client, to show the DATA
// pipelining there too. waits/msg (rtt=5ms) includes one wait per batch
// for its first envelope.
func BenchmarkBatch(b *testing.B) {
	smtpSink, goSMTP := benchsink.SMTPSink(b), benchsink.GoSMTP(b)
	sinks := []struct {
		name, addr string
		noChunking bool
	}{
		{"smtp-sink", smtpSink, false},
		{"go-smtp", goSMTP, false},
		{"go-smtp-data", goSMTP, true},
	}
	to := benchRecipients(1)
	for _, s := range sinks {
		for _, rtt := range []time.Duration{0, 5 * time.Millisecond} {
			b.Run(fmt.Sprintf("sink=%s/rtt=%v", s.name, rtt), func(b *testing.B) {
				msg := benchMessage(b, 1)
				var netNS float64
				b.Run("net-smtp", func(b *testing.B) { netNS = netSMTPReuse(b, s.addr, rtt, to, msg) })
				b.Run("sockmail-batch", func(b *testing.B) {
					ctx := context.Background()
					addr, waits := reuseTarget(b, s.addr, rtt)
					cfg := sockmailConfig(addr)
					cfg.DisableChunking = s.noChunking
					c, err := smtp.Open(ctx, cfg)
					if err != nil {
						b.Fatal(err)
					}
					defer c.Close()
					env := smtp.Envelope{From: benchFrom, To: to, Size: int64(len(msg))}
					batch := make([]smtp.BatchMessage, batchSize)
					readers := make([]bytes.Reader, batchSize)
					w0, cpu0 := waits(), processCPU()
					b.ResetTimer()
					start := time.Now()
					for sent := 0; sent < b.N; {
						k := min(batchSize, b.N-sent)
						for i := range k {
							readers[i].Reset(msg)
							batch[i] = smtp.BatchMessage{Envelope: env, Message: &readers[i]}
						}
						out, err := c.SendBatch(ctx, batch[:k], false)
						if err != nil {
							b.Fatal(err)
						}
						for _, r := range out {
							if r.Err != nil {
								b.Fatal(r.Err)
							}
						}
						sent += k
					}
					reportRatio(b, netNS, reportRate(b, time.Since(start), processCPU()-cpu0))
					reportWaits(b, rtt, waits()-w0)
					c.Quit(ctx)
				})
			})
		}
	}
}

// reuseTarget returns the address to send to: the sink itself, or a delay
// proxy in front of it when rtt is not zero. waits counts the client
// waits so far (always 0 without a proxy).
func reuseTarget(b *testing.B, sink string, rtt time.Duration) (addr string, waits func() int) {
	if rtt == 0 {
		return sink, func() int { return 0 }
	}
	p, err := delayproxy.Start(sink, rtt)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p.Addr(), p.Waits
}

// reportWaits reports waits/msg when a proxy counted them.
func reportWaits(b *testing.B, rtt time.Duration, waits int) {
	if rtt > 0 {
		b.ReportMetric(float64(waits)/float64(b.N), "waits/msg")
	}
}

// netSMTPTransaction sends one message over an open net/smtp connection,
// written into the DATA writer by write.
func netSMTPTransaction(c *netsmtp.Client, to []string, write func(io.Writer) error) error {
	if err := c.Mail(benchFrom); err != nil {
		return err
	}
	for _, a := range to {
		if err := c.Rcpt(a); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if err := write(w); err != nil {
		return err
	}
	return w.Close()
}

// reportRate stops the timer, reports msgs/s and the process's CPU time
// per message (the client's alone with smtp-sink, client and server with
// the in-process go-smtp), and returns the time per message in ns.
func reportRate(b *testing.B, elapsed, cpu time.Duration) float64 {
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/1e3, "cpu-us/msg")
	}
	return float64(elapsed.Nanoseconds()) / float64(b.N)
}

// BenchmarkAttachment sends a message with one attachment streamed from a
// file on disk and reports the time, the peak growth of the heap during a
// send ("peak-MB", sampled) and the CPU time the process used per send
// ("cpu-ms/msg", from getrusage: the client's alone with smtp-sink, client
// and server together with the in-process go-smtp sink; it varies less
// than the time on a loaded machine). Three ways to build the message:
//
//   - net-smtp: net/smtp's Data writer fed by io.Copy from the file
//     through encoding/base64 and a 76-column line breaker;
//   - sockmail-stream: sockmail's client fed by the same stream;
//   - sockmail-message: sockmail's client fed by smtp/message (the
//     composer the CLI and the web app use).
//
// Target (issue 2): time no worse than net/smtp, peak memory that does not
// grow with the attachment (compare size=2MB and size=20MB). The go-smtp
// sink runs in this process, so its own buffers count in peak-MB there;
// smtp-sink is a separate process.
func BenchmarkAttachment(b *testing.B) {
	sinks := []struct{ name, addr string }{
		{"smtp-sink", benchsink.SMTPSink(b)},
		{"go-smtp", benchsink.GoSMTP(b)},
	}
	to := benchRecipients(1)
	for _, mb := range []int{2, 20} {
		path := filepath.Join(b.TempDir(), "attachment.bin")
		writeRandomFile(b, path, mb<<20)
		b.Run(fmt.Sprintf("size=%dMB", mb), func(b *testing.B) {
			for _, s := range sinks {
				b.Run("sink="+s.name, func(b *testing.B) {
					var netNS float64
					b.Run("net-smtp", func(b *testing.B) {
						netNS = measurePeak(b, func() error {
							c, err := netsmtp.Dial(s.addr)
							if err != nil {
								return err
							}
							defer c.Close()
							if err := c.Hello("localhost"); err != nil {
								return err
							}
							write := func(w io.Writer) error { return writeStream(w, path, to[0]) }
							if err := netSMTPTransaction(c, to, write); err != nil {
								return err
							}
							return c.Quit()
						})
					})
					b.Run("sockmail-stream", func(b *testing.B) {
						ns := measurePeak(b, func() error {
							env := smtp.Envelope{From: benchFrom, To: to}
							_, err := smtp.SendMail(context.Background(), sockmailConfig(s.addr), env, streamMessage{path, to[0]}, smtp.SendOptions{})
							return err
						})
						reportRatio(b, netNS, ns)
					})
					b.Run("sockmail-message", func(b *testing.B) {
						ns := measurePeak(b, func() error {
							att, err := message.FileAttachment(path)
							if err != nil {
								return err
							}
							m := &message.Message{
								From: &mail.Address{Address: benchFrom}, To: []*mail.Address{{Address: to[0]}},
								Subject: "attachment", Text: "See the attachment.\n", Attachments: []*message.Attachment{att},
							}
							size, err := m.Size()
							if err != nil {
								return err
							}
							env := smtp.Envelope{From: benchFrom, To: to, Size: size}
							_, err = smtp.SendMail(context.Background(), sockmailConfig(s.addr), env, m, smtp.SendOptions{})
							return err
						})
						reportRatio(b, netNS, ns)
					})
				})
			}
		})
	}
}

// measurePeak runs send b.N times, timing only the sends, and reports the
// largest heap growth seen during one of them. It returns the time per
// send in nanoseconds.
func measurePeak(b *testing.B, send func() error) float64 {
	var peak uint64
	var total, cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		runtime.GC()
		s := startHeapSampler()
		cpu0 := processCPU()
		b.StartTimer()
		start := time.Now()
		err := send()
		total += time.Since(start)
		b.StopTimer()
		cpu += processCPU() - cpu0
		if grew := s.stop(); grew > peak {
			peak = grew
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-MB")
	ns := float64(total.Nanoseconds()) / float64(b.N)
	b.ReportMetric(ns/1e6, "ms/msg")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/1e6, "cpu-ms/msg")
	}
	return ns
}

// heapSampler watches the heap (live and not yet collected objects) every
// half millisecond and keeps the largest size seen above where it
// started. runtime/metrics is read without stopping the world, unlike
// runtime.ReadMemStats.
type heapSampler struct {
	base, max uint64
	quit      chan struct{}
	wg        sync.WaitGroup
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func heapBytes(s []metrics.Sample) uint64 {
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	sample := []metrics.Sample{{Name: heapMetric}}
	h := &heapSampler{quit: make(chan struct{})}
	h.base = heapBytes(sample)
	h.max = h.base
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		s := []metrics.Sample{{Name: heapMetric}}
		t := time.NewTicker(500 * time.Microsecond)
		defer t.Stop()
		for {
			if v := heapBytes(s); v > h.max {
				h.max = v
			}
			select {
			case <-h.quit:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

// stop ends the sampling and returns the growth.
func (h *heapSampler) stop() uint64 {
	close(h.quit)
	h.wg.Wait()
	return h.max - h.base
}

// writeRandomFile writes size random-looking bytes to path.
func writeRandomFile(b *testing.B, path string, size int) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	// A fast deterministic generator: the content only has to defeat
	// nothing, but should not be all zeros.
	buf := make([]byte, 1<<20)
	x := uint64(0x9e3779b97f4a7c15)
	for written := 0; written < size; written += len(buf) {
		for i := 0; i+8 <= len(buf); i += 8 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			for k := 0; k < 8; k++ {
				buf[i+k] = byte(x >> (8 * k))
			}
		}
		if _, err := f.Write(buf[:min(len(buf), size-written)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// streamMessage is a message with one attachment, written by io.Copy from
// the file through encoding/base64: what a net/smtp user would write.
type streamMessage struct{ path, to string }

func (m streamMessage) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	err := writeStream(cw, m.path, m.to)
	return cw.n, err
}

// writeStream writes the message of streamMessage to w.
func writeStream(w io.Writer, path, to string) error {
	const boundary = "sockmail-bench-boundary"
	head := "From: " + benchFrom + "\r\nTo: " + to + "\r\nSubject: attachment\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n\r\n" +
		"--" + boundary + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the attachment.\r\n" +
		"--" + boundary + "\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"attachment.bin\"\r\n\r\n"
	if _, err := io.WriteString(w, head); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	lb := &lineBreaker{w: w}
	enc := base64.NewEncoder(base64.StdEncoding, lb)
	if _, err := io.Copy(enc, f); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	if lb.col > 0 {
		if _, err := io.WriteString(w, "\r\n"); err != nil {
			return err
		}
	}
	_, err = io.WriteString(w, "--"+boundary+"--\r\n")
	return err
}

// lineBreaker inserts CRLF every 76 characters (RFC 2045 6.8).
type lineBreaker struct {
	w    io.Writer
	col  int
	crlf [2]byte // written from here so that a line break does not allocate
}

func (l *lineBreaker) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(76-l.col, len(p))
		if _, err := l.w.Write(p[:k]); err != nil {
			return 0, err
		}
		p, l.col = p[k:], l.col+k
		if l.col == 76 {
			l.crlf = [2]byte{'\r', '\n'}
			if _, err := l.w.Write(l.crlf[:]); err != nil {
				return 0, err
			}
			l.col = 0
		}
	}
	return n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
