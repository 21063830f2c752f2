package contact

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"sockmail/internal/store"
)

// Captcha providers verified server-side. The widget on the site's page
// adds its answer to the form (cf-turnstile-response, h-captcha-response);
// sockmail posts it with the form's secret to the provider's siteverify
// endpoint and accepts the submission only on {"success": true}.

// DefaultVerifyURLs returns the providers' verification endpoints.
func DefaultVerifyURLs() map[string]string {
	return map[string]string{
		store.CaptchaTurnstile: "https://challenges.cloudflare.com/turnstile/v0/siteverify",
		store.CaptchaHCaptcha:  "https://api.hcaptcha.com/siteverify",
	}
}

// CaptchaTimeout bounds one verification.
const CaptchaTimeout = 10 * time.Second

// captchaVerifier checks captcha answers with the providers.
type captchaVerifier struct {
	client *http.Client
	urls   map[string]string
}

// verify asks provider whether response is a solved captcha. It returns
// false for a wrong or reused answer, and an error when the provider could
// not be asked (network, unexpected reply).
func (v *captchaVerifier) verify(ctx context.Context, provider, secret, response, remoteIP string) (bool, error) {
	endpoint := v.urls[provider]
	if endpoint == "" {
		return false, fmt.Errorf("contact: captcha: unknown provider %q", provider)
	}
	if response == "" {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, CaptchaTimeout)
	defer cancel()
	form := url.Values{"secret": {secret}, "response": {response}}
	if remoteIP != "" {
		form.Set("remoteip", remoteIP)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return false, fmt.Errorf("contact: captcha: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("contact: captcha: %s: %w", provider, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("contact: captcha: %s answered HTTP %d", provider, resp.StatusCode)
	}
	var out struct {
		Success    bool     `json:"success"`
		ErrorCodes []string `json:"error-codes"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return false, fmt.Errorf("contact: captcha: %s: reading the answer: %w", provider, err)
	}
	for _, code := range out.ErrorCodes {
		// The form's secret is wrong: the admin must fix it; the visitor
		// cannot. Report it as an outage, not as a failed captcha.
		if code == "invalid-input-secret" || code == "missing-input-secret" {
			return false, fmt.Errorf("contact: captcha: %s refuses the form's secret (%s)", provider, code)
		}
	}
	return out.Success, nil
}
