package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// FuzzDecodePredictRequest is differential: the oracle is the JSON libraries' own judgement.
// The decoder answers 400 exactly when the body is not I-JSON by jsontext.Value.IsValid (the
// library's validator, not its Decoder) or nests deeper than MaxDepth by encoding/json's tokens;
// encoding/json + utf8.Valid must accept whatever jsontext accepts. Otherwise it answers a 422
// or a request (1..1024 rows of 4 values, each NaN or within the finite float32 range) whose
// numbers are the ones encoding/json reads from the body. It never panics.
func FuzzDecodePredictRequest(f *testing.F) {
	for _, seed := range []string{
		`{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}`,
		`{}`, `{"sepal_length": null}`, `{"sepal_length": NaN}`, `{"sepal_length": 1e400}`,
		`{"sepal_length": "5.1"}`, `{"sepal_length": true}`, `{"typo": 1}`, `[1]`, `"x"`, ``, " ",
		`{"instances": [{"sepal_length": 1}, {}, {"petal_width": -0.0}]}`, `{"instances": []}`,
		`{"instances": [1, {"a": 1}]}`, `{"instances": [[[[[]]]]]}`, "{\"a\xff\": 1}",
		`{"sepal\u005flength": 1, "\ud800": 2}`, `{"a":1} x`, `{"sepal_length": -0.0e-10}`,
		`{"sepal_length": 1, "sepal_length": 2}`, `{"a": {"b": 1, "b": 2}}`, `{} {}`, "\xef\xbb\xbf{}",
		`{"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, batch bool) {
		req, apiErr := DecodePredictRequest(body, batch, irisFeatures)
		if len(body) > MaxBodyBytes {
			if apiErr == nil || apiErr.Status != http.StatusRequestEntityTooLarge {
				t.Fatalf("a body of %d bytes answered %+v", len(body), apiErr)
			}
			return
		}
		valid := jsontext.Value(body).IsValid() && nesting(body) <= MaxDepth
		if valid && !(json.Valid(body) && utf8.Valid(body)) {
			t.Fatalf("jsontext accepts what encoding/json rejects: %q", body)
		}
		if apiErr != nil {
			want := map[int]string{http.StatusBadRequest: "invalid_json", http.StatusUnprocessableEntity: "validation_error"}[apiErr.Status]
			if want == "" || apiErr.Code != want || apiErr.Message == "" {
				t.Fatalf("unexpected error %+v", apiErr)
			}
			if (apiErr.Status == http.StatusBadRequest) == valid {
				t.Fatalf("decoder says %d (%s) but valid I-JSON within %d levels = %v: %q", apiErr.Status, apiErr.Message, MaxDepth, valid, body)
			}
			return
		}
		if !valid {
			t.Fatalf("accepted a body that is not I-JSON within %d levels: %q", MaxDepth, body)
		}
		if req.Rows < 1 || req.Rows > MaxBatchSize || (!batch && req.Rows != 1) || len(req.Values) != req.Rows*len(irisFeatures) {
			t.Fatalf("bad shape: rows %d, %d values", req.Rows, len(req.Values))
		}
		var doc any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("encoding/json cannot decode an accepted body: %v", err)
		}
		instances := []any{doc}
		if batch {
			instances = doc.(map[string]any)["instances"].([]any)
		}
		for i, instance := range instances {
			for col, name := range irisFeatures {
				got := req.Values[i*len(irisFeatures)+col]
				literal, present := instance.(map[string]any)[name].(json.Number)
				if !present { // absent or null
					if !math.IsNaN(got) {
						t.Fatalf("instance %d: %s missing but decoded as %v", i, name, got)
					}
					continue
				}
				f64, _ := strconv.ParseFloat(string(literal), 64)
				if want := f64; got != want || math.Abs(got) > math.MaxFloat32 {
					t.Fatalf("instance %d: %s = %s decoded as %v, want %v", i, name, literal, got, want)
				}
			}
		}
	})
}

// nesting is the deepest nesting of arrays and objects, by encoding/json's tokens.
func nesting(body []byte) int {
	dec := json.NewDecoder(bytes.NewReader(body))
	deepest, depth := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
			deepest = max(deepest, depth)
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}
