package config

import (
	"strings"
	"testing"
	"time"
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
		PredictStage: "full", AccessLog: false, TracesExporter: "none", SpanExportDelay: 5 * time.Second,
		MaxHeaderBytes: 16384, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
	}
	if cfg != want {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
}

// Every setting's accepted values, each read into the field it sets (blank = the default).
func TestGoodValues(t *testing.T) {
	cases := []struct {
		env   map[string]string
		check func(Config) bool
	}{
		{map[string]string{"HOST": "0.0.0.0", "PORT": "5003"}, func(c Config) bool { return c.Addr() == "0.0.0.0:5003" && c.PrometheusAddr() == "0.0.0.0:9464" }},
		{map[string]string{"HOST": "::1", "OTEL_EXPORTER_PROMETHEUS_PORT": "9999"}, func(c Config) bool { return c.PrometheusAddr() == "[::1]:9999" }},
		{map[string]string{"OTEL_EXPORTER_PROMETHEUS_HOST": "0.0.0.0"}, func(c Config) bool { return c.PrometheusHost == "0.0.0.0" && c.Host == "127.0.0.1" }},
		{map[string]string{"MODEL_PATH": "m.onnx", "MODEL_MANIFEST": "m.json"}, func(c Config) bool { return c.ModelPath == "m.onnx" && c.ManifestPath == "m.json" }},
		{map[string]string{"OTEL_SERVICE_NAME": "go", "ORT_SHARED_LIB_PATH": "/x/lib.so"}, func(c Config) bool { return c.ServiceName == "go" && c.OrtSharedLibPath == "/x/lib.so" }},
		{map[string]string{"OTEL_METRICS_EXPORTER": "OTLP"}, func(c Config) bool { return c.MetricsExporter == "otlp" }},
		{map[string]string{"OTEL_METRICS_EXPORTER": "none", "PORT": "9464"}, func(c Config) bool { return c.MetricsExporter == "none" }},
		{map[string]string{"OTEL_METRICS_EXPORTER": "console"}, func(c Config) bool { return c.MetricsExporter == "console" }},
		{map[string]string{"ORT_INTRA_OP_NUM_THREADS": "0", "ORT_ALLOW_SPINNING": "1"}, func(c Config) bool { return c.IntraOpThreads == 0 && c.AllowSpinning }},
		{map[string]string{"ORT_ALLOW_SPINNING": "0"}, func(c Config) bool { return !c.AllowSpinning }},
		{map[string]string{"PREDICT_STAGE": "parse"}, func(c Config) bool { return c.PredictStage == "parse" }},
		{map[string]string{"PREDICT_STAGE": "NOOP"}, func(c Config) bool { return c.PredictStage == "noop" }},
		{map[string]string{"PREDICT_STAGE": " "}, func(c Config) bool { return c.PredictStage == "full" }},
		{map[string]string{"ACCESS_LOG": "1"}, func(c Config) bool { return c.AccessLog }},
		{map[string]string{"ACCESS_LOG": "0"}, func(c Config) bool { return !c.AccessLog }},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_SCHEDULE_DELAY": "3000"}, func(c Config) bool { return c.TracesExporter == "otlp" && c.SpanExportDelay == 3*time.Second }},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none"}, func(c Config) bool { return c.TracesExporter == "none" }},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector:4318/v1/traces"}, func(c Config) bool { return true }},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, func(c Config) bool { return true }},                    // checked only when otlp is used
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, func(c Config) bool { return c.MetricsExporter == "prometheus" }}, // likewise
		{map[string]string{"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, func(c Config) bool { return c.MetricsExporter == "otlp" }},
		{map[string]string{"GOMAXPROCS": "1"}, func(c Config) bool { return true }},
		{map[string]string{"GOMAXPROCS": "+2"}, func(c Config) bool { return true }}, // the runtime's strconv.ParseInt takes it
		{map[string]string{"GOMAXPROCS": ""}, func(c Config) bool { return true }},
		{map[string]string{"GODEBUG": "containermaxprocs=0,updatemaxprocs=0"}, func(c Config) bool { return true }},
		{map[string]string{"HTTP_MAX_HEADER_BYTES": "1048576"}, func(c Config) bool { return c.MaxHeaderBytes == 1<<20 }},
		{map[string]string{"HTTP_READ_HEADER_TIMEOUT": "2", "HTTP_READ_TIMEOUT": "2"}, func(c Config) bool {
			return c.ReadHeaderTimeout == 2*time.Second && c.ReadTimeout == 2*time.Second
		}},
	}
	for _, tc := range cases {
		cfg, err := Load(lookupFrom(tc.env))
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
		} else if !tc.check(cfg) {
			t.Errorf("%v: not applied: %+v", tc.env, cfg)
		}
	}
}

func TestInvalidSettingsNameTheVariableAndValue(t *testing.T) {
	cases := []struct {
		env      map[string]string
		variable string
		value    string
	}{
		{map[string]string{"PORT": "abc"}, "PORT", "abc"},
		{map[string]string{"PORT": "0"}, "PORT", "0"},
		{map[string]string{"PORT": "70000"}, "PORT", "70000"},
		{map[string]string{"OTEL_EXPORTER_PROMETHEUS_PORT": "-1"}, "OTEL_EXPORTER_PROMETHEUS_PORT", "-1"},
		{map[string]string{"PORT": "9464"}, "OTEL_EXPORTER_PROMETHEUS_PORT", "9464"},
		{map[string]string{"OTEL_METRICS_EXPORTER": "zipkin"}, "OTEL_METRICS_EXPORTER", "zipkin"},
		{map[string]string{"ORT_INTRA_OP_NUM_THREADS": "two"}, "ORT_INTRA_OP_NUM_THREADS", "two"},
		{map[string]string{"ORT_INTRA_OP_NUM_THREADS": "-1"}, "ORT_INTRA_OP_NUM_THREADS", "-1"},
		{map[string]string{"ORT_ALLOW_SPINNING": "yes"}, "ORT_ALLOW_SPINNING", "yes"},
		{map[string]string{"PREDICT_STAGE": "fast"}, "PREDICT_STAGE", "fast"},
		{map[string]string{"PREDICT_STAGE": "none"}, "PREDICT_STAGE", "none"},
		{map[string]string{"ACCESS_LOG": "yes"}, "ACCESS_LOG", "yes"},
		{map[string]string{"ACCESS_LOG": "2"}, "ACCESS_LOG", "2"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER", "jaeger"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, "OTEL_TRACES_EXPORTER", "console"},
		{map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "3s"}, "OTEL_BSP_SCHEDULE_DELAY", "3s"},
		{map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "0"}, "OTEL_BSP_SCHEDULE_DELAY", "0"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318"},
		{map[string]string{"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://"}, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://"},
		{map[string]string{"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "grpc://x:4317"}, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "grpc://x:4317"},
		{map[string]string{"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"},
		{map[string]string{"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"},
		{map[string]string{"GOMAXPROCS": "0"}, "GOMAXPROCS", "0"},
		{map[string]string{"GOMAXPROCS": "-1"}, "GOMAXPROCS", "-1"},
		{map[string]string{"GOMAXPROCS": "two"}, "GOMAXPROCS", "two"},
		{map[string]string{"GOMAXPROCS": "1.5"}, "GOMAXPROCS", "1.5"},
		{map[string]string{"GOMAXPROCS": " 2"}, "GOMAXPROCS", " 2"}, // the runtime does not trim
		{map[string]string{"GOMAXPROCS": "99999999999"}, "GOMAXPROCS", "99999999999"},
		{map[string]string{"HTTP_MAX_HEADER_BYTES": "512"}, "HTTP_MAX_HEADER_BYTES", "512"},
		{map[string]string{"HTTP_MAX_HEADER_BYTES": "16k"}, "HTTP_MAX_HEADER_BYTES", "16k"},
		{map[string]string{"HTTP_READ_HEADER_TIMEOUT": "0"}, "HTTP_READ_HEADER_TIMEOUT", "0"},
		{map[string]string{"HTTP_READ_HEADER_TIMEOUT": "5s"}, "HTTP_READ_HEADER_TIMEOUT", "5s"},
		{map[string]string{"HTTP_READ_TIMEOUT": "-1"}, "HTTP_READ_TIMEOUT", "-1"},
		{map[string]string{"HTTP_READ_TIMEOUT": "3"}, "HTTP_READ_TIMEOUT", "3"}, // below the head's 5
	}
	for _, tc := range cases {
		_, err := Load(lookupFrom(tc.env))
		if err == nil {
			t.Errorf("%v: expected an error", tc.env)
			continue
		}
		prefix := tc.variable + "=\"" + tc.value + "\""
		if (tc.variable == "OTEL_EXPORTER_PROMETHEUS_PORT" && tc.value == "9464") || (tc.variable == "HTTP_READ_TIMEOUT" && tc.value == "3") {
			prefix = tc.variable + "=" + tc.value
		}
		if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), "expected") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %q should be one line starting with %s and saying what was expected", tc.env, err, prefix)
		}
	}
}
