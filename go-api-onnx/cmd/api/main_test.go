package main

import (
	"os"
	"path/filepath"
	"testing"

	"onnx-serving-study/go-api-onnx/internal/testenv"
)

// Start-up failures exit with status 2 before anything is bound (the contract); the happy
// path, SIGTERM and the served bytes are covered by tests/integration against the binary.
func TestStartupFailuresExitWithStatus2(t *testing.T) {
	a := testenv.FindArtifacts(t)
	tampered := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(tampered, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]map[string]string{
		"invalid PORT":            {"PORT": "abc"},
		"invalid PREDICT_STAGE":   {"PREDICT_STAGE": "fast"},
		"invalid ACCESS_LOG":      {"ACCESS_LOG": "yes"},
		"invalid traces exporter": {"OTEL_TRACES_EXPORTER": "jaeger"},
		"invalid span delay":      {"OTEL_BSP_SCHEDULE_DELAY": "3s"},
		"invalid GOMAXPROCS":      {"GOMAXPROCS": "0"},
		"missing manifest":        {"MODEL_MANIFEST": filepath.Join(t.TempDir(), "absent.json")},
		"missing model":           {"MODEL_PATH": filepath.Join(t.TempDir(), "model.onnx")},
		"tampered model":          {"MODEL_PATH": tampered},
	}
	for name, env := range cases {
		t.Run(name, func(t *testing.T) {
			t.Setenv("MODEL_PATH", a.Model)
			t.Setenv("MODEL_MANIFEST", a.Manifest)
			t.Setenv("OTEL_METRICS_EXPORTER", "none")
			t.Setenv("HOST", "256.0.0.1") // unbindable: a start-up that got that far returns 1, not 2
			for k, v := range env {
				t.Setenv(k, v)
			}
			if status := run(); status != 2 {
				t.Errorf("run() = %d, want 2", status)
			}
		})
	}
}
