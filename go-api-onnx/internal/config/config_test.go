package config

import (
	"strings"
	"testing"
)

func lookupFrom(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		value, ok := env[name]
		return value, ok
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Load(lookupFrom(nil))
	if err != nil {
		t.Fatalf("Load with empty environment: %v", err)
	}
	want := Config{
		Host: "127.0.0.1", Port: 5000,
		ModelPath: "artifacts/model.onnx", ManifestPath: "artifacts/manifest.json",
		ServiceName: "go-api-onnx", MetricsExporter: "prometheus",
		PrometheusHost: "127.0.0.1", PrometheusPort: 9464,
		IntraOpThreads: 1, AllowSpinning: false, OrtSharedLibPath: "libonnxruntime.so",
	}
	if cfg != want {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestOverrides(t *testing.T) {
	cfg, err := Load(lookupFrom(map[string]string{
		"HOST": "0.0.0.0", "PORT": "5003", "OTEL_METRICS_EXPORTER": "OTLP",
		"OTEL_EXPORTER_PROMETHEUS_PORT": "9999", "ORT_INTRA_OP_NUM_THREADS": "0",
		"ORT_ALLOW_SPINNING": "1", "OTEL_SERVICE_NAME": "go", "ORT_SHARED_LIB_PATH": "/x/lib.so",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr() != "0.0.0.0:5003" || cfg.PrometheusAddr() != "0.0.0.0:9999" ||
		cfg.MetricsExporter != "otlp" || cfg.IntraOpThreads != 0 || !cfg.AllowSpinning ||
		cfg.ServiceName != "go" || cfg.OrtSharedLibPath != "/x/lib.so" {
		t.Errorf("overrides not applied: %+v", cfg)
	}
}

func TestInvalidSettingsNameTheVariable(t *testing.T) {
	cases := []struct {
		env      map[string]string
		variable string
	}{
		{map[string]string{"PORT": "abc"}, "PORT"},
		{map[string]string{"PORT": "0"}, "PORT"},
		{map[string]string{"PORT": "70000"}, "PORT"},
		{map[string]string{"OTEL_EXPORTER_PROMETHEUS_PORT": "-1"}, "OTEL_EXPORTER_PROMETHEUS_PORT"},
		{map[string]string{"PORT": "9464"}, "OTEL_EXPORTER_PROMETHEUS_PORT"},
		{map[string]string{"OTEL_METRICS_EXPORTER": "zipkin"}, "OTEL_METRICS_EXPORTER"},
		{map[string]string{"ORT_INTRA_OP_NUM_THREADS": "two"}, "ORT_INTRA_OP_NUM_THREADS"},
		{map[string]string{"ORT_INTRA_OP_NUM_THREADS": "-1"}, "ORT_INTRA_OP_NUM_THREADS"},
		{map[string]string{"ORT_ALLOW_SPINNING": "yes"}, "ORT_ALLOW_SPINNING"},
	}
	for _, tc := range cases {
		_, err := Load(lookupFrom(tc.env))
		if err == nil {
			t.Errorf("%v: expected an error", tc.env)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.variable+"=") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %q should be one line starting with %s=", tc.env, err, tc.variable)
		}
	}
}
