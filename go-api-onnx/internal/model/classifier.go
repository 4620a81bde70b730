// Package model loads the ONNX pipeline into one ONNX Runtime session (after checking its
// sha256 against the manifest) and turns feature rows into class probabilities.
//
// # Concurrency
//
// One *Classifier — one ORT session — serves every request. This is safe because:
//   - ONNX Runtime guarantees that Run on one session is thread-safe: many threads may call it
//     concurrently, each with its own input and output values (maintainers' answer in
//     microsoft/onnxruntime#114; restated in microsoft/onnxruntime PR #19301: "InferenceSession::
//     Run() is guaranteed to be thread-safe meaning multiple threads can call this function
//     concurrently").
//   - onnxruntime_go's AdvancedSession is NOT safe to share: it binds its input/output tensors
//     at creation and reuses internal wrapper state in Run. DynamicAdvancedSession takes the
//     tensors per call and "does allow concurrent use by multiple goroutines"
//     (maintainer yalue in github.com/yalue/onnxruntime_go/issues/79). Its Run only reads the
//     session's immutable name arrays and allocates everything else per call.
//
// So each Predict call creates its own input tensor and lets ORT allocate its output, and no
// lock is taken. A session per request would reload and re-optimise the graph on every call.
package model

import (
	"errors"
	"fmt"
	"math"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// Options are the ORT session settings (ORT_INTRA_OP_NUM_THREADS, ORT_ALLOW_SPINNING).
type Options struct {
	IntraOpThreads int
	AllowSpinning  bool
}

// Prediction is one row's result: class_id = index of the highest probability (first on
// ties), probabilities in manifest label order.
type Prediction struct {
	ClassID       int
	Probabilities []float32
}

type outputKind int

const (
	probabilityTensor outputKind = iota // float32 [N, classes]: skl2onnx with zipmap=False
	zipMapSequence                      // Sequence<Map<int64, float>>: skl2onnx's default ZipMap
)

// Classifier is a loaded, verified model. Safe for concurrent use.
type Classifier struct {
	session    *ort.DynamicAdvancedSession
	output     outputKind
	outputName string
	features   []string
	labels     []string
	sha256     string
}

var (
	runtimeOnce    sync.Once
	runtimeErr     error
	runtimeVersion string
)

// InitRuntime loads the ONNX Runtime shared library and creates the process-wide ORT
// environment. Only the first call's path is used; later calls return the first result.
func InitRuntime(sharedLibPath string) (version string, err error) {
	runtimeOnce.Do(func() {
		ort.SetSharedLibraryPath(sharedLibPath)
		if err := ort.InitializeEnvironment(ort.WithLogLevelWarning()); err != nil {
			runtimeErr = fmt.Errorf("ONNX Runtime library %s cannot be loaded (ORT_SHARED_LIB_PATH): %w", sharedLibPath, err)
			return
		}
		runtimeVersion = ort.GetVersion()
	})
	return runtimeVersion, runtimeErr
}

// ShutdownRuntime releases the ORT environment after every Classifier was closed.
func ShutdownRuntime() error { return ort.DestroyEnvironment() }

// Load verifies modelPath against the manifest, then builds the session from the verified
// bytes and runs one warm-up inference that also checks the model agrees with the manifest
// (feature count, class count). InitRuntime must have succeeded first.
func Load(modelPath string, manifest *Manifest, opts Options) (*Classifier, error) {
	data, digest, err := manifest.readVerified(modelPath)
	if err != nil {
		return nil, err
	}
	inputs, outputs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("model %s cannot be loaded by ONNX Runtime: %w", modelPath, err)
	}
	if len(inputs) != 1 || inputs[0].OrtValueType != ort.ONNXTypeTensor ||
		inputs[0].DataType != ort.TensorElementDataTypeFloat || len(inputs[0].Dimensions) != 2 ||
		inputs[0].Dimensions[1] != int64(len(manifest.FeatureNames)) {
		return nil, fmt.Errorf("model %s: expected one float32 input [N, %d] (the manifest's feature_names), got %v", modelPath, len(manifest.FeatureNames), inputs)
	}
	if want := manifest.ONNX.InputName; want != "" && inputs[0].Name != want {
		return nil, fmt.Errorf("model %s: input is %q but the manifest says onnx.input_name=%q", modelPath, inputs[0].Name, want)
	}
	c := &Classifier{features: manifest.FeatureNames, labels: manifest.ClassLabels, sha256: digest}
	if c.output, c.outputName, err = pickProbabilityOutput(outputs); err != nil {
		return nil, fmt.Errorf("model %s: %w", modelPath, err)
	}

	options, err := sessionOptions(opts)
	if err != nil {
		return nil, err
	}
	defer options.Destroy()
	c.session, err = ort.NewDynamicAdvancedSessionWithONNXData(data, []string{inputs[0].Name}, []string{c.outputName}, options)
	if err != nil {
		return nil, fmt.Errorf("model %s: creating the ONNX Runtime session: %w", modelPath, err)
	}
	// Warm-up with one all-missing row: the first Run allocates ORT's buffers, and the output
	// width is checked against the manifest's class_labels before the port is bound.
	warmup := make([]float32, len(c.features))
	for i := range warmup {
		warmup[i] = float32(math.NaN())
	}
	if _, err := c.Predict(warmup, 1); err != nil {
		c.Close()
		return nil, fmt.Errorf("model %s does not match manifest %s: %w", modelPath, manifest.path, err)
	}
	return c, nil
}

func sessionOptions(opts Options) (*ort.SessionOptions, error) {
	options, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("creating ONNX Runtime session options: %w", err)
	}
	spinning := "0"
	if opts.AllowSpinning {
		spinning = "1"
	}
	err = errors.Join(
		options.SetIntraOpNumThreads(opts.IntraOpThreads),
		// Requests run concurrently on one session; parallelism between graph nodes of one
		// request would only compete with them for the same half core.
		options.SetInterOpNumThreads(1),
		options.AddSessionConfigEntry("session.intra_op.allow_spinning", spinning),
	)
	if err != nil {
		options.Destroy()
		return nil, fmt.Errorf("setting ONNX Runtime session options: %w", err)
	}
	return options, nil
}

// pickProbabilityOutput finds the class-probability output: a float32 [N, classes] tensor
// (model.onnx) or, failing that, ZipMap's sequence of maps (model_zipmap.onnx). The label
// output is not fetched: class_id is defined by the contract as the argmax.
func pickProbabilityOutput(outputs []ort.InputOutputInfo) (outputKind, string, error) {
	for _, o := range outputs {
		if o.OrtValueType == ort.ONNXTypeTensor && o.DataType == ort.TensorElementDataTypeFloat && len(o.Dimensions) == 2 {
			return probabilityTensor, o.Name, nil
		}
	}
	for _, o := range outputs {
		if o.OrtValueType == ort.ONNXTypeSequence {
			return zipMapSequence, o.Name, nil
		}
	}
	return 0, "", fmt.Errorf("expected a float32 [N, classes] probability output or a ZipMap sequence, got %v", outputs)
}

// Features are the request fields in model column order (manifest feature_names).
func (c *Classifier) Features() []string { return c.features }

// Labels are the class labels, index = class_id (manifest class_labels).
func (c *Classifier) Labels() []string { return c.labels }

// SHA256 is the verified model file's digest.
func (c *Classifier) SHA256() string { return c.sha256 }

// Predict runs rows×len(Features()) row-major values (NaN = missing, imputed by the graph)
// through the shared session in one batch. Safe for concurrent use (see package doc).
func (c *Classifier) Predict(values []float32, rows int) ([]Prediction, error) {
	if rows < 1 || len(values) != rows*len(c.features) {
		return nil, fmt.Errorf("predict: expected %d rows × %d features, got %d values", rows, len(c.features), len(values))
	}
	input, err := ort.NewTensor(ort.NewShape(int64(rows), int64(len(c.features))), values)
	if err != nil {
		return nil, fmt.Errorf("predict: creating the input tensor: %w", err)
	}
	defer input.Destroy()
	outputs := []ort.Value{nil} // nil: ORT allocates the output for this call only
	if err := c.session.Run([]ort.Value{input}, outputs); err != nil {
		return nil, fmt.Errorf("predict: %w", err)
	}
	defer outputs[0].Destroy()

	classes := len(c.labels)
	var probabilities []float32
	switch c.output {
	case probabilityTensor:
		tensor, ok := outputs[0].(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("predict: output %q: expected a float32 tensor, got %T", c.outputName, outputs[0])
		}
		if shape := tensor.GetShape(); len(shape) != 2 || shape[0] != int64(rows) || shape[1] != int64(classes) {
			return nil, fmt.Errorf("predict: output %q has shape %v, expected [%d %d] (one column per manifest class label)", c.outputName, shape, rows, classes)
		}
		probabilities = tensor.GetData() // already a Go-owned copy; safe after Destroy
	case zipMapSequence:
		if probabilities, err = probabilitiesFromZipMap(outputs[0], rows, classes); err != nil {
			return nil, fmt.Errorf("predict: output %q: %w", c.outputName, err)
		}
	}

	predictions := make([]Prediction, rows)
	for row := range predictions {
		p := probabilities[row*classes : (row+1)*classes : (row+1)*classes]
		best := 0
		for class := 1; class < classes; class++ {
			if p[class] > p[best] { // strict: the first class wins a tie
				best = class
			}
		}
		predictions[row] = Prediction{ClassID: best, Probabilities: p}
	}
	return predictions, nil
}

// Close releases the session.
func (c *Classifier) Close() error {
	if c.session == nil {
		return nil
	}
	err := c.session.Destroy()
	c.session = nil
	return err
}
