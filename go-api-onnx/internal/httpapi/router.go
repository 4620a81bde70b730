// Package httpapi is the HTTP contract of services/CONTRACT.md: routes, request checks, the
// error body. JSON is read with go-json-experiment/json's jsontext; predictions are rendered
// from pieces encoded at start-up (renderer), errors and /healthz by its json.Marshal. It
// knows the model via Predictor.
package httpapi

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"onnx-serving-study/go-api-onnx/internal/model"
)

// Predictor is what the API needs from the model (a *model.Classifier in production).
type Predictor interface {
	Predict(values []float64, rows int) ([]model.Prediction, error)
	Features() []string
	Labels() []string
	SHA256() string
}

// Options tune the router; the zero value is usable.
type Options struct {
	// Runtime is the /healthz "runtime" text, e.g. "onnxruntime 1.31.1 (onnxruntime_go)".
	Runtime string
	// Middleware runs inside the router, so it can see the matched route (telemetry).
	Middleware []func(http.Handler) http.Handler
	Logger     *slog.Logger
	// AccessLog installs chi's middleware.Logger, a line per request on stdout (ACCESS_LOG=1,
	// as the original post had).
	AccessLog bool
	// Stage is PREDICT_STAGE, the overhead ladder's rung: "" or "full" (the contract),
	// "parse" (read, parse and validate exactly as full — every error answer the same — then
	// answer Fixed, once per instance, without the model) or "noop" (read the body, never
	// look at it, answer Fixed; a batch gets one). Fixed is the start-up warm-up prediction.
	Stage string
	Fixed model.Prediction
	// Startup is /healthz's "startup": wall-clock times of the start-up's steps, read at each
	// request (main sets Listening before it serves). Nil leaves it out.
	Startup *Startup
}

// Startup holds unix seconds: when main began (Go has no import phase to speak of), when the
// model was verified, loaded and had answered its warm-up (ONNX Runtime's library is loaded
// in that step), and when the socket was listening.
type Startup struct {
	ImportsDone float64 `json:"imports_done_unix"`
	ModelLoaded float64 `json:"model_loaded_unix"`
	Listening   float64 `json:"listening_unix"`
}

// Framework is /healthz's "framework": how this service's HTTP layer is written.
const Framework = "chi"

// Routes are the paths the router serves (for the telemetry's http.route).
func Routes() []string { return slices.Collect(maps.Keys(routes)) }

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
	render    renderer
	health    any
	logger    *slog.Logger
}

// NewRouter builds the service's handler.
func NewRouter(p Predictor, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &api{
		predictor: p,
		features:  p.Features(),
		labels:    p.Labels(),
		render:    newRenderer(p.Labels()),
		health: struct {
			Status       string   `json:"status"`
			ModelSHA256  string   `json:"model_sha256"`
			Runtime      string   `json:"runtime"`
			Framework    string   `json:"framework"`
			PredictStage string   `json:"predict_stage,omitempty"` // only when not full
			Startup      *Startup `json:"startup,omitempty"`
		}{"ok", p.SHA256(), opts.Runtime, Framework, strings.TrimPrefix(opts.Stage, "full"), opts.Startup},
		logger: opts.Logger,
	}

	r := chi.NewRouter()
	// No RequestID and no Timeout on the hot path, measured: together they cost ~5 µs of the
	// ~24 µs a noop request costs over the socket (two request copies, a timer context, a
	// formatted id: services/CONTRACT.md, last section). The id is only ever seen next to an
	// access log line, so it comes with the access log; and a 30 s handler timeout cannot
	// cut anything here (the handler never waits: the model runs in microseconds and cannot
	// be interrupted), while the server's own timeouts bound slow clients.
	if opts.AccessLog {
		r.Use(middleware.RequestID, middleware.Logger)
	}
	r.Use(
		middleware.Recoverer,       // last-resort net for panics in the middleware below
		a.recoverWithContractError, // handler panics: a logged 500 with the contract body
	)
	r.Use(opts.Middleware...)
	r.NotFound(a.notFound)
	r.MethodNotAllowed(a.methodNotAllowed)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, a.health) })
	handler := a.predict
	switch opts.Stage {
	case "parse":
		handler = a.parseOnly(opts.Fixed)
	case "noop":
		handler = a.noop(opts.Fixed)
	}
	r.Post("/predict", handler(false))
	r.Post("/predict/batch", handler(true))
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
			return // the client went away while the request waited: skip the inference
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
		a.render.write(w, batch, len(predictions), func(b []byte, i int) []byte { return a.render.appendPrediction(b, predictions[i]) })
	}
}

// parseOnly is the stage "parse": every check of full, then the fixed prediction, once per
// instance.
func (a *api) parseOnly(fixed model.Prediction) func(batch bool) http.HandlerFunc {
	one := a.render.appendPrediction(nil, fixed)
	return func(batch bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			req, apiErr := a.decode(r, batch)
			if apiErr != nil {
				writeError(w, apiErr)
				return
			}
			a.render.write(w, batch, req.Rows, func(b []byte, _ int) []byte { return append(b, one...) })
		}
	}
}

// noop is the stage "noop": the body is read off the socket under the contract's limit (a
// larger one is a 413, as in full) and never looked at; the answer is the fixed prediction
// (a batch gets one).
func (a *api) noop(fixed model.Prediction) func(batch bool) http.HandlerFunc {
	one := a.render.appendPrediction(nil, fixed)
	return func(batch bool) http.HandlerFunc {
		body := one
		if batch {
			body = slices.Concat([]byte(batchHead), one, []byte(batchTail))
		}
		return func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > MaxBodyBytes {
				writeError(w, tooLarge())
				return
			}
			n, err := io.Copy(io.Discard, io.LimitReader(r.Body, MaxBodyBytes+1))
			switch {
			case n > MaxBodyBytes:
				writeError(w, tooLarge())
			case err != nil:
				writeError(w, readError(err))
			default:
				writeBody(w, http.StatusOK, body)
			}
		}
	}
}

// unscorable is the contract's row 11: the graph computes in float32, so features near the
// float32 maximum overflow to NaN probabilities; that is answered with a 422, never with NaN
// (which is not JSON). In a batch the lowest such index is named.
func unscorable(predictions []model.Prediction, batch bool) *Error {
	for i, p := range predictions {
		for _, prob := range p.Probabilities {
			if math.IsNaN(prob) || math.IsInf(prob, 0) {
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
	return ReadPredictRequest(r.Body, batch, a.features)
}

func (a *api) internalError(w http.ResponseWriter, r *http.Request, err error) {
	a.logger.Error("internal error", "error", err, "method", r.Method, "path", r.URL.Path,
		"request_id", middleware.GetReqID(r.Context())) // with ACCESS_LOG=1, as in its line
	writeError(w, &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error; the cause is in the server log"})
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

const (
	batchHead = `{"predictions":[`
	batchTail = `]}`
)

// renderer writes predictions as JSON text from pieces encoded once at start-up (each label's
// `{"label":…,"class_id":…,"probabilities":{` head and its `"label":` key) and strconv's
// shortest float text, into a pooled buffer: the JSON document json.Marshal of the contract's
// shape gives, key order included (tests compare the two; only a number's text may differ,
// 1e-05 for 0.00001), without reflection or an encoder per call.
type renderer struct {
	heads, keys [][]byte
}

func newRenderer(labels []string) renderer {
	var r renderer
	for classID, label := range labels {
		quoted, _ := jsontext.AppendQuote(nil, label) // a manifest label is valid UTF-8 text
		r.heads = append(r.heads, fmt.Appendf(nil, `{"label":%s,"class_id":%d,"probabilities":{`, quoted, classID))
		r.keys = append(r.keys, append(quoted, ':'))
	}
	return r
}

var responseBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// write answers 200 with n items rendered by item: one object, or {"predictions": [...]}.
func (r renderer) write(w http.ResponseWriter, batch bool, n int, item func(b []byte, i int) []byte) {
	buffer := responseBuffers.Get().(*[]byte)
	b := (*buffer)[:0]
	if batch {
		b = append(b, batchHead...)
	}
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = item(b, i)
	}
	if batch {
		b = append(b, batchTail...)
	}
	writeBody(w, http.StatusOK, b)
	if *buffer = b; cap(b) <= 4*MaxBodyBytes { // a full batch answer (~170 KiB) is let go
		responseBuffers.Put(buffer)
	}
}

// appendPrediction appends one prediction: probabilities in manifest label order, finite (row
// 11 answered the rest).
func (r renderer) appendPrediction(b []byte, p model.Prediction) []byte {
	b = append(b, r.heads[p.ClassID]...)
	for i, probability := range p.Probabilities {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(append(b, r.keys[i]...), probability, 'g', -1, 64)
	}
	return append(b, "}}"...)
}

var jsonContentType = []string{"application/json"}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType // canonical keys set directly: no per-call canonicalising
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeJSON answers the health and error bodies (not on the hot path).
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v) // strings only: cannot fail
	if err != nil {
		body, status = []byte(`{"error":{"code":"internal","message":"response not encodable"}}`), http.StatusInternalServerError
	}
	writeBody(w, status, body)
}

// writeError answers a contract error. A client abort (499) is not answered: the handler is
// aborted with http.ErrAbortHandler, which net/http takes as "close the connection, log
// nothing", and the telemetry's recorder counts the request as 499.
func writeError(w http.ResponseWriter, e *Error) {
	if e.Status == StatusClientClosedRequest {
		panic(http.ErrAbortHandler)
	}
	writeJSON(w, e.Status, map[string]*Error{"error": e})
}
