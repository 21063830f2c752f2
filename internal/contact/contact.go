// Package contact is the application layer of public contact forms: it
// takes a decoded post to a form and decides what becomes of it. It owns
// the time-trap tokens, the honeypot, the captcha verification, the rate
// limits and the composition of the message to the site's owner (RFC 5322,
// through smtp/message), and stores the submission with its outbox item in
// one transaction. It answers with a typed Outcome; the web handlers
// decode requests and turn outcomes into HTML or JSON.
//
// Time comes from an injected clock (Deps.Now), never from the wall
// clock directly, so the time trap and the limits are tested without
// waiting.
package contact

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"sockmail/internal/store"
)

// RateWindow is the window of the per-hour rate limits.
const RateWindow = time.Hour

// Block reasons kept with a blocked submission.
const (
	BlockHoneypot = "honeypot"
	BlockForged   = "forged token"
)

// Attempts reads the rate-limit counts of submissions, kept in the
// database so that every instance shares them (Queue counts them, with
// the submission). *store.Store is one.
type Attempts interface {
	RateCounts(ctx context.Context, keys []string, at time.Time, window time.Duration) ([]int, error)
}

// Settings keeps the token signing key. *store.Store is one.
type Settings interface {
	SetSettingIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error)
}

// Queue stores a submission with its outbox item, counted against the
// form's rate limits, and finds the one posted with a token.
// *store.Store is one.
type Queue interface {
	EnqueueLimited(ctx context.Context, sub *store.Submission, item *store.OutboxItem, limits []store.Limit, at time.Time) (*store.Limit, error)
	SubmissionByToken(ctx context.Context, hash string) (int64, error)
}

// Opener decrypts the captcha secrets of forms. *crypt.Box is one.
type Opener interface {
	Open(ciphertext []byte) ([]byte, error)
}

// Kicker wakes the outbox worker after a submission is stored.
type Kicker interface {
	Kick()
}

// Deps is what a Service needs.
type Deps struct {
	Attempts Attempts
	Settings Settings
	Queue    Queue
	Sealer   Opener
	// Kicker is optional.
	Kicker Kicker
	Logger *slog.Logger
	// Now is the clock; required.
	Now func() time.Time
	// HTTPClient asks the captcha providers; one with CaptchaTimeout if
	// nil.
	HTTPClient *http.Client
	// VerifyURLs replace providers' endpoints in DefaultVerifyURLs.
	VerifyURLs map[string]string
}

// Service handles posts to contact forms. It is safe for concurrent use.
type Service struct {
	attempts Attempts
	settings Settings
	queue    Queue
	sealer   Opener
	kick     Kicker
	log      *slog.Logger
	now      func() time.Time
	captcha  *captchaVerifier
	keys     tokenKeys
}

// New builds a Service.
func New(d Deps) (*Service, error) {
	if d.Attempts == nil || d.Settings == nil || d.Queue == nil || d.Sealer == nil || d.Now == nil {
		return nil, errors.New("contact: attempts, settings, queue, sealer and clock are required")
	}
	urls := DefaultVerifyURLs()
	for k, v := range d.VerifyURLs {
		urls[k] = v
	}
	client := d.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: CaptchaTimeout}
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{attempts: d.Attempts, settings: d.Settings, queue: d.Queue, sealer: d.Sealer, kick: d.Kicker,
		log: log, now: d.Now, captcha: &captchaVerifier{client: client, urls: urls}}, nil
}

// Input is one decoded post to a form.
type Input struct {
	Form *store.Form
	// Values are the posted fields by name (url-encoded, multipart or
	// JSON), meta fields included.
	Values map[string][]string
	// Uploads are the uploaded files.
	Uploads []Upload
	// ClientAddr is the client's IP address.
	ClientAddr string
	// Origin is the request's Origin header; SelfOrigin reports that it
	// is sockmail's own (its confirmation page posting back).
	Origin     string
	SelfOrigin bool
	// UserAgent is kept with the submission.
	UserAgent string
}

// Token is a fresh time-trap token and how to use it.
type Token struct {
	Value string
	// Field is the field to post it in.
	Field string
	// MinWait and MaxAge bound when it is accepted.
	MinWait, MaxAge time.Duration
}

// NewToken returns a fresh token for form f.
func (s *Service) NewToken(ctx context.Context, f *store.Form) (Token, *Problem) {
	if !f.Enabled {
		p := ErrDisabled()
		p.Message = "This form is not taking messages at the moment."
		return Token{}, p
	}
	key, err := s.keys.get(ctx, s.settings)
	if err != nil {
		s.log.Error("contact form: time-trap key", "err", err)
		return Token{}, ErrUnavailable()
	}
	return Token{Value: signToken(key, f.ID, s.now()), Field: FieldToken, MinWait: tokenMinAge, MaxAge: tokenMaxAge}, nil
}

// Precheck refuses, before the body is read, a post to a disabled form
// or one already over the form's per-address or per-form limit. It is
// the cheap early answer; Submit takes the exact count.
func (s *Service) Precheck(ctx context.Context, f *store.Form, addr string) *Problem {
	if !f.Enabled {
		return ErrDisabled()
	}
	var active []store.Limit
	var keys []string
	for _, l := range limits(f, addr) {
		if l.Max > 0 {
			active, keys = append(active, l), append(keys, l.Key)
		}
	}
	if len(active) == 0 {
		return nil
	}
	counts, err := s.attempts.RateCounts(ctx, keys, s.now(), RateWindow)
	if err != nil {
		s.log.Error("contact form: count attempts", "form", f.Slug, "err", err)
		return ErrUnavailable()
	}
	for i, l := range active {
		if counts[i] >= l.Max {
			return s.rateLimited(f, l, counts[i])
		}
	}
	return nil
}

// Submit checks a post and stores it: as queued for delivery, or as
// blocked when a spam rule catches it. Every other outcome refuses it
// with a Problem (and, when a browser can finish on the confirmation
// page, a Confirmation). Nothing is stored unless the outcome is Stored
// or Blocked.
func (s *Service) Submit(ctx context.Context, in Input) Outcome {
	f := in.Form
	if !f.Enabled {
		return refused(ErrDisabled())
	}
	v := &values{}
	if p := v.take(in.Values, f); p != nil {
		return refused(p)
	}
	if p := v.takeFiles(in.Uploads, in.Values, f); p != nil {
		return refused(p)
	}
	now := s.now()
	sub := &store.Submission{
		FormID: f.ID, CreatedAt: now, ClientAddr: in.ClientAddr,
		Origin: recordedOrigin(v, in.Origin, in.SelfOrigin, f), UserAgent: truncateUTF8(OneLine(in.UserAgent, 512), 512),
		Fields: v.fields, Files: v.files, Status: store.SubmissionQueued,
	}
	key, err := s.keys.get(ctx, s.settings)
	if err != nil {
		s.log.Error("contact form: time-trap key", "err", err)
		return refused(ErrUnavailable())
	}

	// Spam checks that block quietly: the sender gets the answer of a
	// success and learns nothing; the admin can release the submission.
	if v.honeypot != "" {
		return s.storeBlocked(ctx, f, v, sub, BlockHoneypot)
	}
	verdict, _ := checkToken(key, f.ID, v.token, now)
	if verdict == tokenForged {
		return s.storeBlocked(ctx, f, v, sub, BlockForged)
	}

	if len(nonEmpty(v.fields)) == 0 && len(v.files) == 0 {
		return refused(problem(Empty, http.StatusUnprocessableEntity, "empty", "Your message is empty. Please fill in the form."))
	}
	rt, rtErr := replyTo(v)
	if verdict != tokenOK || rtErr != nil {
		return s.confirm(f, v, sub, key, verdict, rtErr)
	}
	// A token is used once. A post with a used one is a retry (a dropped
	// connection, Send pressed again): it is answered as received, and
	// nothing is stored, counted or sent again. The store refuses it
	// (ErrExists, below: its unique digest also settles a race between
	// two copies in flight); with a captcha it is looked up first, because
	// the captcha's answers are single-use too.
	sub.TokenHash = tokenDigest(v.token)
	if f.CaptchaProvider != "" {
		switch id, err := s.queue.SubmissionByToken(ctx, sub.TokenHash); {
		case err == nil:
			return s.alreadyReceived(f, id, in.ClientAddr, sub.Origin)
		case !errors.Is(err, store.ErrNotFound):
			s.log.Error("contact form: look up token", "form", f.Slug, "err", err)
			return refused(ErrUnavailable())
		}
		if p := s.checkCaptcha(ctx, f, v, in.ClientAddr); p != nil {
			return refused(p)
		}
	}
	if rt != nil {
		sub.ReplyTo = rt.Address
	}
	item, err := compose(f, v, sub, rt, now)
	if err != nil {
		// Only the form's own settings can make this fail.
		s.log.Error("contact form: cannot compose; check the form's settings", "form", f.Slug, "err", err)
		return refused(problem(Misconfigured, http.StatusInternalServerError, "form_misconfigured",
			"Sorry, this form is not set up correctly, so your message was not sent. Please contact the site's owner another way."))
	}
	if p := s.enqueue(ctx, f, sub, item); p != nil {
		if p.Kind == AlreadyReceived {
			id, _ := s.queue.SubmissionByToken(ctx, sub.TokenHash)
			return s.alreadyReceived(f, id, in.ClientAddr, sub.Origin)
		}
		return refused(p)
	}
	s.log.Info("contact form: submission queued", "form", f.Slug, "submission", sub.ID, "outbox", item.ID, "remote", in.ClientAddr)
	if s.kick != nil {
		s.kick.Kick()
	}
	return Outcome{Kind: Stored, SubmissionID: sub.ID, OutboxID: item.ID, Origin: sub.Origin}
}

// enqueue counts the submission against the rate limits and stores it
// with its outbox item, durably, or refuses it (store.EnqueueLimited):
// each limit's counter row is moved by one atomic statement that counts
// only under the limit, so a burst of concurrent posts cannot pass it.
func (s *Service) enqueue(ctx context.Context, f *store.Form, sub *store.Submission, item *store.OutboxItem) *Problem {
	over, err := s.queue.EnqueueLimited(ctx, sub, item, limits(f, sub.ClientAddr), s.now())
	if over != nil {
		return s.rateLimited(f, *over, over.Max)
	}
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			return problem(AlreadyReceived, http.StatusOK, "already_received", AlreadyReceivedMessage)
		}
		s.log.Error("contact form: store submission", "form", f.Slug, "submission_status", sub.Status, "err", err)
		return ErrUnavailable()
	}
	return nil
}

// AlreadyReceivedMessage is what a visitor whose post repeats one
// already stored (the same token) is told.
const AlreadyReceivedMessage = "Thank you! We already have this message (it was received before), so it will not be sent twice."

// alreadyReceived is the outcome of a post whose token was used by the
// stored submission id.
func (s *Service) alreadyReceived(f *store.Form, id int64, addr, origin string) Outcome {
	s.log.Info("contact form: repeated post answered as already received", "form", f.Slug, "submission", id, "remote", addr)
	return Outcome{Kind: AlreadyReceived, SubmissionID: id, Origin: origin}
}

// storeBlocked keeps a submission caught by a spam check, with the reason.
// Its message is composed all the same, so that an admin can release it
// as it is.
func (s *Service) storeBlocked(ctx context.Context, f *store.Form, v *values, sub *store.Submission, reason string) Outcome {
	rt, _ := replyTo(v)
	if rt != nil {
		sub.ReplyTo = rt.Address
	}
	sub.Status, sub.BlockReason = store.SubmissionBlocked, reason
	item, err := compose(f, v, sub, rt, sub.CreatedAt)
	if err != nil {
		s.log.Error("contact form: cannot compose; check the form's settings", "form", f.Slug, "err", err)
		item = nil
	}
	if p := s.enqueue(ctx, f, sub, item); p != nil {
		return refused(p)
	}
	s.log.Warn("contact form: submission blocked", "form", f.Slug, "submission", sub.ID, "reason", reason, "remote", sub.ClientAddr)
	o := Outcome{Kind: Blocked, SubmissionID: sub.ID, BlockReason: reason, Origin: sub.Origin}
	if item != nil {
		o.OutboxID = item.ID
	}
	return o
}

// confirm is the outcome of a submission that needs another step: no
// token yet (a plain form), a token too young or too old, or an email
// address to fix. Its problem is what a script is told; its
// confirmation what a browser is shown.
func (s *Service) confirm(f *store.Form, v *values, sub *store.Submission, key []byte, verdict tokenVerdict, rtErr *Problem) Outcome {
	c := &Confirmation{Status: http.StatusOK, Token: signToken(key, f.ID, s.now()), Origin: sub.Origin}
	p := rtErr
	switch verdict {
	case tokenMissing:
		p = problem(TokenMissing, http.StatusUnprocessableEntity, "token_missing",
			"The form was sent without its token. Please reload the page and try again.")
	case tokenTooFast:
		p = problem(TooFast, http.StatusUnprocessableEntity, "too_fast",
			"That was quick! Please wait a few seconds, then send your message again.")
		// Keep the token: its age keeps growing, so the next press works.
		c.Token = v.token
		c.Notice = "Please take a moment to check your message, then press Send."
	case tokenExpired:
		p = problem(Expired, http.StatusUnprocessableEntity, "expired",
			"This page was open for a long time. Please reload it and send your message again.")
		c.Notice = "This page was open for a long time. Please check your message and press Send again."
	}
	if rtErr != nil {
		c.Status = rtErr.Status
		c.EmailError = rtErr.Message
	}
	for _, fv := range v.fields {
		if fv.Name == FieldEmail && rtErr != nil {
			c.Email, c.EditEmail = fv.Value, true
			continue
		}
		c.Fields = append(c.Fields, fv)
	}
	c.Files = v.files
	if v.captcha != "" {
		c.CaptchaField, c.CaptchaValue = CaptchaField(f.CaptchaProvider), v.captcha
	}
	return Outcome{Kind: p.Kind, Problem: p, Confirm: c, Origin: sub.Origin}
}

// checkCaptcha verifies the captcha answer with the form's provider.
func (s *Service) checkCaptcha(ctx context.Context, f *store.Form, v *values, addr string) *Problem {
	secret, err := s.sealer.Open(f.CaptchaSecretEnc)
	if err != nil {
		s.log.Error("contact form: captcha secret cannot be decrypted; save it again", "form", f.Slug, "err", err)
		return ErrUnavailable()
	}
	ok, err := s.captcha.verify(ctx, f.CaptchaProvider, string(secret), v.captcha, addr)
	if err != nil {
		s.log.Error("contact form: captcha verification", "form", f.Slug, "err", err)
		p := problem(CaptchaUnavailable, http.StatusServiceUnavailable, "captcha_unavailable",
			"Sorry, the anti-spam check is not answering right now, so your message was not sent. Please try again in a few minutes.")
		p.RetryAfter = time.Minute
		return p
	}
	if !ok {
		p := problem(CaptchaFailed, http.StatusUnprocessableEntity, "captcha_failed",
			"The anti-spam check did not pass. Please solve it again, then send your message.")
		p.Field = CaptchaField(f.CaptchaProvider)
		return p
	}
	return nil
}

// rateKey is the throttling key of a client address: IPv4 addresses as
// they are, IPv6 addresses by their /64 (one host usually has a whole
// /64 to pick from).
func rateKey(addr string) string {
	ip := net.ParseIP(addr)
	if ip == nil {
		return "contact:addr:" + addr
	}
	if ip.To4() != nil {
		return "contact:addr:" + ip.String()
	}
	return "contact:addr:" + ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

func formRateKey(id int64) string { return "contact:form:" + strconv.FormatInt(id, 10) }

// limits are the form's per-address and per-form limits (a Max of 0 is
// no limit).
func limits(f *store.Form, addr string) []store.Limit {
	return []store.Limit{{Key: rateKey(addr), Max: f.RatePerAddr, Window: RateWindow}, {Key: formRateKey(f.ID), Max: f.RatePerForm, Window: RateWindow}}
}

// rateLimited is the problem of a submission over limit l.
func (s *Service) rateLimited(f *store.Form, l store.Limit, count int) *Problem {
	msg := "This form has received many messages in the last hour. Please try again later."
	if l.Key != formRateKey(f.ID) {
		msg = "You have sent several messages in a short time. Please wait a while before sending another one."
	}
	window := int(RateWindow.Seconds())
	retry := min(max(window/l.Max, 60), window)
	s.log.Warn("contact form: rate limited", "form", f.Slug, "key", l.Key, "count", count, "limit", l.Max)
	p := problem(RateLimited, http.StatusTooManyRequests, "rate_limited", msg)
	p.RetryAfter = time.Duration(retry) * time.Second
	return p
}

// recordedOrigin is the origin kept with a submission: the Origin header,
// or, for a post from sockmail's confirmation page, the site's origin the
// page carried (when the form accepts it).
func recordedOrigin(v *values, origin string, self bool, f *store.Form) string {
	if self {
		if o, err := NormalizeOrigin(v.origin); err == nil && (len(f.AllowedOrigins) == 0 || Allowed(f, o)) {
			return o
		}
	}
	return truncateUTF8(OneLine(origin, 200), 200)
}

// Allowed reports whether origin is one of the form's allowed origins.
func Allowed(f *store.Form, origin string) bool {
	if origin == "" {
		return false
	}
	for _, o := range f.AllowedOrigins {
		if o == origin {
			return true
		}
	}
	return false
}

// nonEmpty returns the fields that hold something.
func nonEmpty(fields []store.FieldValue) []store.FieldValue {
	var out []store.FieldValue
	for _, f := range fields {
		if strings.TrimSpace(f.Value) != "" {
			out = append(out, f)
		}
	}
	return out
}
