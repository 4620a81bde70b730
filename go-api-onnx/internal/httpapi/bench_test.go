package httpapi

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// discardWriter is a ResponseWriter that keeps nothing: the benchmarks measure the handler,
// not httptest's recorder.
type discardWriter struct{ header http.Header }

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkRouter is one POST /predict through the whole router per stage (the overhead
// ladder in process, without the socket): go test -run '^$' -bench Router -benchmem.
func BenchmarkRouter(b *testing.B) {
	_, c := realRouter(b)
	const body = `{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}`
	for _, stage := range []string{"noop", "parse", "full"} {
		h := NewRouter(c, Options{Stage: stage, Fixed: c.Warmup()})
		b.Run(stage, func(b *testing.B) {
			w := &discardWriter{header: http.Header{}}
			target, header := &url.URL{Path: "/predict"}, http.Header{"Content-Type": {"application/json"}}
			for b.Loop() {
				r := &http.Request{Method: "POST", URL: target, Header: header, ContentLength: int64(len(body)),
					Body: io.NopCloser(strings.NewReader(body))}
				clear(w.header)
				h.ServeHTTP(w, r)
			}
		})
	}
}

func BenchmarkDecodeSingle(b *testing.B) {
	body := []byte(`{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}`)
	for b.Loop() {
		if _, err := DecodePredictRequest(body, false, irisFeatures); err != nil {
			b.Fatal(err)
		}
	}
}
