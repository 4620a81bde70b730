package httpapi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// Limits fixed by services/CONTRACT.md.
const (
	MaxBodyBytes     = 65536
	MaxBatchSize     = 1024
	instancesField   = "instances"
	maxFloat32Detail = "3.4028234663852886e38"
)

// Error is a contract error: the HTTP status, the code, a human sentence and (where one field
// is to blame) its path.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func invalidJSON(err error) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "request body is not valid JSON: " + err.Error()}
}

func validation(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: "validation_error", Message: fmt.Sprintf(format, args...), Field: field}
}

func tooLarge() *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large", Message: fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes)}
}

// Request is a decoded, valid request: rows × len(features) values in feature (column) order,
// NaN where a feature is missing (absent or null), which the model's imputer fills in.
type Request struct {
	Values []float32
	Rows   int
}

// DecodePredictRequest applies the contract's checks 4–10 (size, JSON syntax, shape, unknown
// keys, types, float32 range, batch limits) to a POST /predict (batch=false) or
// POST /predict/batch body. Checks run in the contract's order and the first failure answers;
// within one check the first offending field in document order (lowest index) answers.
// features are the manifest's feature_names in column order.
func DecodePredictRequest(body []byte, batch bool, features []string) (Request, *Error) {
	if len(body) > MaxBodyBytes {
		return Request{}, tooLarge()
	}
	root, err := parseJSON(body)
	if err != nil {
		return Request{}, invalidJSON(err)
	}
	if root.kind != kindObject {
		return Request{}, validation("", "request body must be a JSON object, got %s", aOrAn(root.kind))
	}
	if !batch {
		instance := resolve(root.members)
		if e := firstError(
			func() *Error { return unknownKeys(instance, features, "") },
			func() *Error { return featureTypes(instance, features, "") },
			func() *Error { return featureRanges(instance, features, "") },
		); e != nil {
			return Request{}, e
		}
		values := make([]float32, len(features))
		fill(values, instance, features)
		return Request{Values: values, Rows: 1}, nil
	}

	body2 := resolve(root.members)
	instancesValue, hasInstances := body2.get(instancesField)
	var items []jsonValue
	if hasInstances && instancesValue.kind == kindArray {
		items = instancesValue.items
	}
	instances := make([]object, len(items))
	for i, item := range items {
		if item.kind == kindObject {
			instances[i] = resolve(item.members)
		}
	}
	prefix := func(i int) string { return instancesField + "[" + strconv.Itoa(i) + "]." }
	check := func(each func(object, []string, string) *Error) func() *Error {
		return func() *Error {
			for i, item := range items {
				if item.kind != kindObject {
					continue
				}
				if e := each(instances[i], features, prefix(i)); e != nil {
					return e
				}
			}
			return nil
		}
	}
	if e := firstError(
		// 7: unknown keys in document order; the members of "instances" come at its position.
		func() *Error {
			for _, key := range body2.keys {
				if key != instancesField {
					return validation(key, "unknown field %q: a batch body has only %q", key, instancesField)
				}
				if e := check(unknownKeys)(); e != nil {
					return e
				}
			}
			return nil
		},
		check(featureTypes),  // 8
		check(featureRanges), // 9
		func() *Error { return batchShape(hasInstances, instancesValue, items) }, // 10
	); e != nil {
		return Request{}, e
	}
	values := make([]float32, len(items)*len(features))
	for i := range items {
		fill(values[i*len(features):(i+1)*len(features)], instances[i], features)
	}
	return Request{Values: values, Rows: len(items)}, nil
}

func firstError(checks ...func() *Error) *Error {
	for _, check := range checks {
		if e := check(); e != nil {
			return e
		}
	}
	return nil
}

// object is a JSON object as a dict: keys in first-occurrence order, the last duplicate's value
// (what Python's json.loads, and so the Python services, make of duplicate keys).
type object struct {
	keys   []string
	values []jsonValue
}

func resolve(members []jsonMember) object {
	o := object{keys: make([]string, 0, len(members)), values: make([]jsonValue, 0, len(members))}
	var seen map[string]int // only for large objects: keeps a 64 KiB body of keys linear
	if len(members) > 16 {
		seen = make(map[string]int, len(members))
	}
	for _, m := range members {
		i := -1
		if seen != nil {
			if j, ok := seen[m.key]; ok {
				i = j
			}
		} else {
			i = o.index(m.key)
		}
		if i >= 0 {
			o.values[i] = m.value
			continue
		}
		if seen != nil {
			seen[m.key] = len(o.keys)
		}
		o.keys = append(o.keys, m.key)
		o.values = append(o.values, m.value)
	}
	return o
}

func (o object) index(key string) int {
	for i, k := range o.keys { // a handful of keys: a scan beats a map
		if k == key {
			return i
		}
	}
	return -1
}

func (o object) get(key string) (jsonValue, bool) {
	if i := o.index(key); i >= 0 {
		return o.values[i], true
	}
	return jsonValue{}, false
}

func isFeature(key string, features []string) bool {
	for _, f := range features {
		if f == key {
			return true
		}
	}
	return false
}

func unknownKeys(o object, features []string, prefix string) *Error {
	for _, key := range o.keys {
		if !isFeature(key, features) {
			return validation(prefix+key, "unknown field %q: expected only %s (absent or null = missing)", prefix+key, strings.Join(features, ", "))
		}
	}
	return nil
}

func featureTypes(o object, features []string, prefix string) *Error {
	for i, key := range o.keys {
		if k := o.values[i].kind; k != kindNumber && k != kindNull && isFeature(key, features) {
			return validation(prefix+key, "%s must be a number or null, got %s", prefix+key, aOrAn(k))
		}
	}
	return nil
}

func featureRanges(o object, features []string, prefix string) *Error {
	for i, key := range o.keys {
		if o.values[i].kind != kindNumber || !isFeature(key, features) {
			continue
		}
		if _, ok := toFloat32(o.values[i].number); !ok {
			return validation(prefix+key, "%s is %s, outside the finite float32 range (magnitude at most %s)", prefix+key, o.values[i].number, maxFloat32Detail)
		}
	}
	return nil
}

func batchShape(present bool, instances jsonValue, items []jsonValue) *Error {
	switch {
	case !present:
		return validation(instancesField, "instances is required: an array of 1 to %d objects", MaxBatchSize)
	case instances.kind != kindArray:
		return validation(instancesField, "instances must be an array of 1 to %d objects, got %s", MaxBatchSize, aOrAn(instances.kind))
	case len(items) == 0:
		return validation(instancesField, "instances is empty: expected 1 to %d objects", MaxBatchSize)
	case len(items) > MaxBatchSize:
		return validation(instancesField, "instances has %d items: expected 1 to %d", len(items), MaxBatchSize)
	}
	for i, item := range items {
		if item.kind != kindObject {
			field := instancesField + "[" + strconv.Itoa(i) + "]"
			return validation(field, "%s must be an object, got %s", field, aOrAn(item.kind))
		}
	}
	return nil
}

// toFloat32 converts a JSON number literal the way the Python services do (to float64 first,
// then to float32), so both round identically. ok is false beyond the finite float32 range,
// including literals beyond float64's (1e400).
func toFloat32(literal []byte) (float32, bool) {
	f, err := strconv.ParseFloat(string(literal), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false // unreachable: the parser admits only valid literals
	}
	if math.IsInf(f, 0) || math.Abs(f) > math.MaxFloat32 {
		return 0, false
	}
	return float32(f), true // underflow (1e-400) is 0, as in Python
}

func fill(row []float32, o object, features []string) {
	for col, name := range features {
		row[col] = float32(math.NaN())
		if v, ok := o.get(name); ok && v.kind == kindNumber {
			row[col], _ = toFloat32(v.number)
		}
	}
}

func aOrAn(k kind) string {
	switch k {
	case kindArray, kindObject:
		return "an " + k.String()
	case kindNull:
		return "null"
	}
	return "a " + k.String()
}
