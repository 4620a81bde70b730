package model

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"onnx-serving-study/go-api-onnx/internal/testenv"
)

func setup(t *testing.T) (testenv.Artifacts, *Manifest) {
	t.Helper()
	a := testenv.FindArtifacts(t)
	if _, err := InitRuntime(testenv.OrtLibrary(t)); err != nil {
		t.Fatal(err)
	}
	m, err := LoadManifest(a.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return a, m
}

func load(t *testing.T, path string, m *Manifest) *Classifier {
	t.Helper()
	c, err := Load(path, m, Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var nan = math.NaN()

// randomRows draws features within (a margin around) iris' ranges, a quarter of them missing.
func randomRows(rng *rand.Rand, rows int) []float64 {
	values := make([]float64, rows*4)
	for i := range values {
		if rng.IntN(4) == 0 {
			values[i] = nan
		} else {
			values[i] = rng.Float64() * 9
		}
	}
	return values
}

func TestPredictCanonicalFlowers(t *testing.T) {
	a, m := setup(t)
	c := load(t, a.Model, m)
	cases := []struct {
		name     string
		features []float64
		classID  int
	}{
		{"setosa", []float64{5.1, 3.5, 1.4, 0.2}, 0},
		{"versicolor", []float64{6.0, 2.9, 4.5, 1.5}, 1},
		{"virginica", []float64{6.7, 3.0, 5.2, 2.3}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Predict(tc.features, 1)
			if err != nil {
				t.Fatal(err)
			}
			if got[0].ClassID != tc.classID {
				t.Errorf("class_id = %d (%v), want %d", got[0].ClassID, got[0].Probabilities, tc.classID)
			}
			var sum float64
			for _, p := range got[0].Probabilities {
				sum += p
			}
			if len(got[0].Probabilities) != len(m.ClassLabels) || math.Abs(sum-1) > 1e-5 {
				t.Errorf("probabilities %v: want %d values summing to 1", got[0].Probabilities, len(m.ClassLabels))
			}
		})
	}
}

// The seed served model_zipmap.onnx, whose probabilities are a Sequence of Map<int64,float>.
// Reading it must give exactly what the plain tensor of model.onnx gives.
func TestZipMapOutputMatchesProbabilityTensor(t *testing.T) {
	a, m := setup(t)
	tensorModel := load(t, a.Model, m)
	zipMapModel := load(t, a.ZipMap, m)
	if zipMapModel.zipMap < 0 || len(zipMapModel.outputs) != 2 || tensorModel.zipMap >= 0 || len(tensorModel.outputs) != 1 {
		t.Fatalf("outputs: zipmap model %v (zipmap at %d), tensor model %v", zipMapModel.outputs, zipMapModel.zipMap, tensorModel.outputs)
	}
	if !strings.Contains(zipMapModel.Description(), "zipmap") {
		t.Errorf("description %q does not say zipmap", zipMapModel.Description())
	}
	rows := randomRows(rand.New(rand.NewPCG(1, 2)), 200)
	want, err := tensorModel.Predict(rows, 200)
	if err != nil {
		t.Fatal(err)
	}
	got, err := zipMapModel.Predict(rows, 200)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i].ClassID != want[i].ClassID {
			t.Errorf("row %d: zipmap class %d, tensor class %d", i, got[i].ClassID, want[i].ClassID)
		}
		for k := range want[i].Probabilities {
			if d := math.Abs(got[i].Probabilities[k] - want[i].Probabilities[k]); d > 1e-6 {
				t.Errorf("row %d class %d: zipmap %v, tensor %v", i, k, got[i].Probabilities[k], want[i].Probabilities[k])
			}
		}
	}
}

func TestBatchEqualsSingleRowsAndConcurrentUse(t *testing.T) {
	a, m := setup(t)
	c := load(t, a.Model, m)
	const n = 64
	rows := randomRows(rand.New(rand.NewPCG(3, 4)), n)
	batch, err := c.Predict(rows, n)
	if err != nil {
		t.Fatal(err)
	}
	// 8 goroutines share the session, each predicting every row alone, as requests do.
	var wg sync.WaitGroup
	errs := make(chan string, 8*n)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				single, err := c.Predict(rows[i*4:(i+1)*4], 1)
				if err != nil {
					errs <- err.Error()
					return
				}
				for k, p := range single[0].Probabilities {
					if p != batch[i].Probabilities[k] && math.Abs(p-batch[i].Probabilities[k]) > 1e-6 {
						errs <- "row mismatch between batch and single prediction"
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestPredictRejectsWrongSizes(t *testing.T) {
	a, m := setup(t)
	c := load(t, a.Model, m)
	for _, tc := range []struct {
		values []float64
		rows   int
	}{{nil, 0}, {[]float64{1, 2, 3}, 1}, {[]float64{1, 2, 3, 4}, 2}} {
		if _, err := c.Predict(tc.values, tc.rows); err == nil {
			t.Errorf("Predict(%v, %d): expected an error", tc.values, tc.rows)
		}
	}
}

// writeManifest copies the real manifest into dir with edit applied.
func writeManifest(t *testing.T, src, dir string, edit func(map[string]any)) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	data, _ = json.Marshal(doc)
	path := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadRefusesWhatTheManifestDoesNotVouchFor(t *testing.T) {
	a, _ := setup(t)
	original, err := os.ReadFile(a.Model)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		model     []byte // nil: no model file
		editDoc   func(map[string]any)
		wantError string
	}{
		// Garbage that ORT could not parse: the error must be the hash, proving it came first.
		{"tampered", []byte("not an onnx model"), func(map[string]any) {}, "has sha256"},
		{"missing", nil, func(map[string]any) {}, "not found"},
		{"unlisted", original, func(d map[string]any) { delete(d["artifacts"].(map[string]any), "model.onnx") }, "not listed"},
		{"labels disagree with model", original, func(d map[string]any) {
			d["class_labels"] = []string{"a", "b", "c", "d"}
		}, "does not match manifest"},
		{"features disagree with model", original, func(d map[string]any) {
			d["feature_names"] = []string{"a", "b", "c"}
		}, "expected one float32 or float64 input [N, 3]"},
		{"probabilities output named elsewhere", original, func(d map[string]any) {
			d["onnx"].(map[string]any)["probabilities_output"] = "class_probabilities"
		}, `tensor named "class_probabilities"`},
		{"input type disagrees with the manifest", original, func(d map[string]any) {
			d["onnx"].(map[string]any)["input_type"] = "double"
			d["onnx"].(map[string]any)["serving_file"] = "model.onnx"
		}, `onnx.input_type="double" but the input is`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			modelPath := filepath.Join(dir, "model.onnx")
			if tc.model != nil {
				if err := os.WriteFile(modelPath, tc.model, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, err := LoadManifest(writeManifest(t, a.Manifest, dir, tc.editDoc))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Load(modelPath, m, Options{IntraOpThreads: 1})
			if err == nil {
				c.Close()
				t.Fatalf("Load succeeded, expected an error containing %q", tc.wantError)
			}
			if !strings.Contains(err.Error(), tc.wantError) {
				t.Errorf("error %q does not contain %q", err, tc.wantError)
			}
		})
	}
}

func TestLoadManifestErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadManifest(filepath.Join(dir, "absent.json")); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("absent manifest: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"feature_names": ["a", "a"], "class_labels": ["x"]}`), 0o644)
	if _, err := LoadManifest(bad); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate feature: %v", err)
	}
}

// Every zoo model the notebooks built is served: float32 or float64 input as the manifest
// says, the probability output by its name; the single-row binding and the batch path agree.
func TestZooModelsLoadAndAgreeBetweenSingleAndBatch(t *testing.T) {
	setup(t)
	for name, a := range testenv.Zoo(t) {
		t.Run(name, func(t *testing.T) {
			m, err := LoadManifest(a.Manifest)
			if err != nil {
				t.Fatal(err)
			}
			c := load(t, a.Model, m)
			wantInput := map[string]string{"": "float32", "float": "float32", "double": "float64"}[m.ONNX.InputType]
			if !strings.Contains(c.Description(), "input "+wantInput) {
				t.Errorf("description %q, manifest input_type %q", c.Description(), m.ONNX.InputType)
			}
			const n = 50
			rows := randomRows(rand.New(rand.NewPCG(5, 6)), n)
			batch, err := c.Predict(rows, n)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				single, err := c.Predict(rows[i*4:(i+1)*4], 1)
				if err != nil {
					t.Fatal(err)
				}
				var sum float64
				for k, p := range single[0].Probabilities {
					sum += p
					if math.Abs(p-batch[i].Probabilities[k]) > 1e-6 {
						t.Fatalf("row %d class %d: single %v, batch %v", i, k, p, batch[i].Probabilities[k])
					}
				}
				if math.Abs(sum-1) > 1e-5 {
					t.Errorf("row %d: probabilities %v sum to %v", i, single[0].Probabilities, sum)
				}
			}
		})
	}
}

// A single-row binding is reused: a second prediction must not see the first one's input or
// output (the tensors are written in place).
func TestReusedBindingsDoNotLeakBetweenPredictions(t *testing.T) {
	a, m := setup(t)
	c := load(t, a.Model, m)
	setosa, _ := c.Predict([]float64{5.1, 3.5, 1.4, 0.2}, 1)
	virginica, _ := c.Predict([]float64{6.7, 3.0, 5.2, 2.3}, 1)
	again, _ := c.Predict([]float64{5.1, 3.5, 1.4, 0.2}, 1)
	if setosa[0].ClassID != 0 || virginica[0].ClassID != 2 || !slices.Equal(again[0].Probabilities, setosa[0].Probabilities) {
		t.Errorf("setosa %v, virginica %v, setosa again %v", setosa, virginica, again)
	}
	if &setosa[0].Probabilities[0] == &again[0].Probabilities[0] {
		t.Error("predictions share the binding's output memory")
	}
}
