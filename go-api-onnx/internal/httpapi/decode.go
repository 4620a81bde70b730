package httpapi

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/go-json-experiment/json/jsontext"
)

// Limits fixed by services/CONTRACT.md.
const (
	MaxBodyBytes   = 65536
	MaxBatchSize   = 1024
	MaxDepth       = 64 // arrays and objects nested deeper than this: 400
	instancesField = "instances"
)

// Error is a contract error: the HTTP status, the code, a human sentence and (where one field
// is to blame) its path.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func invalidJSON(err error) *Error {
	if errors.Is(err, io.EOF) {
		err = errors.New("the body is empty")
	}
	return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "request body is not valid JSON: " + err.Error()}
}

func validation(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: "validation_error", Message: fmt.Sprintf(format, args...), Field: field}
}

// StatusClientClosedRequest is nginx's 499: the client went away (or was cut off by
// HTTP_READ_TIMEOUT) before its body had arrived. It is never written to the wire: the
// handler is aborted instead (writeError), and the telemetry records 499 (CONTRACT.md).
const StatusClientClosedRequest = 499

// readError is the answer to a body that could not be read in full: a client abort when the
// connection ended or timed out, a 400 when the bytes themselves were wrong (e.g. a malformed
// chunked encoding).
func readError(err error) *Error {
	var netErr net.Error
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || (errors.As(err, &netErr) && netErr.Timeout()) {
		return &Error{Status: StatusClientClosedRequest, Code: "client_closed_request", Message: "the client left before its body arrived: " + err.Error()}
	}
	return invalidJSON(fmt.Errorf("the body could not be read completely (%v)", err))
}

func tooLarge() *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large", Message: fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes)}
}

// Request is a decoded, valid request: rows × len(features) values in feature (column) order,
// NaN where a feature is missing (absent or null), which the model's imputer fills in. Values
// are float64 as parsed (each within the float32 range): a float64 graph gets them unrounded.
type Request struct {
	Values []float64
	Rows   int
}

// A jsontext.Decoder is strict by default (RFC 8259 and I-JSON, RFC 7493): invalid UTF-8, lone
// surrogate escapes, duplicate member names, NaN/Infinity and trailing data are syntax errors.
// It reads a *bytes.Buffer in place; the buffer and the decoder are reused across requests.
type decoding struct {
	body  bytes.Buffer
	limit io.LimitedReader
	dec   jsontext.Decoder
}

var decodings = sync.Pool{New: func() any { return new(decoding) }}

func (d *decoding) release() {
	d.limit.R = nil
	if d.body.Cap() <= 2*MaxBodyBytes {
		d.body.Reset()
		decodings.Put(d)
	}
}

// ReadPredictRequest reads a body (at most MaxBodyBytes+1 bytes, so a larger one is a 413
// whatever Content-Length said) and decodes it as DecodePredictRequest does.
func ReadPredictRequest(body io.Reader, batch bool, features []string) (Request, *Error) {
	d := decodings.Get().(*decoding)
	defer d.release()
	d.limit = io.LimitedReader{R: body, N: MaxBodyBytes + 1}
	if _, err := d.body.ReadFrom(&d.limit); err != nil && d.body.Len() <= MaxBodyBytes {
		return Request{}, readError(err)
	}
	return d.decode(batch, features)
}

// DecodePredictRequest applies the contract's checks 4–10 to a POST /predict (batch=false) or
// POST /predict/batch body: size (413), I-JSON syntax and depth (400), then shape, unknown keys,
// types, float32 range and batch limits (422). features are the manifest's feature_names in
// column order.
func DecodePredictRequest(body []byte, batch bool, features []string) (Request, *Error) {
	d := decodings.Get().(*decoding)
	defer d.release()
	d.body.Write(body)
	return d.decode(batch, features)
}

func (d *decoding) decode(batch bool, features []string) (Request, *Error) {
	if d.body.Len() > MaxBodyBytes {
		return Request{}, tooLarge()
	}
	dec := &d.dec
	dec.Reset(&d.body)
	w := walker{dec: dec, features: features, rows: 1, values: make([]float64, 0, len(features))}
	var invalid *Error
	switch kind := dec.PeekKind(); {
	case kind != '{':
		w.read()
		invalid = validation("", "request body must be a JSON object, got %s", kindNames[kind])
	case batch:
		w.rows = 0
		invalid = w.batch()
	default:
		invalid = w.instance(-1)
	}
	for w.syntax == nil && dec.StackDepth() > 0 {
		w.read() // on to the end after a 422: a syntax error anywhere outranks it
	}
	if _, err := dec.ReadToken(); w.syntax == nil && err != io.EOF {
		w.syntax = cmp.Or(err, errors.New("more than one JSON value"))
	}
	switch {
	case w.syntax != nil:
		return Request{}, invalidJSON(w.syntax)
	case invalid != nil:
		return Request{}, invalid
	}
	return Request{Values: w.values, Rows: w.rows}, nil
}

// walker reads a body token by token; after a syntax error every read is a no-op.
type walker struct {
	dec      *jsontext.Decoder
	features []string
	syntax   error
	values   []float64
	rows     int
}

func (w *walker) read() jsontext.Token {
	if w.syntax != nil {
		return jsontext.Token{}
	}
	tok, err := w.dec.ReadToken()
	if err == nil && w.dec.StackDepth() > MaxDepth {
		err = fmt.Errorf("arrays and objects nested more than %d deep", MaxDepth)
	}
	w.syntax = err
	return tok
}

// next reports whether the object or array just opened has another member or item.
func (w *walker) next(end jsontext.Kind) bool { return w.syntax == nil && w.dec.PeekKind() != end }

func (w *walker) batch() *Error {
	present := false
	for w.read(); w.next('}'); {
		if name := w.readName(); string(name) != instancesField {
			return validation(string(name), "unknown field %q: a batch body has only %q", name, instancesField)
		}
		present = true
		if kind := w.dec.PeekKind(); kind != '[' {
			return validation(instancesField, "instances must be an array of 1 to %d objects, got %s", MaxBatchSize, kindNames[kind])
		}
		for w.read(); w.next(']'); w.rows++ {
			if kind := w.dec.PeekKind(); kind != '{' {
				return validation(itemPath(w.rows, ""), "%s must be an object, got %s", itemPath(w.rows, ""), kindNames[kind])
			} else if e := w.instance(w.rows); e != nil {
				return e
			}
		}
		if w.read(); w.rows == 0 || w.rows > MaxBatchSize {
			return validation(instancesField, "instances has %d items: expected 1 to %d objects", w.rows, MaxBatchSize)
		}
	}
	if w.read(); !present {
		return validation(instancesField, "instances is required: an array of 1 to %d objects", MaxBatchSize)
	}
	return nil
}

// instance reads one object of features into a new row of values; item is its batch index
// (-1 for /predict), for the field paths of errors.
func (w *walker) instance(item int) *Error {
	row := len(w.values)
	for range w.features {
		w.values = append(w.values, math.NaN())
	}
	for w.read(); w.next('}'); {
		name := w.readName()
		col, kind := w.column(name), w.dec.PeekKind()
		switch {
		case col < 0:
			return validation(itemPath(item, string(name)), "unknown field %q: expected only %s (absent or null = missing)", itemPath(item, string(name)), strings.Join(w.features, ", "))
		case kind != 'n' && kind != '0':
			return validation(itemPath(item, string(name)), "%s must be a number or null, got %s", itemPath(item, string(name)), kindNames[kind])
		}
		if tok := w.read(); kind == '0' && w.syntax == nil {
			f, _ := tok.Float() // ±Inf beyond float64 (1e400); 1e-400 underflows to 0
			if !(math.Abs(f) <= math.MaxFloat32) {
				return validation(itemPath(item, string(name)), "%s is %s, outside the finite float32 range (magnitude at most 3.4028234663852886e38)", itemPath(item, string(name)), tok.String())
			}
			w.values[row+col] = f
		}
	}
	w.read()
	return nil
}

// readName reads an object member's name, unquoted; it aliases the body unless the name has
// escapes (no allocation for the common case, unlike Token.String).
func (w *walker) readName() []byte {
	if w.syntax != nil {
		return nil
	}
	raw, err := w.dec.ReadValue() // validated: UTF-8, escapes, duplicates
	if err != nil {
		w.syntax = err
		return nil
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1]
	}
	name, _ := jsontext.AppendUnquote(nil, raw)
	return name
}

// column is the feature's index, -1 for an unknown name.
func (w *walker) column(name []byte) int {
	for i, feature := range w.features {
		if feature == string(name) {
			return i
		}
	}
	return -1
}

// itemPath is the contract's field path: name on /predict, instances[i].name in a batch.
func itemPath(item int, name string) string {
	if item < 0 {
		return name
	}
	return strings.TrimSuffix(instancesField+"["+strconv.Itoa(item)+"]."+name, ".")
}

// kindNames name the kind of a wrong value in messages (an invalid kind comes only with a
// syntax error, which answers instead).
var kindNames = map[jsontext.Kind]string{'{': "an object", '[': "an array", '"': "a string", 't': "a boolean", 'f': "a boolean", '0': "a number", 'n': "null"}
