package handlers

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// hostPolicy says which Host headers the app answers, against DNS
// rebinding: a page on an attacker's domain whose name is made to resolve
// to sockmail's address would otherwise be same-origin with it (its
// Origin matches its Host) and could sign up, sign in or read pages. A
// request is answered only when its Host is
//   - the base URL's host and port (SOCKMAIL_BASE_URL; a missing port is
//     the scheme's default), or
//   - the address the request came in on (the listen address, or for a
//     wildcard listen the interface's address) as an IP literal with its
//     port, or, when that address is loopback, any loopback IP or
//     "localhost" with the same port.
//
// An IP literal cannot be rebound and "localhost" is resolved by the
// browser itself, so neither lets another site in. Names are compared
// without regard to case or a trailing dot.
type hostPolicy struct {
	// baseHost and basePort are the base URL's; baseHost is "" when
	// there is none.
	baseHost, basePort string
}

// newHostPolicy reads the base URL (may be empty).
func newHostPolicy(baseURL string) (hostPolicy, error) {
	if baseURL == "" {
		return hostPolicy{}, nil
	}
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return hostPolicy{}, fmt.Errorf("handlers: base URL %q: want an absolute http:// or https:// URL", baseURL)
	}
	port := u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	return hostPolicy{baseHost: normHost(u.Hostname()), basePort: port}, nil
}

// defaultPort is the port a browser leaves out of Host for scheme.
func defaultPort(scheme string) string {
	if strings.EqualFold(scheme, "https") {
		return "443"
	}
	return "80"
}

// normHost is a host name or IP as compared: lower case, no brackets,
// no trailing dot.
func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}

// splitHost splits a Host header into a normalised host and a port,
// defaultPort when it has none. ok is false when it does not parse.
func splitHost(hostHeader, defaultPort string) (host, port string, ok bool) {
	if hostHeader == "" {
		return "", "", false
	}
	host, port, err := net.SplitHostPort(hostHeader)
	if err != nil {
		// No port: a name, an IPv4 address or a bracketed IPv6 address.
		if strings.Contains(strings.Trim(hostHeader, "[]"), ":") && !strings.HasPrefix(hostHeader, "[") {
			return "", "", false
		}
		host, port = hostHeader, defaultPort
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil || host == "" {
		return "", "", false
	}
	return normHost(host), port, true
}

// allows reports whether the app answers r, which came in on local (nil
// when unknown).
func (p hostPolicy) allows(r *http.Request, local net.Addr) bool {
	if p.baseHost != "" {
		if host, port, ok := splitHost(r.Host, p.basePort); ok && host == p.baseHost && port == p.basePort {
			return true
		}
	}
	if local == nil {
		return false
	}
	la, err := netip.ParseAddrPort(local.String())
	if err != nil {
		return false
	}
	localPort := strconv.Itoa(int(la.Port()))
	def := "80"
	if r.TLS != nil {
		def = "443"
	}
	host, port, ok := splitHost(r.Host, def)
	if !ok || port != localPort {
		return false
	}
	localIP := la.Addr().Unmap().WithZone("")
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap().WithZone("")
		return ip == localIP || (ip.IsLoopback() && localIP.IsLoopback())
	}
	return host == "localhost" && localIP.IsLoopback()
}

// maxShownHost bounds the Host quoted back on the refusal page.
const maxShownHost = 100

// checkHost refuses, with 421 Misdirected Request, a request whose Host
// is not one the app answers (hostPolicy). Every route but /healthz has
// it.
func (h *Handler) checkHost(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		if h.hosts.allows(r, local) {
			return next(c)
		}
		shown := r.Host
		if len(shown) > maxShownHost {
			shown = shown[:maxShownHost] + "..."
		}
		shown = strings.Trim(strconv.QuoteToASCII(shown), `"`)
		localStr := ""
		if local != nil {
			localStr = local.String()
		}
		h.log.Warn("request for another host name refused (DNS rebinding, or SOCKMAIL_BASE_URL not set to the address in use)",
			"host", shown, "base_url", h.baseURL, "local", localStr, "path", r.URL.Path, "remote", c.RealIP())
		return echo.NewHTTPError(http.StatusMisdirectedRequest, fmt.Sprintf(
			"This sockmail does not answer to the address \"%s\". If that is the address you use, set SOCKMAIL_BASE_URL to it "+
				"(for example SOCKMAIL_BASE_URL=http://%s) and restart sockmail; otherwise open sockmail at the address SOCKMAIL_BASE_URL names. "+
				"Requests for other host names are refused so that no other web site can reach sockmail through DNS rebinding.",
			shown, shown))
	}
}
