// Package httpapi is the HTTP contract of services/CONTRACT.md: routes, request checks, the
// error body. JSON in and out is go-json-experiment/json's. It knows the model via Predictor.
package httpapi

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"onnx-serving-study/go-api-onnx/internal/model"
)

// Predictor is what the API needs from the model (a *model.Classifier in production).
type Predictor interface {
	Predict(values []float32, rows int) ([]model.Prediction, error)
	Features() []string
	Labels() []string
	SHA256() string
}

// Options tune the router; the zero value is usable.
type Options struct {
	// Runtime is the /healthz "runtime" text, e.g. "onnxruntime 1.31.1 (onnxruntime_go)".
	Runtime string
	// RequestTimeout bounds a request inside the handler (chi's Timeout: 504 if it expires
	// before the response is written). 0 means 30 s: far above any latency objective, so it
	// only cuts requests that a client has long given up on.
	RequestTimeout time.Duration
	// Middleware runs inside the router, so it can see the matched route (telemetry).
	Middleware []func(http.Handler) http.Handler
	Logger     *slog.Logger
}

// routes maps each path to the one method it serves: the 405 answer's Allow header.
var routes = map[string]string{
	"/predict":       http.MethodPost,
	"/predict/batch": http.MethodPost,
	"/healthz":       http.MethodGet,
}

type api struct {
	predictor Predictor
	features  []string
	labels    []string
	health    any
	logger    *slog.Logger
}

// NewRouter builds the service's handler.
func NewRouter(p Predictor, opts Options) http.Handler {
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &api{
		predictor: p,
		features:  p.Features(),
		labels:    p.Labels(),
		health: struct {
			Status      string `json:"status"`
			ModelSHA256 string `json:"model_sha256"`
			Runtime     string `json:"runtime"`
		}{"ok", p.SHA256(), opts.Runtime},
		logger: opts.Logger,
	}

	r := chi.NewRouter()
	r.Use(
		middleware.RequestID,
		middleware.Recoverer,       // last-resort net for panics in the middleware below
		a.recoverWithContractError, // handler panics: a logged 500 with the contract body
		middleware.Timeout(opts.RequestTimeout),
	)
	r.Use(opts.Middleware...)
	r.NotFound(a.notFound)
	r.MethodNotAllowed(a.methodNotAllowed)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, a.health) })
	r.Post("/predict", a.predict(false))
	r.Post("/predict/batch", a.predict(true))
	return r
}

func (a *api) notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, &Error{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
}

// methodNotAllowed also receives requests whose method chi does not know at all (e.g.
// "FOO /nope"); the contract checks the route first, so an unknown path stays a 404.
func (a *api) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	allowed, known := routes[r.URL.Path]
	if !known {
		a.notFound(w, r)
		return
	}
	w.Header().Set("Allow", allowed)
	writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: fmt.Sprintf("method %s is not allowed on %s: use %s", r.Method, r.URL.Path, allowed)})
}

func (a *api) predict(batch bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, apiErr := a.decode(r, batch)
		if apiErr != nil {
			writeError(w, apiErr)
			return
		}
		if r.Context().Err() != nil {
			return // timed out while queued: chi's Timeout answers 504, skip the inference
		}
		predictions, err := a.predictor.Predict(req.Values, req.Rows)
		if err != nil {
			a.internalError(w, r, err)
			return
		}
		if e := unscorable(predictions, batch); e != nil {
			writeError(w, e)
			return
		}
		writePredictions(w, a.labels, predictions, batch)
	}
}

// unscorable is the contract's row 11: the graph computes in float32, so features near the
// float32 maximum overflow to NaN probabilities; that is answered with a 422, never with NaN
// (which is not JSON). In a batch the lowest such index is named.
func unscorable(predictions []model.Prediction, batch bool) *Error {
	for i, p := range predictions {
		for _, prob := range p.Probabilities {
			if math.IsNaN(float64(prob)) || math.IsInf(float64(prob), 0) {
				if !batch {
					i = -1
				}
				return validation(itemPath(i, ""), "the model cannot score this instance: its features are so large that the model's float32 arithmetic overflows")
			}
		}
	}
	return nil
}

// decode applies checks 3 (media type) and 4 (size, before reading more than the limit), then
// DecodePredictRequest's 5–10.
func (a *api) decode(r *http.Request, batch bool) (Request, *Error) {
	// application/json with any parameters (e.g. charset=utf-8), case-insensitively
	if mediaType, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(mediaType), "application/json") {
		return Request{}, &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Message: fmt.Sprintf("Content-Type must be application/json, got %q", r.Header.Get("Content-Type"))}
	}
	if r.ContentLength > MaxBodyBytes {
		return Request{}, tooLarge()
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1)) // +1: DecodePredictRequest's 413
	if err != nil && len(body) <= MaxBodyBytes {
		return Request{}, invalidJSON(fmt.Errorf("the body could not be read completely (%v)", err))
	}
	return DecodePredictRequest(body, batch, a.features)
}

func (a *api) internalError(w http.ResponseWriter, r *http.Request, err error) {
	a.logger.Error("internal error", "error", err, "method", r.Method, "path", r.URL.Path,
		"request_id", middleware.GetReqID(r.Context()))
	writeError(w, &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error; the request id is in the server log"})
}

func (a *api) recoverWithContractError(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if rvr := recover(); rvr != nil {
				if rvr == http.ErrAbortHandler {
					panic(rvr)
				}
				a.internalError(w, r, fmt.Errorf("panic: %v\n%s", rvr, debug.Stack()))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type prediction struct {
	Label         string        `json:"label"`
	ClassID       int           `json:"class_id"`
	Probabilities probabilities `json:"probabilities"`
}

// probabilities is a JSON object with the manifest's labels in manifest order. Its method has
// a pointer receiver (no copy per call): marshal a *prediction or a slice of them, never a value.
type probabilities struct {
	labels []string
	values []float32
}

func (p *probabilities) MarshalJSONTo(enc *jsontext.Encoder) error {
	err := enc.WriteToken(jsontext.BeginObject)
	for i, label := range p.labels {
		err = errors.Join(err, enc.WriteToken(jsontext.String(label)), enc.WriteToken(jsontext.Float(float64(p.values[i]))))
	}
	return errors.Join(err, enc.WriteToken(jsontext.EndObject))
}

// writePredictions answers 200 with one prediction (/predict) or {"predictions": [...]}.
func writePredictions(w http.ResponseWriter, labels []string, predictions []model.Prediction, batch bool) {
	out := make([]prediction, len(predictions))
	for i, p := range predictions {
		out[i] = prediction{labels[p.ClassID], p.ClassID, probabilities{labels, p.Probabilities}}
	}
	if batch {
		writeJSON(w, http.StatusOK, map[string][]prediction{"predictions": out})
	} else {
		writeJSON(w, http.StatusOK, &out[0])
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v) // only the types above: fails only on a NaN, which row 11 rules out
	if err != nil {
		body, status = []byte(`{"error":{"code":"internal","message":"response not encodable"}}`), http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, map[string]*Error{"error": e})
}
