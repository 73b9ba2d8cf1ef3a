package server

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
	"github.com/swaggest/swgui/v5emb"

	billing "github.com/stackfordevs/billing"
)

// rootPage is what GET / shows a person: where the documentation and the
// setup page are.
const rootPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Billing service</title>
<style>body{font:16px/1.5 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;max-width:40em;margin:3em auto;padding:0 1em;color:#1a1f36}a{color:#635bff}</style>
</head><body>
<h1>Billing service</h1>
<p>This service takes payments and runs subscriptions through your own Stripe account.</p>
<ul>
<li><a href="/docs">/docs</a>: the API reference, to try every endpoint (<a href="/openapi.yaml">openapi.yaml</a>, <a href="/openapi.json">openapi.json</a>)</li>
<li><a href="/setup">/setup</a>: sign in with a project's credentials to set its Stripe keys and buyer-token settings</li>
</ul>
</body></html>
`

// rootLinks is GET / for a client that does not ask for HTML.
type rootLinks struct {
	Service string `json:"service"`
	Docs    string `json:"docs"`
	Setup   string `json:"setup"`
	OpenAPI string `json:"openapi"`
}

// opsRoutes adds the root page, the spec, Swagger UI and metrics routes.
// Both spec documents are openapi.yaml: the JSON one is the same document
// as loaded, so their operationIds agree.
func (s *Server) opsRoutes(e *echo.Echo, spec *openapi3.T, metricsHandler http.Handler, metricsToken string) error {
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	e.GET("/", func(c echo.Context) error {
		if strings.Contains(c.Request().Header.Get(echo.HeaderAccept), "text/html") {
			return c.HTML(http.StatusOK, rootPage)
		}
		writeJSON(c, http.StatusOK, rootLinks{Service: "billing", Docs: "/docs", Setup: "/setup", OpenAPI: "/openapi.yaml"})
		return nil
	})
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
		e.GET("/metrics", echo.WrapHandler(metricsHandler), metricsAuth(metricsToken))
	}
	return nil
}

// metricsAuth requires `Authorization: Bearer <token>` when a token is set;
// a refusal is the usual error envelope, with its request id.
func metricsAuth(token string) echo.MiddlewareFunc {
	want := []byte("Bearer " + token)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if token != "" && subtle.ConstantTimeCompare([]byte(c.Request().Header.Get(echo.HeaderAuthorization)), want) != 1 {
				return billing.Errorf(billing.EUNAUTHORIZED, "Invalid metrics token.")
			}
			return next(c)
		}
	}
}
