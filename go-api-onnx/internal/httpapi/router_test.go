package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"onnx-serving-study/go-api-onnx/internal/model"
	"onnx-serving-study/go-api-onnx/internal/testenv"
)

var (
	classifierOnce sync.Once
	classifier     *model.Classifier
	classifierErr  error
)

// realRouter serves the real model.onnx through a real ORT session.
func realRouter(t testing.TB) (http.Handler, *model.Classifier) {
	t.Helper()
	a := testenv.FindArtifacts(t)
	lib := testenv.OrtLibrary(t)
	classifierOnce.Do(func() {
		if _, classifierErr = model.InitRuntime(lib); classifierErr != nil {
			return
		}
		var m *model.Manifest
		if m, classifierErr = model.LoadManifest(a.Manifest); classifierErr != nil {
			return
		}
		classifier, classifierErr = model.Load(a.Model, m, model.Options{IntraOpThreads: 1})
	})
	if classifierErr != nil {
		t.Fatal(classifierErr)
	}
	return NewRouter(classifier, Options{Runtime: "onnxruntime test"}), classifier
}

func do(h http.Handler, method, path, contentType, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

type errorResponse struct {
	Error struct {
		Code    string  `json:"code"`
		Message string  `json:"message"`
		Field   *string `json:"field"`
	} `json:"error"`
}

func TestContractErrors(t *testing.T) {
	h, _ := realRouter(t)
	const js = "application/json"
	big := `{"sepal_length": 1` + strings.Repeat(" ", MaxBodyBytes) + `}`
	cases := []struct {
		name, method, path, contentType, body string
		status                                int
		code, field, allow                    string
	}{
		{"no route", "GET", "/nope", "", "", 404, "not_found", "", ""},
		{"no route, unknown method", "FOO", "/nope", "", "", 404, "not_found", "", ""},
		{"trailing slash is another route", "POST", "/predict/", js, `{}`, 404, "not_found", "", ""},
		{"GET /predict", "GET", "/predict", "", "", 405, "method_not_allowed", "", "POST"},
		{"PUT /predict/batch", "PUT", "/predict/batch", js, `{}`, 405, "method_not_allowed", "", "POST"},
		{"POST /healthz", "POST", "/healthz", js, `{}`, 405, "method_not_allowed", "", "GET"},
		{"HEAD /healthz", "HEAD", "/healthz", "", "", 405, "method_not_allowed", "", "GET"},
		{"unknown method on a route", "FOO", "/predict", "", "", 405, "method_not_allowed", "", "POST"},
		{"text/plain", "POST", "/predict", "text/plain", `{}`, 415, "unsupported_media_type", "", ""},
		{"no content type", "POST", "/predict", "", `{}`, 415, "unsupported_media_type", "", ""},
		{"json suffix type is not json", "POST", "/predict", "application/problem+json", `{}`, 415, "unsupported_media_type", "", ""},
		{"415 before 413", "POST", "/predict", "text/plain", big, 415, "unsupported_media_type", "", ""},
		{"too large", "POST", "/predict", js, big, 413, "payload_too_large", "", ""},
		{"413 before 400", "POST", "/predict/batch", js, "NaN" + big, 413, "payload_too_large", "", ""},
		{"empty body", "POST", "/predict", js, "", 400, "invalid_json", "", ""},
		{"NaN token", "POST", "/predict", js, `{"sepal_length": NaN}`, 400, "invalid_json", "", ""},
		{"invalid UTF-8", "POST", "/predict", js, "{\"a\": \"\xff\"}", 400, "invalid_json", "", ""},
		{"BOM", "POST", "/predict", js, "\xef\xbb\xbf{}", 400, "invalid_json", "", ""},
		{"duplicate key", "POST", "/predict", js, `{"sepal_length": 1, "sepal_length": 1}`, 400, "invalid_json", "", ""},
		{"lone surrogate", "POST", "/predict", js, `{"\udfff": 1}`, 400, "invalid_json", "", ""},
		{"65 levels", "POST", "/predict", js, strings.Repeat("[", 65) + strings.Repeat("]", 65), 400, "invalid_json", "", ""},
		{"64 levels", "POST", "/predict", js, strings.Repeat("[", 64) + strings.Repeat("]", 64), 422, "validation_error", "", ""},
		{"400 outranks 422", "POST", "/predict/batch", js, `{"instances": [{"typo": 1}, {"a": 1, "a": 1}]}`, 400, "invalid_json", "", ""},
		{"array body", "POST", "/predict", js, `[]`, 422, "validation_error", "", ""},
		{"unknown field", "POST", "/predict", js, `{"sepal_lenght": 5}`, 422, "validation_error", "sepal_lenght", ""},
		{"string", "POST", "/predict", js, `{"sepal_length": "5.1"}`, 422, "validation_error", "sepal_length", ""},
		{"bool", "POST", "/predict", js, `{"petal_width": true}`, 422, "validation_error", "petal_width", ""},
		{"1e400", "POST", "/predict", js, `{"petal_width": 1e400}`, 422, "validation_error", "petal_width", ""},
		{"batch path", "POST", "/predict/batch", js, `{"instances": [{}, {}, {"petal_width": "x"}]}`, 422, "validation_error", "instances[2].petal_width", ""},
		{"batch 1025", "POST", "/predict/batch", js, `{"instances": [` + strings.Repeat(`{},`, 1024) + `{}]}`, 422, "validation_error", "instances", ""},
		{"batch empty", "POST", "/predict/batch", js, `{"instances": []}`, 422, "validation_error", "instances", ""},
		// row 11: valid float32 input whose float32 arithmetic overflows
		{"model overflow", "POST", "/predict", js, `{"petal_width": 3.4028234663852886e38, "sepal_length": -3.4028234663852886e38}`, 422, "validation_error", "", ""},
		{"model overflow in a batch", "POST", "/predict/batch", js, `{"instances": [{}, {"petal_width": 3.4028234663852886e38, "sepal_length": -3.4028234663852886e38}]}`, 422, "validation_error", "instances[1]", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := do(h, tc.method, tc.path, tc.contentType, tc.body)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			if got := w.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.method == "HEAD" {
				return
			}
			var e errorResponse
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
				t.Fatalf("error body %q: %v", w.Body, err)
			}
			if e.Error.Code != tc.code || e.Error.Message == "" {
				t.Errorf("error %+v, want code %q", e.Error, tc.code)
			}
			switch {
			case tc.field == "" && e.Error.Field != nil:
				t.Errorf("field %q present, want none", *e.Error.Field)
			case tc.field != "" && (e.Error.Field == nil || *e.Error.Field != tc.field):
				t.Errorf("field %v, want %q", e.Error.Field, tc.field)
			}
		})
	}
}

func TestErrorBodyBytes(t *testing.T) {
	h, _ := realRouter(t)
	w := do(h, "POST", "/predict", "application/json; charset=utf-8", `{"a<b&c": 1}`)
	want := `{"error":{"code":"validation_error","message":"unknown field \"a<b&c\": expected only sepal_length, sepal_width, petal_length, petal_width (absent or null = missing)","field":"a<b&c"}}`
	if w.Code != 422 || w.Body.String() != want {
		t.Errorf("got %d %s\nwant %s", w.Code, w.Body, want)
	}
}

func TestTooLargeByContentLengthAlone(t *testing.T) {
	h, _ := realRouter(t)
	r := httptest.NewRequest("POST", "/predict", strings.NewReader(`{}`))
	r.Header.Set("Content-Type", "application/json")
	r.ContentLength = MaxBodyBytes + 1 // declared, before anything is read
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 413 {
		t.Errorf("status %d, want 413", w.Code)
	}
	// chunked: no Content-Length, too much arrives
	r = httptest.NewRequest("POST", "/predict", io.MultiReader(strings.NewReader(`{"a":"`), strings.NewReader(strings.Repeat("x", MaxBodyBytes)), strings.NewReader(`"}`)))
	r.Header.Set("Content-Type", "application/json")
	r.ContentLength = -1
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 413 {
		t.Errorf("chunked: status %d, want 413", w.Code)
	}
}

type predictionResponse struct {
	Label         string             `json:"label"`
	ClassID       int                `json:"class_id"`
	Probabilities map[string]float64 `json:"probabilities"`
}

func TestPredictAndBatch(t *testing.T) {
	h, c := realRouter(t)
	instances := []string{
		`{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}`,
		`{"sepal_length": 6.0, "sepal_width": 2.9, "petal_length": 4.5, "petal_width": 1.5}`,
		`{"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}`,
		`{}`,
		`{"petal_length": null, "petal_width": 1.8}`,
	}
	wantClass := []int{0, 1, 2, -1, -1} // -1: any, but the same in batch and single
	var singles []predictionResponse
	for i, body := range instances {
		w := do(h, "POST", "/predict", "application/json", body)
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", body, w.Code, w.Body)
		}
		raw := w.Body.String()
		if !strings.HasPrefix(raw, `{"label":"`) || !strings.Contains(raw, `,"class_id":`) || !strings.Contains(raw, `,"probabilities":{"`+c.Labels()[0]+`":`) {
			t.Errorf("body shape/order: %s", raw)
		}
		var p predictionResponse
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		if wantClass[i] >= 0 && p.ClassID != wantClass[i] {
			t.Errorf("%s: class_id %d, want %d", body, p.ClassID, wantClass[i])
		}
		if p.Label != c.Labels()[p.ClassID] || len(p.Probabilities) != len(c.Labels()) {
			t.Errorf("%s: label %q / probabilities %v do not follow the manifest labels %v", body, p.Label, p.Probabilities, c.Labels())
		}
		var sum float64
		for _, label := range c.Labels() {
			sum += p.Probabilities[label]
			if p.Probabilities[label] > p.Probabilities[p.Label] {
				t.Errorf("%s: class_id is not the argmax: %v", body, p.Probabilities)
			}
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Errorf("%s: probabilities sum to %v", body, sum)
		}
		singles = append(singles, p)
	}

	w := do(h, "POST", "/predict/batch", "application/json", `{"instances": [`+strings.Join(instances, ",")+`]}`)
	if w.Code != 200 {
		t.Fatalf("batch: %d %s", w.Code, w.Body)
	}
	var batch struct {
		Predictions []predictionResponse `json:"predictions"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &batch); err != nil {
		t.Fatal(err)
	}
	if len(batch.Predictions) != len(singles) {
		t.Fatalf("batch returned %d predictions, want %d", len(batch.Predictions), len(singles))
	}
	for i := range singles {
		if batch.Predictions[i].ClassID != singles[i].ClassID {
			t.Errorf("instance %d: batch class %d, single %d (order lost?)", i, batch.Predictions[i].ClassID, singles[i].ClassID)
		}
		for label, p := range singles[i].Probabilities {
			if math.Abs(batch.Predictions[i].Probabilities[label]-p) > 1e-6 {
				t.Errorf("instance %d %s: batch %v, single %v", i, label, batch.Predictions[i].Probabilities[label], p)
			}
		}
	}
}

func TestHealthz(t *testing.T) {
	h, c := realRouter(t)
	w := do(h, "GET", "/healthz", "", "")
	want := `{"status":"ok","model_sha256":"` + c.SHA256() + `","runtime":"onnxruntime test","framework":"chi"}`
	if w.Code != 200 || w.Body.String() != want {
		t.Errorf("got %d %s, want %s", w.Code, w.Body, want)
	}
}

// A failing or panicking model is the only way to a 500, and it still gets the contract body.
type brokenPredictor struct{ panics bool }

func (b brokenPredictor) Predict([]float64, int) ([]model.Prediction, error) {
	if b.panics {
		panic("boom")
	}
	return nil, errors.New("broken")
}
func (brokenPredictor) Features() []string { return irisFeatures }
func (brokenPredictor) Labels() []string   { return []string{"a", "b", "c"} }
func (brokenPredictor) SHA256() string     { return "0" }

func TestInternalErrorsUseTheContractBody(t *testing.T) {
	for _, panics := range []bool{false, true} {
		w := do(NewRouter(brokenPredictor{panics}, Options{}), "POST", "/predict", "application/json", `{}`)
		if w.Code != 500 || !strings.HasPrefix(w.Body.String(), `{"error":{"code":"internal","message":"`) {
			t.Errorf("panics=%v: got %d %s", panics, w.Code, w.Body)
		}
	}
}

// PREDICT_STAGE: noop and parse answer the start-up warm-up prediction whatever the body;
// parse still answers every malformed request exactly as full does; /healthz says the stage.
func TestMeasurementStages(t *testing.T) {
	_, c := realRouter(t)
	const js = "application/json"
	fixed := do(NewRouter(c, Options{}), "POST", "/predict", js, `{}`).Body.String() // all missing = the warm-up
	for _, stage := range []string{"noop", "parse"} {
		for _, accessLog := range []bool{false, true} {
			h := NewRouter(c, Options{Stage: stage, Fixed: c.Warmup(), AccessLog: accessLog, Runtime: "rt"})
			health := do(h, "GET", "/healthz", "", "").Body.String()
			if want := `{"status":"ok","model_sha256":"` + c.SHA256() + `","runtime":"rt","framework":"chi","predict_stage":"` + stage + `"}`; health != want {
				t.Errorf("%s: /healthz %s, want %s", stage, health, want)
			}
			for _, body := range []string{`{"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}`, `{}`} {
				if w := do(h, "POST", "/predict", js, body); w.Code != 200 || w.Body.String() != fixed {
					t.Errorf("%s: %s answered %d %s, want the fixed %s", stage, body, w.Code, w.Body, fixed)
				}
			}
			copies := map[string]int{"noop": 1, "parse": 3}[stage]
			want := `{"predictions":[` + strings.TrimSuffix(strings.Repeat(fixed+",", copies), ",") + `]}`
			if w := do(h, "POST", "/predict/batch", js, `{"instances": [{}, {"petal_width": 1}, {}]}`); w.Code != 200 || w.Body.String() != want {
				t.Errorf("%s: batch answered %d %s, want %s", stage, w.Code, w.Body, want)
			}
		}
	}

	noop := NewRouter(c, Options{Stage: "noop", Fixed: c.Warmup()})
	if w := do(noop, "POST", "/predict", js, "not json"); w.Code != 200 || w.Body.String() != fixed {
		t.Errorf("noop looked at the body: %d %s", w.Code, w.Body)
	}
	parse, full := NewRouter(c, Options{Stage: "parse", Fixed: c.Warmup()}), NewRouter(c, Options{})
	for _, tc := range []struct{ path, contentType, body string }{
		{"/predict", js, `{`},
		{"/predict", js, `{"sepal_length": NaN}`},
		{"/predict", js, `[]`},
		{"/predict", js, `{"sepal_lenght": 5.1}`},
		{"/predict", js, `{"sepal_length": "5.1"}`},
		{"/predict", js, `{"petal_width": 1e39}`},
		{"/predict", "text/plain", `{}`},
		{"/predict", js, `{}` + strings.Repeat(" ", MaxBodyBytes)},
		{"/predict/batch", js, `{"instances": []}`},
		{"/predict/batch", js, `{"instances": [{}, {"x": 1}]}`},
		{"/predict/batch", js, `{"instances": [{}], "extra": 1}`},
	} {
		p, f := do(parse, "POST", tc.path, tc.contentType, tc.body), do(full, "POST", tc.path, tc.contentType, tc.body)
		if p.Code != f.Code || p.Code < 400 || p.Body.String() != f.Body.String() {
			t.Errorf("%s %.40q: parse %d %s, full %d %s", tc.path, tc.body, p.Code, p.Body, f.Code, f.Body)
		}
	}
}

// The renderer writes the JSON document the library's encoder writes for the contract's shape:
// the same tokens in the same order (key order included), numbers equal as numbers (only their
// text may differ: 1.234e-05 for 0.00001234).
func TestRendererWritesWhatTheEncoderWrites(t *testing.T) {
	labels := []string{"iris-setosa", `quote " and \ backslash`, "ünïcode <&>"}
	encoded := func(p model.Prediction) []byte {
		var b bytes.Buffer
		enc := jsontext.NewEncoder(&b)
		enc.WriteToken(jsontext.BeginObject)
		enc.WriteToken(jsontext.String("label"))
		enc.WriteToken(jsontext.String(labels[p.ClassID]))
		enc.WriteToken(jsontext.String("class_id"))
		enc.WriteToken(jsontext.Int(int64(p.ClassID)))
		enc.WriteToken(jsontext.String("probabilities"))
		enc.WriteToken(jsontext.BeginObject)
		for i, label := range labels {
			enc.WriteToken(jsontext.String(label))
			enc.WriteToken(jsontext.Float(p.Probabilities[i]))
		}
		enc.WriteToken(jsontext.EndObject)
		enc.WriteToken(jsontext.EndObject)
		return b.Bytes()
	}
	tokens := func(doc []byte) (out []jsontext.Token) {
		dec := jsontext.NewDecoder(bytes.NewReader(doc))
		for {
			tok, err := dec.ReadToken()
			if err != nil {
				return out
			}
			out = append(out, tok.Clone())
		}
	}
	r := newRenderer(labels)
	for _, p := range []model.Prediction{
		{ClassID: 0, Probabilities: []float64{0.97, 0.03, 0}},
		{ClassID: 2, Probabilities: []float64{1e-7, 0.00001234, 0.9999876}},
		{ClassID: 1, Probabilities: []float64{float64(float32(0.1)), 1, 2.4611113147443575e-10}},
	} {
		got, want := r.appendPrediction(nil, p), encoded(p)
		if !jsontext.Value(got).IsValid() {
			t.Fatalf("not valid JSON: %s", got)
		}
		gotTokens, wantTokens := tokens(got), tokens(want)
		same := len(gotTokens) == len(wantTokens)
		for i := 0; same && i < len(gotTokens); i++ {
			g, w := gotTokens[i], wantTokens[i]
			if same = g.Kind() == w.Kind() && g.Kind() != '0' && g.String() == w.String(); g.Kind() == '0' && w.Kind() == '0' {
				gf, _ := g.Float()
				wf, _ := w.Float()
				same = gf == wf
			}
		}
		if !same {
			t.Errorf("rendered %s\n encoder %s", got, want)
		}
	}
}

func TestHealthzShowsStartupTimes(t *testing.T) {
	_, c := realRouter(t)
	startup := &Startup{ImportsDone: 1, ModelLoaded: 2}
	h := NewRouter(c, Options{Runtime: "rt", Startup: startup})
	startup.Listening = 3.5 // set by main after the router is built, before it serves
	want := `{"status":"ok","model_sha256":"` + c.SHA256() + `","runtime":"rt","framework":"chi",` +
		`"startup":{"imports_done_unix":1,"model_loaded_unix":2,"listening_unix":3.5}}`
	if w := do(h, "GET", "/healthz", "", ""); w.Body.String() != want {
		t.Errorf("got %s, want %s", w.Body, want)
	}
}

// A body that ends early (the client left, or HTTP_READ_TIMEOUT cut it off) aborts the
// handler — net/http then closes the connection without an answer — in every stage; a body
// whose bytes are wrong is still a 400, and noop answers an oversized body 413 as full does.
func TestBodyReadFailures(t *testing.T) {
	_, c := realRouter(t)
	const js = "application/json"
	for _, stage := range []string{"full", "parse", "noop"} {
		h := NewRouter(c, Options{Stage: stage, Fixed: c.Warmup()})
		for name, failure := range map[string]error{"client left": io.ErrUnexpectedEOF, "read timeout": timeoutError{}} {
			r := httptest.NewRequest("POST", "/predict", io.MultiReader(strings.NewReader(`{"sepal_len`), errorReader{failure}))
			r.Header.Set("Content-Type", js)
			if recovered := serveRecovering(h, r); recovered != http.ErrAbortHandler {
				t.Errorf("%s, %s: recovered %v, want http.ErrAbortHandler", stage, name, recovered)
			}
		}
		r := httptest.NewRequest("POST", "/predict", errorReader{errors.New("malformed chunked encoding")})
		r.Header.Set("Content-Type", js)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 400 {
			t.Errorf("%s: a malformed body answered %d %s, want 400", stage, w.Code, w.Body)
		}
		if w := do(h, "POST", "/predict", js, "{}"+strings.Repeat(" ", MaxBodyBytes)); w.Code != 413 {
			t.Errorf("%s: an oversized body answered %d, want 413", stage, w.Code)
		}
	}
}

type errorReader struct{ err error }

func (e errorReader) Read([]byte) (int, error) { return 0, e.err }

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func serveRecovering(h http.Handler, r *http.Request) (recovered any) {
	defer func() { recovered = recover() }()
	h.ServeHTTP(httptest.NewRecorder(), r)
	return nil
}
