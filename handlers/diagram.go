package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"sockmail/views"
)

// diagramRoutes registers the sequence diagram of a send (admins only).
func (h *Handler) diagramRoutes(a *echo.Group) {
	a.GET("/sends/:id/diagram", h.sendDiagram)
}

// sendDiagram answers the SVG sequence diagram of a send as it stands:
// the events so far while it runs here (the live transcript), else the
// stored ones with the failure marked. The result page's script swaps it
// in as lines arrive.
func (h *Handler) sendDiagram(c echo.Context) error {
	snd, ls, err := h.loadSend(c)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.DiagramSVG(views.NewDiagram(views.DiagramFor(resultView(snd, ls)))))
}
