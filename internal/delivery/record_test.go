package delivery_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"sockmail/internal/delivery"
	"sockmail/internal/store"
	"sockmail/smtp"
)

func TestNewSend(t *testing.T) {
	msg := []byte("Subject: =?windows-1252?q?Gr=FC=DFe_=80?=\r\nFrom: a@example.test\r\n\r\nbody that is long enough\r\n")
	head := "Subject: =?windows-1252?q?Gr=FC=DFe_=80?=\r\nFrom: a@example.test"
	at := time.Date(2026, 12, 6, 17, 0, 0, 0, time.UTC)
	parent := int64(4)
	tests := []struct {
		name      string
		rec       delivery.Record
		kept      int
		truncated bool
	}{
		{"whole message", delivery.Record{Source: delivery.SourceWeb, Message: msg}, len(msg), false},
		{"capped", delivery.Record{Source: delivery.SourceCLI, Message: msg, MaxStored: 10}, 10, true},
		{"exactly the cap", delivery.Record{Source: delivery.SourceCLI, Message: msg, MaxStored: int64(len(msg))}, len(msg), false},
		{"kept with an earlier send", delivery.Record{Source: delivery.SourceContact, Message: msg, ParentID: &parent, OmitMessage: true}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.rec.Server, tt.rec.TLS, tt.rec.From, tt.rec.To = "mx.test:25", smtp.TLSStartTLS, "a@example.test", []string{"b@example.test"}
			tt.rec.ClientAddr = "192.0.2.1"
			s := delivery.NewSend(at, tt.rec)
			if s.Subject != "Grüße €" || s.Headers != head || s.Status != store.StatusRunning || !s.CreatedAt.Equal(at) {
				t.Errorf("subject %q headers %q status %q at %v", s.Subject, s.Headers, s.Status, s.CreatedAt)
			}
			if s.Source != tt.rec.Source || s.Server != "mx.test:25" || s.TLSMode != "starttls" || s.MailFrom != "a@example.test" ||
				len(s.Rcpts) != 1 || s.ClientAddr != "192.0.2.1" || s.ParentID != tt.rec.ParentID {
				t.Errorf("record %+v", s)
			}
			if len(s.Message) != tt.kept || s.MessageTruncated != tt.truncated {
				t.Errorf("kept %d bytes truncated=%v, want %d %v", len(s.Message), s.MessageTruncated, tt.kept, tt.truncated)
			}
		})
	}
}

func TestFinish(t *testing.T) {
	start := time.Date(2026, 12, 6, 17, 0, 0, 0, time.UTC)
	end := start.Add(1500 * time.Microsecond)
	now := func() time.Time { return end }
	sent := &smtp.Result{Server: "mx1.test:25", QueueID: "Q9", Final: &smtp.Reply{Code: 250},
		Recipients: []smtp.RecipientResult{{Address: "b@example.test", Accepted: true, Code: 250}}}
	refused := &smtp.Error{Code: 550, EnhancedCode: "5.1.1", Message: "no such user"}
	tests := []struct {
		name   string
		server string
		res    *smtp.Result
		err    error
		status smtp.Status
		errMsg string
		srv    string
	}{
		{"sent", "mx.test:25", sent, nil, smtp.StatusSent, "", "mx.test:25"},
		{"sent to an MX host", "", sent, nil, smtp.StatusSent, "", "mx1.test:25"},
		{"refused", "mx.test:25", &smtp.Result{}, refused, smtp.StatusPermFail, refused.Error(), "mx.test:25"},
		{"cancelled", "mx.test:25", nil, errors.Join(errors.New("smtp: read"), context.Canceled), smtp.StatusAborted, "smtp: read\ncontext canceled", "mx.test:25"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := smtp.NewTranscript()
			tr.Info(smtp.PhaseConnect, "a line")
			s := delivery.NewSend(start, delivery.Record{Server: tt.server, Message: []byte("Subject: x\r\n\r\n.")})
			delivery.Finish(s, tt.res, tt.err, tr, start, now)
			if smtp.Status(s.Status) != tt.status || s.Error != tt.errMsg || s.Server != tt.srv {
				t.Errorf("status %q error %q server %q", s.Status, s.Error, s.Server)
			}
			if s.FinishedAt == nil || !s.FinishedAt.Equal(end) || s.DurationMS != 1.5 || len(s.Events) != 1 {
				t.Errorf("finished %v duration %v events %d", s.FinishedAt, s.DurationMS, len(s.Events))
			}
			if want := smtp.Converse(s.Events).Timings(); s.Timings == nil || *s.Timings != want || s.Timings.Total != s.Events[0].Offset {
				t.Errorf("timings %+v, want %+v", s.Timings, want)
			}
			if tt.res != nil && (s.QueueID != tt.res.QueueID || len(s.Recipients) != len(tt.res.Recipients)) {
				t.Errorf("queue id %q recipients %v", s.QueueID, s.Recipients)
			}
		})
	}
}
