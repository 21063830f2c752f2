package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"sockmail/internal/api"
)

// metricsRoute adds GET /metrics: the Prometheus exposition, for an API
// token with the metrics (or admin) scope; errors as problem details,
// like the API's; 404 when the handler has no metrics (Deps.Metrics).
// A separate listen address without a token is serve's
// (SOCKMAIL_METRICS_ADDR).
func (h *Handler) metricsRoute(site *echo.Group) {
	site.GET("/metrics", h.serveMetrics, h.apiProblems, noStore, h.limitBody(apiBodyLimit), h.apiAuth, apiScope(api.ScopeMetrics))
}

func (h *Handler) serveMetrics(c echo.Context) error {
	if h.metrics == nil {
		return echo.NewHTTPError(http.StatusNotFound, "This instance serves no metrics.")
	}
	h.metrics.ServeHTTP(c.Response(), c.Request())
	return nil
}
