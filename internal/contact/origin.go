package contact

import (
	"fmt"
	"net/url"
	"strings"
)

// NormalizeOrigin returns the serialized origin of an http(s) URL,
// "scheme://host[:port]" as browsers send it: lower case, default port
// dropped.
func NormalizeOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("contact: origin: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("contact: not an http(s) origin: %q", s)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "80" && scheme == "http" || port == "443" && scheme == "https" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}
