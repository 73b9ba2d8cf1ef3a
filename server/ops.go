package server

import (
	"encoding/json"
	"net/http"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
	"github.com/swaggest/swgui/v5emb"

	billing "github.com/stackfordevs/billing"
)

// opsRoutes adds the spec, Swagger UI and metrics routes.
func (s *Server) opsRoutes(e *echo.Echo, spec *openapi3.T, metricsHandler http.Handler) error {
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	e.GET("/openapi.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/json", specJSON)
	})
	e.GET("/openapi.yaml", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", billing.OpenAPIYAML)
	})
	docs := v5emb.New("Billing Service API", "/openapi.json", "/docs/")
	e.GET("/docs", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/docs/") })
	e.GET("/docs/*", echo.WrapHandler(docs))
	if metricsHandler != nil {
		e.GET("/metrics", echo.WrapHandler(metricsHandler))
	}
	return nil
}
