package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/labstack/echo/v4"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/metrics"
)

// MaxBodyBytes is the largest request body the service reads.
const MaxBodyBytes = 1 << 20

// MaxURLBytes is the longest request target (path and query) the service
// reads; a longer one is a 414.
const MaxURLBytes = 8 << 10

type ctxKey int

const (
	requestIDKey ctxKey = iota
	projectKey
	rawBodyKey
	authorizationKey
)

// requestIDMiddleware takes X-Request-Id from the request when it is sane,
// makes one otherwise, and sets it on the response and the context.
func requestIDMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		c.Set("request_id", id)
		req := c.Request()
		c.SetRequest(req.WithContext(context.WithValue(req.Context(), requestIDKey, id)))
		return next(c)
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func requestID(c echo.Context) string {
	if id, ok := c.Get("request_id").(string); ok {
		return id
	}
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

// recoverMiddleware turns a panic into a logged internal error.
func recoverMiddleware(logger *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r)
					}
					logger.Error("panic", "request_id", requestID(c), "route", c.Path(),
						"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					err = billing.Errorf(billing.EINTERNAL, "Internal error.")
				}
			}()
			return next(c)
		}
	}
}

// logMiddleware writes one structured line per request: never headers,
// bodies or query strings, which can carry secrets or emails.
func logMiddleware(logger *slog.Logger, now func() time.Time, m *metrics.Metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			elapsed := now().Sub(start)
			if m != nil {
				route := c.Path()
				if route == "" || c.Response().Status == http.StatusRequestURITooLong {
					route = "unmatched"
				}
				m.ObserveRequest(route, methodLabel(c.Request().Method), c.Response().Status, elapsed)
			}
			attrs := []slog.Attr{
				slog.String("request_id", requestID(c)),
				slog.String("method", methodLabel(c.Request().Method)),
				slog.String("route", c.Path()),
				slog.Int("status", c.Response().Status),
				slog.Float64("latency_ms", float64(elapsed.Microseconds())/1000),
			}
			if p := projectFromContext(c.Request().Context()); p != nil {
				attrs = append(attrs, slog.String("project_id", p.ID))
			}
			logger.LogAttrs(c.Request().Context(), slog.LevelInfo, "request", attrs...)
			return nil
		}
	}
}

// standardMethods are the methods of RFC 9110 (and PATCH). Any other is a
// 405, and is counted under one label, so that made-up methods grow
// neither the router's work nor the metrics.
var standardMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodConnect: true,
	http.MethodOptions: true, http.MethodTrace: true,
}

// methodLabel returns the method, or "other" for a non-standard one.
func methodLabel(m string) string {
	if standardMethods[m] {
		return m
	}
	return "other"
}

// requestLineMiddleware refuses, before routing, a request target over
// MaxURLBytes (414). A method outside standardMethods is a 405 on any path:
// Echo answers it so (with Allow) on a path it knows, and this turns its
// 404 for an unknown path into a 405 too.
func requestLineMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if len(req.RequestURI) > MaxURLBytes || len(req.URL.RawQuery)+len(req.URL.Path) > MaxURLBytes {
			return billing.Errorf(billing.EURITOOLONG, "The request URL is longer than 8 KiB.")
		}
		err := next(c)
		var he *echo.HTTPError
		if !standardMethods[req.Method] && errors.As(err, &he) && he.Code == http.StatusNotFound {
			return billing.Errorf(billing.EMETHOD, "The method is not allowed.")
		}
		return err
	}
}

// bodyLimitMiddleware answers 413 for a declared length over the limit and
// caps the reader for bodies that do not declare one.
func bodyLimitMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength > MaxBodyBytes {
			return billing.Errorf(billing.ETOOLARGE, "Request body is larger than 1 MiB.")
		}
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = http.MaxBytesReader(c.Response(), req.Body, MaxBodyBytes)
		}
		return next(c)
	}
}

func projectFromContext(ctx context.Context) *billing.Project {
	p, _ := ctx.Value(projectKey).(*billing.Project)
	return p
}

func rawBodyFromContext(ctx context.Context) []byte {
	b, _ := ctx.Value(rawBodyKey).([]byte)
	return b
}
