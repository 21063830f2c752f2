package handlers

import (
	"github.com/labstack/echo/v4"

	"sockmail/internal/api"
)

// metricsRoute adds GET /metrics (when the handler has metrics): the
// Prometheus exposition, for an API token with the metrics (or admin)
// scope; errors as problem details, like the API's. A separate listen
// address without a token is serve's (SOCKMAIL_METRICS_ADDR).
func (h *Handler) metricsRoute(site *echo.Group) {
	if h.metrics == nil {
		return
	}
	site.GET("/metrics", echo.WrapHandler(h.metrics), h.apiProblems, noStore, h.limitBody(apiBodyLimit), h.apiAuth, apiScope(api.ScopeMetrics))
}
