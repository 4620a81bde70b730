package model

import (
	"fmt"

	ort "github.com/yalue/onnxruntime_go"
)

// probabilitiesFromZipMap reads the output skl2onnx produces by default (ZipMap): an ONNX
// Sequence with one Map<int64, float> per input row, class id → probability. It returns the
// probabilities as a row-major [rows × classes] slice, placed by key (not by the map's
// iteration order), and rejects anything that is not exactly one probability per class.
//
// onnxruntime_go exposes the sequence as *ort.Sequence whose elements are *ort.Map, and each
// map as two tensors (keys, values) of equal length. All of them are owned by the Sequence:
// the caller destroys only the Sequence. String keys (a ZipMap over string class labels)
// cannot be read: onnxruntime_go has no string tensors; such a graph fails its warm-up.
func probabilitiesFromZipMap(value ort.Value, rows, classes int) ([]float64, error) {
	sequence, ok := value.(*ort.Sequence)
	if !ok {
		return nil, fmt.Errorf("ZipMap output: expected a Sequence, got %s", value.GetONNXType())
	}
	items, err := sequence.GetValues()
	if err != nil {
		return nil, fmt.Errorf("ZipMap output: reading the sequence: %w", err)
	}
	if len(items) != rows {
		return nil, fmt.Errorf("ZipMap output: expected %d maps (one per row), got %d", rows, len(items))
	}
	out := make([]float64, rows*classes)
	for row, item := range items {
		m, ok := item.(*ort.Map)
		if !ok {
			return nil, fmt.Errorf("ZipMap output row %d: expected a Map, got %s", row, item.GetONNXType())
		}
		keysValue, valuesValue, err := m.GetKeysAndValues()
		if err != nil {
			return nil, fmt.Errorf("ZipMap output row %d: %w", row, err)
		}
		keys, ok := keysValue.(*ort.Tensor[int64])
		if !ok {
			return nil, fmt.Errorf("ZipMap output row %d: expected int64 keys (class ids), got %T", row, keysValue)
		}
		k := keys.GetData()
		v, isFloat := appendFloats(nil, valuesValue)
		if !isFloat {
			return nil, fmt.Errorf("ZipMap output row %d: expected float32 or float64 values, got %T", row, valuesValue)
		}
		if len(k) != classes || len(v) != classes {
			return nil, fmt.Errorf("ZipMap output row %d: expected %d classes, got %d keys and %d values", row, classes, len(k), len(v))
		}
		seen := make([]bool, classes)
		for i, classID := range k {
			if classID < 0 || classID >= int64(classes) || seen[classID] {
				return nil, fmt.Errorf("ZipMap output row %d: class id %d is out of range or repeated (expected each of 0..%d once)", row, classID, classes-1)
			}
			seen[classID] = true
			out[row*classes+int(classID)] = v[i]
		}
	}
	return out, nil
}
