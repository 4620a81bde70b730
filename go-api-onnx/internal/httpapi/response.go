package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"

	"onnx-serving-study/go-api-onnx/internal/model"
)

// Responses are written the way the Python services' JSON encoder writes them (compact
// separators, non-ASCII and <>& unescaped, floats as Python's repr), so the three services
// answer with the same bytes wherever the contract fixes them.

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, encodeCompact(errorBody{errorDetail{e.Code, e.Message, e.Field}}))
}

// encodeCompact marshals like json.Marshal but leaves <, > and & as they are.
func encodeCompact(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // only plain structs of strings: cannot fail
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// encodedLabels holds each class label already encoded as a JSON string.
func encodeLabels(labels []string) [][]byte {
	out := make([][]byte, len(labels))
	for i, label := range labels {
		out[i] = encodeCompact(label)
	}
	return out
}

// appendPrediction writes {"label":…,"class_id":…,"probabilities":{label: p, …}} with the
// probabilities in manifest label order.
func appendPrediction(b []byte, labels [][]byte, p model.Prediction) []byte {
	b = append(b, `{"label":`...)
	b = append(b, labels[p.ClassID]...)
	b = append(b, `,"class_id":`...)
	b = strconv.AppendInt(b, int64(p.ClassID), 10)
	b = append(b, `,"probabilities":{`...)
	for i, prob := range p.Probabilities {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, labels[i]...)
		b = append(b, ':')
		b = appendPyFloat(b, float64(prob))
	}
	return append(b, "}}"...)
}

// appendPyFloat formats f as Python's repr(float) does (json.dumps uses it): the shortest
// round-trip digits; exponent notation when the decimal exponent is < -4 or >= 16 ("1e-05",
// "1e+16"), otherwise fixed notation that always has a fraction ("1.0", "0.0001"). Go's own
// encoder would write 1 and 1e-05 as 1 and 0.00001 — same number, different bytes, and a
// Python client would read 1 as an int. f is always finite here (probabilities).
func appendPyFloat(b []byte, f float64) []byte {
	if f == 0 {
		if math.Signbit(f) {
			return append(b, "-0.0"...)
		}
		return append(b, "0.0"...)
	}
	var scratch [32]byte
	exp := strconv.AppendFloat(scratch[:0], f, 'e', -1, 64) // d.ddde±XX
	i := bytes.IndexByte(exp, 'e')
	decimalExponent, _ := strconv.Atoi(string(exp[i+1:]))
	if decimalExponent < -4 || decimalExponent >= 16 {
		return append(b, exp...) // Go, like Python, writes at least two exponent digits
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'f', -1, 64)
	if bytes.IndexByte(b[start:], '.') < 0 {
		b = append(b, ".0"...)
	}
	return b
}
