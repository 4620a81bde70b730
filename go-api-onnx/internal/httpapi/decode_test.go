package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

var irisFeatures = []string{"sepal_length", "sepal_width", "petal_length", "petal_width"}

type decodeCase struct {
	name   string
	body   string
	batch  bool
	status int    // 0: valid
	field  string // expected error field
}

func (tc decodeCase) check(t *testing.T) Request {
	t.Helper()
	req, err := DecodePredictRequest([]byte(tc.body), tc.batch, irisFeatures)
	switch {
	case tc.status == 0 && err != nil:
		t.Fatalf("%s: unexpected error %v (field %q)", tc.name, err, err.Field)
	case tc.status != 0 && err == nil:
		t.Fatalf("%s: expected status %d, got a valid request %+v", tc.name, tc.status, req)
	case tc.status != 0 && (err.Status != tc.status || err.Field != tc.field):
		t.Fatalf("%s: got %d field %q (%s), want %d field %q", tc.name, err.Status, err.Field, err.Message, tc.status, tc.field)
	}
	return req
}

func TestDecodeSingle(t *testing.T) {
	const bad, unproc = http.StatusBadRequest, http.StatusUnprocessableEntity
	cases := []decodeCase{
		{name: "complete", body: `{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}`},
		{name: "empty object = all missing", body: `{}`},
		{name: "nulls and integers", body: ` {"sepal_length": null, "petal_width": 2} `},
		{name: "escaped key", body: `{"sepal\u005flength": 5}`},
		{name: "tiny number underflows to 0", body: `{"sepal_length": 1e-400}`},
		{name: "max float32", body: `{"sepal_length": -3.4028234663852886e38}`},

		// 400: not RFC 8259 JSON
		{name: "empty", body: ``, status: bad},
		{name: "whitespace only", body: " \n", status: bad},
		{name: "NaN token", body: `{"sepal_length": NaN}`, status: bad},
		{name: "Infinity token", body: `{"sepal_length": Infinity}`, status: bad},
		{name: "-Infinity token", body: `{"sepal_length": -Infinity}`, status: bad},
		{name: "trailing garbage", body: `{"sepal_length": 1} x`, status: bad},
		{name: "two values", body: `{} {}`, status: bad},
		{name: "truncated", body: `{"sepal_length": 1`, status: bad},
		{name: "trailing comma", body: `{"sepal_length": 1,}`, status: bad},
		{name: "single quotes", body: `{'sepal_length': 1}`, status: bad},
		{name: "leading zero", body: `{"sepal_length": 01}`, status: bad},
		{name: "bare dot", body: `{"sepal_length": .5}`, status: bad},
		{name: "plus sign", body: `{"sepal_length": +1}`, status: bad},
		{name: "hex", body: `{"sepal_length": 0x10}`, status: bad},
		{name: "invalid UTF-8 in key", body: "{\"sepal\xff\": 1}", status: bad},
		{name: "invalid UTF-8 in value", body: "{\"sepal_length\": \"\xc3\x28\"}", status: bad},
		{name: "UTF-8 encoded surrogate", body: "{\"a\": \"\xed\xa0\x80\"}", status: bad},
		{name: "BOM", body: "\xef\xbb\xbf{}", status: bad},
		{name: "control char in string", body: "{\"a\": \"x\ty\"}", status: bad},
		{name: "bad escape", body: `{"a\q": 1}`, status: bad},
		{name: "garbage deep inside", body: `{"sepal_length": [[[[[1,]]]]]}`, status: bad},

		// 422, in the contract's order
		{name: "array body", body: `[1, 2]`, status: unproc},
		{name: "string body", body: `"x"`, status: unproc},
		{name: "null body", body: `null`, status: unproc},
		{name: "nesting too deep to parse", body: strings.Repeat("[", 30000) + strings.Repeat("]", 30000), status: bad},
		{name: "512 levels is fine", body: strings.Repeat("[", 512) + strings.Repeat("]", 512), status: unproc},
		{name: "513 levels is too deep", body: strings.Repeat("[", 513) + strings.Repeat("]", 513), status: bad},
		{name: "513 levels through a feature", body: `{"a": ` + strings.Repeat("[", 512) + strings.Repeat("]", 512) + `}`, status: bad},
		{name: "unknown key", body: `{"sepal_length": 1, "petal_widht": 2}`, status: unproc, field: "petal_widht"},
		{name: "batch body on /predict", body: `{"instances": []}`, status: unproc, field: "instances"},
		{name: "string number", body: `{"sepal_length": "5.1"}`, status: unproc, field: "sepal_length"},
		{name: "bool", body: `{"sepal_width": true}`, status: unproc, field: "sepal_width"},
		{name: "object", body: `{"petal_length": {}}`, status: unproc, field: "petal_length"},
		{name: "deep array value", body: `{"petal_width": ` + strings.Repeat("[", 511) + strings.Repeat("]", 511) + `}`, status: unproc, field: "petal_width"},
		{name: "1e400", body: `{"petal_width": 1e400}`, status: unproc, field: "petal_width"},
		{name: "beyond float32", body: `{"petal_width": -3.5e38}`, status: unproc, field: "petal_width"},
		{name: "huge integer", body: `{"petal_width": 1` + strings.Repeat("0", 400) + `}`, status: unproc, field: "petal_width"},
		{name: "first offending field in document order", body: `{"petal_width": "a", "sepal_length": "b"}`, status: unproc, field: "petal_width"},
		{name: "unknown key answers before a type error", body: `{"sepal_length": "x", "typo": 1}`, status: unproc, field: "typo"},
		{name: "type error answers before a range error", body: `{"sepal_length": 1e400, "sepal_width": "x"}`, status: unproc, field: "sepal_width"},
		{name: "duplicate key: last value wins", body: `{"sepal_length": "x", "sepal_length": 1}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.check(t) })
	}
}

func TestDecodeSingleValues(t *testing.T) {
	req := decodeCase{body: `{"petal_width": 0.2, "sepal_length": 5.1, "petal_length": null}`}.check(t)
	if req.Rows != 1 || len(req.Values) != 4 {
		t.Fatalf("got %+v", req)
	}
	// column order is the manifest's, not the body's; null and absent are NaN
	if req.Values[0] != float32(5.1) || !math.IsNaN(float64(req.Values[1])) || !math.IsNaN(float64(req.Values[2])) || req.Values[3] != float32(0.2) {
		t.Errorf("values = %v", req.Values)
	}
}

func TestDecodeBatch(t *testing.T) {
	const unproc = http.StatusUnprocessableEntity
	many := func(n int, item string) string {
		return `{"instances": [` + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + `]}`
	}
	cases := []decodeCase{
		{name: "one", body: `{"instances": [{"sepal_length": 5.1}]}`},
		{name: "1024 compact", body: many(1024, `{}`)},
		{name: "absent", body: `{}`, status: unproc, field: "instances"},
		{name: "null", body: `{"instances": null}`, status: unproc, field: "instances"},
		{name: "not an array", body: `{"instances": {}}`, status: unproc, field: "instances"},
		{name: "empty", body: `{"instances": []}`, status: unproc, field: "instances"},
		{name: "1025", body: many(1025, `{}`), status: unproc, field: "instances"},
		{name: "item not an object", body: `{"instances": [{}, 5, "x"]}`, status: unproc, field: "instances[1]"},
		{name: "unknown top-level key", body: `{"instances": [{}], "extra": 1}`, status: unproc, field: "extra"},
		{name: "unknown key in an instance", body: many(3, `{}`)[:len(many(3, `{}`))-2] + `,{"sepal_lenght": 1}]}`, status: unproc, field: "instances[3].sepal_lenght"},
		{name: "type error path", body: `{"instances": [{}, {}, {"petal_width": "0.2"}]}`, status: unproc, field: "instances[2].petal_width"},
		{name: "range error path", body: `{"instances": [{}, {"petal_width": 1e400}]}`, status: unproc, field: "instances[1].petal_width"},
		{name: "lowest index answers", body: `{"instances": [{}, {"a": 1}, {"b": 1}]}`, status: unproc, field: "instances[1].a"},
		{name: "document order: instance key before later top-level key", body: `{"instances": [{"a": 1}], "extra": 1}`, status: unproc, field: "instances[0].a"},
		{name: "document order: top-level key before instances", body: `{"extra": 1, "instances": [{"a": 1}]}`, status: unproc, field: "extra"},
		{name: "array body", body: `[{}]`, status: unproc},
		{name: "not JSON", body: `{"instances": [NaN]}`, status: http.StatusBadRequest},
	}
	for _, tc := range cases {
		tc.batch = true
		t.Run(tc.name, func(t *testing.T) { tc.check(t) })
	}
	req := decodeCase{batch: true, body: `{"instances": [{"sepal_length": 1}, {}, {"petal_width": 4}]}`}.check(t)
	if req.Rows != 3 || len(req.Values) != 12 || req.Values[0] != 1 || req.Values[11] != 4 || !math.IsNaN(float64(req.Values[4])) {
		t.Errorf("batch values in order: %+v", req)
	}
}

func TestDecodeSizeLimit(t *testing.T) {
	pad := func(n int) []byte { // a valid object of exactly n bytes
		return []byte(`{"sepal_length":1` + strings.Repeat(" ", n-18) + `}`)
	}
	if _, err := DecodePredictRequest(pad(MaxBodyBytes), false, irisFeatures); err != nil {
		t.Errorf("65536 bytes must be accepted: %v", err)
	}
	if _, err := DecodePredictRequest(pad(MaxBodyBytes+1), false, irisFeatures); err == nil || err.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("65537 bytes must be 413, got %v", err)
	}
}

func TestAppendPyFloatMatchesPythonRepr(t *testing.T) {
	// Generated with CPython 3.11: json.dumps(v) for each v.
	cases := []struct {
		value float64
		want  string
	}{
		{0.0, "0.0"}, {1.0, "1.0"}, {0.5, "0.5"}, {1e-05, "1e-05"}, {0.0001, "0.0001"},
		{1000000000000000.0, "1000000000000000.0"}, {1e+16, "1e+16"},
		{0.9700000286102295, "0.9700000286102295"}, {2.5e-10, "2.5e-10"}, {1e-320, "1e-320"},
		{0.1, "0.1"}, {0.3333333333333333, "0.3333333333333333"}, {123.456, "123.456"},
		{0.6250954866409302, "0.6250954866409302"}, {0.22520719468593597, "0.22520719468593597"},
		{1.115289826637833e-12, "1.115289826637833e-12"}, {2.4606835722806863e-05, "2.4606835722806863e-05"},
		{1.491505463491194e-05, "1.491505463491194e-05"}, {1.6271012981405875e-08, "1.6271012981405875e-08"},
	}
	for _, tc := range cases {
		if got := string(appendPyFloat(nil, tc.value)); got != tc.want {
			t.Errorf("appendPyFloat(%v) = %s, want %s", tc.value, got, tc.want)
		}
	}
}

func TestDecodeManyKeysAndDuplicatesInLargeObjects(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"sepal_length": "x"`)
	for i := 0; i < 3000; i++ {
		b.WriteString(`,"sepal_length":1`)
	}
	b.WriteString(`}`)
	// duplicates resolved through the map path: the last value (a number) wins
	decodeCase{name: "many duplicates", body: b.String()}.check(t)

	b.Reset()
	b.WriteString(`{"sepal_length": 1`)
	for i := 0; i < 5000; i++ {
		b.WriteString(`,"k` + strconv.Itoa(i) + `":1`)
	}
	b.WriteString(`}`)
	decodeCase{name: "many unknown keys", body: b.String(), status: http.StatusUnprocessableEntity, field: "k0"}.check(t)
}
