package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"testing"
	"unicode/utf8"
)

// FuzzDecodePredictRequest: for any body the decoder never panics and answers either a valid
// request (1..1024 rows of 4 values, each NaN or a finite float32) or a 400, 413 or 422 with
// the matching code. It also agrees with encoding/json + utf8.Valid on what is valid JSON,
// and with encoding/json on the numbers of an accepted single instance.
func FuzzDecodePredictRequest(f *testing.F) {
	for _, seed := range []string{
		`{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}`,
		`{}`, `{"sepal_length": null}`, `{"sepal_length": NaN}`, `{"sepal_length": 1e400}`,
		`{"sepal_length": "5.1"}`, `{"sepal_length": true}`, `{"typo": 1}`, `[1]`, `"x"`, ``,
		`{"instances": [{"sepal_length": 1}, {}, {"petal_width": -0.0}]}`, `{"instances": []}`,
		`{"instances": [1, {"a": 1}]}`, `{"instances": [[[[[]]]]]}`, "{\"a\xff\": 1}",
		`{"sepal\u005flength": 1, "\ud800": 2}`, `{"a":1} x`, `{"sepal_length": -0.0e-10}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, batch bool) {
		req, apiErr := DecodePredictRequest(body, batch, irisFeatures)
		validJSON := json.Valid(body) && utf8.Valid(body) && len(body) <= MaxBodyBytes
		if apiErr != nil {
			want := map[int]string{
				http.StatusBadRequest:            "invalid_json",
				http.StatusRequestEntityTooLarge: "payload_too_large",
				http.StatusUnprocessableEntity:   "validation_error",
			}[apiErr.Status]
			if want == "" || apiErr.Code != want || apiErr.Message == "" {
				t.Fatalf("unexpected error %+v", apiErr)
			}
			// Nesting beyond maxNesting is a 400 here, not in encoding/json; below it both agree.
			shallow := bytes.Count(body, []byte("["))+bytes.Count(body, []byte("{")) <= maxNesting
			if (apiErr.Status == http.StatusBadRequest) == validJSON && shallow {
				t.Fatalf("decoder says %d but json.Valid && utf8.Valid = %v", apiErr.Status, validJSON)
			}
			return
		}
		if !validJSON {
			t.Fatalf("accepted a body that is not valid UTF-8 JSON: %q", body)
		}
		if req.Rows < 1 || req.Rows > MaxBatchSize || (!batch && req.Rows != 1) || len(req.Values) != req.Rows*len(irisFeatures) {
			t.Fatalf("bad shape: rows %d, %d values", req.Rows, len(req.Values))
		}
		for _, v := range req.Values {
			if math.IsInf(float64(v), 0) {
				t.Fatalf("infinite value in %v", req.Values)
			}
		}
		if !batch { // cross-check the numbers with encoding/json (last duplicate wins there too)
			var generic map[string]json.Number
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			if err := dec.Decode(&generic); err != nil {
				return // e.g. null values or a lone-surrogate key: not comparable this way
			}
			for col, name := range irisFeatures {
				literal, present := generic[name]
				got := req.Values[col]
				if !present || literal == "" { // absent or null
					if !math.IsNaN(float64(got)) {
						t.Fatalf("%s absent but decoded as %v", name, got)
					}
					continue
				}
				f64, _ := strconv.ParseFloat(string(literal), 64)
				if want := float32(f64); got != want && !(want == 0 && got == 0) {
					t.Fatalf("%s = %s decoded as %v, want %v", name, literal, got, want)
				}
			}
		}
	})
}
