// Package testenv finds what the Go tests need outside the module: the artifacts written by
// training (../artifacts or MODEL_PATH / MODEL_MANIFEST) and the ONNX Runtime C library
// (ORT_SHARED_LIB_PATH, as `make test` sets it). Only tests import it.
package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
)

// Artifacts are the files the tests load.
type Artifacts struct {
	Model    string // model.onnx (MODEL_PATH)
	ZipMap   string // model_zipmap.onnx, beside the model
	Manifest string // manifest.json (MODEL_MANIFEST)
}

// moduleRoot is go-api-onnx/, found from this source file so it works from any package dir.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// FindArtifacts skips the test (with the reason) when the artifacts have not been produced.
func FindArtifacts(t testing.TB) Artifacts {
	t.Helper()
	dir := filepath.Join(moduleRoot(), "..", "artifacts")
	a := Artifacts{
		Model:    envOr("MODEL_PATH", filepath.Join(dir, "model.onnx")),
		Manifest: envOr("MODEL_MANIFEST", filepath.Join(dir, "manifest.json")),
	}
	a.ZipMap = filepath.Join(filepath.Dir(a.Model), "model_zipmap.onnx")
	for _, path := range []string{a.Model, a.ZipMap, a.Manifest} {
		if _, err := os.Stat(path); err != nil {
			t.Skipf("artifact %s is absent (run notebooks 01-02 or `make study` to produce it): %v", path, err)
		}
	}
	return a
}

// Zoo is every model folder of the zoo (notebook 08: ../artifacts/zoo/<name>/ or ZOO_DIR) that
// has an ONNX file, by name; it skips the test when there is none.
func Zoo(t testing.TB) map[string]Artifacts {
	t.Helper()
	dir := envOr("ZOO_DIR", filepath.Join(moduleRoot(), "..", "artifacts", "zoo"))
	found, _ := filepath.Glob(filepath.Join(dir, "*", "model.onnx"))
	if len(found) == 0 {
		t.Skipf("no zoo model under %s (run notebook 08 or `make study` to build them)", dir)
	}
	zoo := map[string]Artifacts{}
	for _, model := range found {
		folder := filepath.Dir(model)
		zoo[filepath.Base(folder)] = Artifacts{Model: model, Manifest: filepath.Join(folder, "manifest.json")}
	}
	return zoo
}

// OrtLibrary is ORT_SHARED_LIB_PATH, or the library inside the repo's onnxruntime wheel
// (what `python -m helpers.paths ort-lib` prints). A missing library fails the test: the
// artifacts exist, so the runtime is expected too.
func OrtLibrary(t testing.TB) string {
	t.Helper()
	if path := os.Getenv("ORT_SHARED_LIB_PATH"); path != "" {
		return path
	}
	repo := filepath.Join(moduleRoot(), "..")
	for _, venv := range []string{".venvs/python-api-onnx", ".venv"} {
		found, _ := filepath.Glob(filepath.Join(repo, venv, "lib", "python3*", "site-packages", "onnxruntime", "capi", "libonnxruntime.so.*"))
		if len(found) > 0 {
			sort.Strings(found)
			return found[len(found)-1]
		}
	}
	t.Fatalf("ONNX Runtime library not found: set ORT_SHARED_LIB_PATH=$(.venv/bin/python -m helpers.paths ort-lib) or run `make setup`")
	return ""
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
