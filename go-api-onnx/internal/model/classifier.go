// Package model loads an ONNX classifier into one ONNX Runtime session (after checking its
// sha256 against the manifest) and turns feature rows into class probabilities.
//
// Any classifier the manifest describes (logistic regression, forests, boosting, SVC, MLP,
// kNN…), as long as the graph has one input of the features and a probability output:
//   - input element type float32 or float64, read from the graph; when the manifest describes
//     this file (onnx.serving_file) its onnx.input_type ("float" | "double") must agree.
//   - probabilities: skl2onnx's ZipMap output (a sequence of maps, model_zipmap.onnx), for
//     which every output is fetched as the original post did; otherwise the float32 or
//     float64 tensor [N, classes] named by onnx.probabilities_output (default
//     "probabilities"), fetched alone.
//
// # Concurrency
//
// One *Classifier — one ORT session — serves every request. This is safe because:
//   - ONNX Runtime guarantees that Run on one session is thread-safe: many threads may call it
//     concurrently, each with its own input and output values (maintainers' answer in
//     microsoft/onnxruntime#114; restated in microsoft/onnxruntime PR #19301: "InferenceSession::
//     Run() is guaranteed to be thread-safe meaning multiple threads can call this function
//     concurrently"), with an IoBinding too, as long as each binding is used by one call.
//   - onnxruntime_go's AdvancedSession is NOT safe to share: it binds its input/output tensors
//     at creation and reuses internal wrapper state in Run. DynamicAdvancedSession takes the
//     tensors per call and "does allow concurrent use by multiple goroutines"
//     (maintainer yalue in github.com/yalue/onnxruntime_go/issues/79).
//
// So no lock is taken around Run. A single row (POST /predict, the hot path) runs through an
// IoBinding with its input and output tensors bound once and reused from a free list: one cgo
// call per prediction instead of a dozen (tensor creation, output type and shape queries, a
// copy into a second tensor, two releases). Batches and the ZipMap graph allocate their
// tensors per call.
package model

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
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
	Probabilities []float64
}

// Classifier is a loaded, verified model. Safe for concurrent use.
type Classifier struct {
	session     *ort.DynamicAdvancedSession
	inputName   string
	inputDouble bool     // float64 input (else float32)
	outputs     []string // what Run fetches
	outDouble   bool     // float64 probabilities tensor (skl2onnx's double graphs), else float32
	zipMap      int      // index in outputs of the ZipMap sequence; -1: a probabilities tensor
	features    []string
	labels      []string
	sha256      string
	description string
	warmup      Prediction
	singles     chan *single // free list of single-row bindings
}

// single is one single-row inference's tensors, bound once.
type single struct {
	binding *ort.IoBinding
	input   ort.Value
	output  ort.Value
}

// maxIdleSingles bounds the free list: about the number of requests predicting at once.
const maxIdleSingles = 16

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
// bytes and runs one warm-up inference (all features missing) that also checks the model
// agrees with the manifest (feature count, class count) and can score it. InitRuntime must
// have succeeded first.
func Load(modelPath string, manifest *Manifest, opts Options) (*Classifier, error) {
	data, digest, err := manifest.readVerified(modelPath)
	if err != nil {
		return nil, err
	}
	inputs, outputs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("model %s cannot be loaded by ONNX Runtime: %w", modelPath, err)
	}
	c := &Classifier{features: manifest.FeatureNames, labels: manifest.ClassLabels, sha256: digest, singles: make(chan *single, maxIdleSingles)}
	if err := c.pickInput(inputs, manifest, filepath.Base(modelPath)); err != nil {
		return nil, fmt.Errorf("model %s: %w", modelPath, err)
	}
	if err := c.pickOutputs(outputs, manifest.ONNX.ProbabilitiesOutput); err != nil {
		return nil, fmt.Errorf("model %s: %w", modelPath, err)
	}
	probabilities := floatType(c.outDouble) + " tensor " + c.outputs[0]
	if c.zipMap >= 0 {
		probabilities = fmt.Sprintf("zipmap %s (all %d outputs fetched)", c.outputs[c.zipMap], len(c.outputs))
	}
	c.description = fmt.Sprintf("intra_op_threads=%d, spinning=%t, input %s, probabilities %s",
		opts.IntraOpThreads, opts.AllowSpinning, floatType(c.inputDouble), probabilities)

	options, err := sessionOptions(opts)
	if err != nil {
		return nil, err
	}
	defer options.Destroy()
	c.session, err = ort.NewDynamicAdvancedSessionWithONNXData(data, []string{c.inputName}, c.outputs, options)
	if err != nil {
		return nil, fmt.Errorf("model %s: creating the ONNX Runtime session: %w", modelPath, err)
	}
	// The first Run allocates ORT's buffers, and the output width is checked against the
	// manifest's class_labels before the port is bound.
	missing := make([]float64, len(c.features))
	for i := range missing {
		missing[i] = math.NaN()
	}
	warmup, err := c.Predict(missing, 1)
	if err == nil && !finite(warmup[0].Probabilities) {
		err = fmt.Errorf("probabilities %v for an all-missing instance: expected finite values", warmup[0].Probabilities)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("model %s does not match manifest %s: %w", modelPath, manifest.path, err)
	}
	c.warmup = warmup[0]
	return c, nil
}

func (c *Classifier) pickInput(inputs []ort.InputOutputInfo, manifest *Manifest, file string) error {
	if len(inputs) != 1 || inputs[0].OrtValueType != ort.ONNXTypeTensor || !isFloat(inputs[0].DataType) ||
		len(inputs[0].Dimensions) != 2 || inputs[0].Dimensions[1] != int64(len(manifest.FeatureNames)) {
		return fmt.Errorf("expected one float32 or float64 input [N, %d] (the manifest's feature_names), got %v", len(manifest.FeatureNames), inputs)
	}
	in := inputs[0]
	if want := manifest.ONNX.InputName; want != "" && in.Name != want {
		return fmt.Errorf("input is %q but the manifest says onnx.input_name=%q", in.Name, want)
	}
	c.inputName, c.inputDouble = in.Name, in.DataType == ort.TensorElementDataTypeDouble
	if declared := manifest.ONNX.InputType; manifest.ONNX.ServingFile == file && declared != "" {
		if (declared != "float" && declared != "double") || (declared == "double") != c.inputDouble {
			return fmt.Errorf("the manifest says onnx.input_type=%q but the input is %s: expected them to agree", declared, in.DataType)
		}
	}
	return nil
}

// pickOutputs: a ZipMap sequence if the graph has one (then every output is fetched, as the
// post did), else the probabilities tensor by the manifest's name.
func (c *Classifier) pickOutputs(outputs []ort.InputOutputInfo, wanted string) error {
	if wanted == "" {
		wanted = "probabilities" // skl2onnx's name with zipmap=False
	}
	c.zipMap = -1
	for i, o := range outputs {
		if o.OrtValueType == ort.ONNXTypeSequence {
			c.zipMap = i
		}
		c.outputs = append(c.outputs, o.Name)
	}
	if c.zipMap >= 0 {
		return nil
	}
	for _, o := range outputs {
		if o.Name == wanted && o.OrtValueType == ort.ONNXTypeTensor && len(o.Dimensions) == 2 && isFloat(o.DataType) {
			c.outputs, c.outDouble = []string{o.Name}, o.DataType == ort.TensorElementDataTypeDouble
			return nil
		}
	}
	return fmt.Errorf("expected a float32 or float64 [N, classes] tensor named %q (manifest onnx.probabilities_output) or a ZipMap sequence, got %v", wanted, outputs)
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

// Features are the request fields in model column order (manifest feature_names).
func (c *Classifier) Features() []string { return c.features }

// Labels are the class labels, index = class_id (manifest class_labels).
func (c *Classifier) Labels() []string { return c.labels }

// SHA256 is the verified model file's digest.
func (c *Classifier) SHA256() string { return c.sha256 }

// Description says how the graph is run: ORT options, input type, probability output.
func (c *Classifier) Description() string { return c.description }

// Warmup is the start-up prediction for an instance with every feature missing.
func (c *Classifier) Warmup() Prediction { return c.warmup }

// Predict runs rows×len(Features()) row-major values (NaN = missing, imputed by the graph)
// through the shared session in one batch, converted to the graph's input type. Safe for
// concurrent use (see package doc).
func (c *Classifier) Predict(values []float64, rows int) ([]Prediction, error) {
	if rows < 1 || len(values) != rows*len(c.features) {
		return nil, fmt.Errorf("predict: expected %d rows × %d features, got %d values", rows, len(c.features), len(values))
	}
	var probabilities []float64
	var err error
	if rows == 1 && c.zipMap < 0 {
		probabilities, err = c.predictSingle(values)
	} else {
		probabilities, err = c.predictBatch(values, rows)
	}
	if err != nil {
		return nil, fmt.Errorf("predict: %w", err)
	}
	classes := len(c.labels)
	if len(probabilities) != rows*classes {
		return nil, fmt.Errorf("predict: %d probabilities for %d rows, expected %d per row (one per manifest class label)", len(probabilities), rows, classes)
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

func (c *Classifier) predictSingle(values []float64) ([]float64, error) {
	var s *single
	select {
	case s = <-c.singles:
	default:
		var err error
		if s, err = c.newSingle(); err != nil {
			return nil, err
		}
	}
	setInput(s.input, values)
	err := c.session.RunWithBinding(s.binding)
	probabilities, _ := appendFloats(nil, s.output) // a copy: the tensor is reused
	select {
	case c.singles <- s:
	default:
		s.destroy()
	}
	return probabilities, err
}

func (c *Classifier) newSingle() (*single, error) {
	s := &single{}
	var err error
	if s.input, err = newTensor(c.inputDouble, 1, len(c.features)); err == nil {
		if s.output, err = newTensor(c.outDouble, 1, len(c.labels)); err == nil {
			if s.binding, err = c.session.CreateIoBinding(); err == nil {
				err = errors.Join(s.binding.BindInput(c.inputName, s.input), s.binding.BindOutput(c.outputs[0], s.output))
			}
		}
	}
	if err != nil {
		s.destroy()
		return nil, fmt.Errorf("binding single-row tensors: %w", err)
	}
	return s, nil
}

func (s *single) destroy() {
	if s.binding != nil {
		s.binding.Destroy()
	}
	for _, v := range []ort.Value{s.input, s.output} {
		if v != nil {
			v.Destroy()
		}
	}
}

func (c *Classifier) predictBatch(values []float64, rows int) ([]float64, error) {
	input, err := newTensor(c.inputDouble, rows, len(c.features))
	if err != nil {
		return nil, err
	}
	defer input.Destroy()
	setInput(input, values)
	outputs := make([]ort.Value, len(c.outputs)) // nil: ORT allocates (the ZipMap graph)
	if c.zipMap < 0 {
		if outputs[0], err = newTensor(c.outDouble, rows, len(c.labels)); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, o := range outputs {
			if o != nil {
				o.Destroy()
			}
		}
	}()
	if err := c.session.Run([]ort.Value{input}, outputs); err != nil {
		return nil, err
	}
	if c.zipMap >= 0 {
		return probabilitiesFromZipMap(outputs[c.zipMap], rows, len(c.labels))
	}
	probabilities, _ := appendFloats(nil, outputs[0])
	return probabilities, nil
}

// Close releases the session and the idle bindings.
func (c *Classifier) Close() error {
	if c.session == nil {
		return nil
	}
	for len(c.singles) > 0 {
		(<-c.singles).destroy()
	}
	err := c.session.Destroy()
	c.session = nil
	return err
}

func finite(values []float64) bool {
	for _, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

func isFloat(t ort.TensorElementDataType) bool {
	return t == ort.TensorElementDataTypeFloat || t == ort.TensorElementDataTypeDouble
}

func floatType(double bool) string {
	if double {
		return "float64"
	}
	return "float32"
}

// newTensor is a zeroed float64 or float32 tensor [rows, cols] in Go memory.
func newTensor(double bool, rows, cols int) (ort.Value, error) {
	shape := ort.NewShape(int64(rows), int64(cols))
	if double {
		return value(ort.NewTensor(shape, make([]float64, rows*cols)))
	}
	return value(ort.NewTensor(shape, make([]float32, rows*cols)))
}

// value keeps a failed tensor out of the interface (a typed nil would not compare to nil).
func value[T float32 | float64](t *ort.Tensor[T], err error) (ort.Value, error) {
	if err != nil {
		return nil, err
	}
	return t, nil
}

// setInput writes values into a tensor made by newTensor, converting to float32 if need be.
func setInput(v ort.Value, values []float64) {
	switch t := v.(type) {
	case *ort.Tensor[float64]:
		copy(t.GetData(), values)
	case *ort.Tensor[float32]:
		data := t.GetData()
		for i, x := range values {
			data[i] = float32(x)
		}
	}
}

// appendFloats appends a float32 or float64 tensor's data as float64; false for any other
// value. The result is Go memory, valid after the tensor is destroyed or reused.
func appendFloats(dst []float64, v ort.Value) ([]float64, bool) {
	switch t := v.(type) {
	case *ort.Tensor[float64]:
		return append(dst, t.GetData()...), true
	case *ort.Tensor[float32]:
		dst = slices.Grow(dst, len(t.GetData()))
		for _, f := range t.GetData() {
			dst = append(dst, float64(f))
		}
		return dst, true
	}
	return dst, false
}
