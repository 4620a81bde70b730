package httpapi

import (
	"math"
	"net/http"
	"slices"
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
	field  string // expected error field; "a|b": several mistakes, either may be named
}

func (tc decodeCase) check(t *testing.T) Request {
	t.Helper()
	req, err := DecodePredictRequest([]byte(tc.body), tc.batch, irisFeatures)
	switch {
	case tc.status == 0 && err != nil:
		t.Fatalf("%s: unexpected error %v (field %q)", tc.name, err, err.Field)
	case tc.status != 0 && err == nil:
		t.Fatalf("%s: expected status %d, got a valid request %+v", tc.name, tc.status, req)
	case tc.status != 0 && (err.Status != tc.status || !slices.Contains(strings.Split(tc.field, "|"), err.Field)):
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
		{name: "lone surrogate escape", body: `{"\ud800": 1}`, status: bad},
		{name: "lone low surrogate in a value", body: `{"sepal_length": "\udc00"}`, status: bad},
		{name: "duplicate key", body: `{"sepal_length": 1, "sepal_length": 1}`, status: bad},
		{name: "duplicate key by escape", body: `{"sepal_length": 1, "sepal\u005flength": 2}`, status: bad},
		{name: "duplicate key deep inside", body: `{"typo": {"a": 1, "a": 2}}`, status: bad},
		{name: "a valid surrogate pair is fine", body: `{"\ud83d\ude00": 1}`, status: unproc, field: "\U0001F600"},

		// nesting: 64 levels are JSON the contract reads, 65 are not
		{name: "nesting too deep to parse", body: strings.Repeat("[", 30000) + strings.Repeat("]", 30000), status: bad},
		{name: "64 levels is fine", body: strings.Repeat("[", 64) + strings.Repeat("]", 64), status: unproc},
		{name: "65 levels is too deep", body: strings.Repeat("[", 65) + strings.Repeat("]", 65), status: bad},
		{name: "64 levels through a feature", body: `{"petal_width": ` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `}`, status: unproc, field: "petal_width"},
		{name: "65 levels through a feature", body: `{"petal_width": ` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`, status: bad},
		{name: "65 levels of objects", body: strings.Repeat(`{"a":`, 65) + `1` + strings.Repeat("}", 65), status: bad},

		// 422
		{name: "array body", body: `[1, 2]`, status: unproc},
		{name: "string body", body: `"x"`, status: unproc},
		{name: "null body", body: `null`, status: unproc},
		{name: "unknown key", body: `{"sepal_length": 1, "petal_widht": 2}`, status: unproc, field: "petal_widht"},
		{name: "batch body on /predict", body: `{"instances": []}`, status: unproc, field: "instances"},
		{name: "string number", body: `{"sepal_length": "5.1"}`, status: unproc, field: "sepal_length"},
		{name: "bool", body: `{"sepal_width": true}`, status: unproc, field: "sepal_width"},
		{name: "object", body: `{"petal_length": {}}`, status: unproc, field: "petal_length"},
		{name: "1e400", body: `{"petal_width": 1e400}`, status: unproc, field: "petal_width"},
		{name: "beyond float32", body: `{"petal_width": -3.5e38}`, status: unproc, field: "petal_width"},
		{name: "just above float32 max", body: `{"petal_width": 3.4028235e38}`, status: unproc, field: "petal_width"},
		{name: "huge integer", body: `{"petal_width": 1` + strings.Repeat("0", 400) + `}`, status: unproc, field: "petal_width"},

		// several mistakes: the highest-ranked class answers, any of its fields is named
		{name: "two wrong types", body: `{"petal_width": "a", "sepal_length": "b"}`, status: unproc, field: "petal_width|sepal_length"},
		{name: "unknown key and a type error", body: `{"sepal_length": "x", "typo": 1}`, status: unproc, field: "sepal_length|typo"},
		{name: "type and range errors", body: `{"sepal_length": 1e400, "sepal_width": "x"}`, status: unproc, field: "sepal_length|sepal_width"},
		{name: "400 outranks an earlier 422", body: `{"typo": 1, "sepal_length": NaN}`, status: bad},
		{name: "400 after the value outranks a 422", body: `{"sepal_length": "x"} x`, status: bad},
		{name: "depth outranks a 422", body: `{"typo": 1, "a": ` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`, status: bad},
		{name: "duplicate outranks a 422", body: `{"sepal_length": "x", "sepal_length": 1}`, status: bad},
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
	if req.Values[0] != 5.1 || !math.IsNaN(req.Values[1]) || !math.IsNaN(req.Values[2]) || req.Values[3] != 0.2 {
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
		{name: "two unknown keys", body: `{"instances": [{}, {"a": 1}, {"b": 1}]}`, status: unproc, field: "instances[1].a|instances[2].b"},
		{name: "instance key and top-level key", body: `{"instances": [{"a": 1}], "extra": 1}`, status: unproc, field: "instances[0].a|extra"},
		{name: "features at the top level", body: `{"sepal_length": 5.1}`, status: unproc, field: "sepal_length|instances"},
		{name: "1025 items, one bad", body: many(1024, `{}`)[:len(many(1024, `{}`))-2] + `,{"a": 1}]}`, status: unproc, field: "instances|instances[1024].a"},
		{name: "array body", body: `[{}]`, status: unproc},
		{name: "duplicate instances", body: `{"instances": [{}], "instances": [{}]}`, status: http.StatusBadRequest},
		{name: "not JSON", body: `{"instances": [NaN]}`, status: http.StatusBadRequest},
		{name: "64 levels", body: `{"instances": [{"a": ` + strings.Repeat("[", 61) + strings.Repeat("]", 61) + `}]}`, status: unproc, field: "instances[0].a"},
		{name: "65 levels", body: `{"instances": [{"a": ` + strings.Repeat("[", 62) + strings.Repeat("]", 62) + `}]}`, status: http.StatusBadRequest},
	}
	for _, tc := range cases {
		tc.batch = true
		t.Run(tc.name, func(t *testing.T) { tc.check(t) })
	}
	req := decodeCase{batch: true, body: `{"instances": [{"sepal_length": 1}, {}, {"petal_width": 4}]}`}.check(t)
	if req.Rows != 3 || len(req.Values) != 12 || req.Values[0] != 1 || req.Values[11] != 4 || !math.IsNaN(req.Values[4]) {
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

func TestDecodeManyKeys(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"sepal_length": 1`)
	for i := 0; i < 5000; i++ {
		b.WriteString(`,"k` + strconv.Itoa(i) + `":1`)
	}
	decodeCase{name: "many unknown keys", body: b.String() + `}`, status: http.StatusUnprocessableEntity, field: "k0"}.check(t)
	decodeCase{name: "many keys, the last a duplicate", body: b.String() + `,"k17":1}`, status: http.StatusBadRequest}.check(t)
}
