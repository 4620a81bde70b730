package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Manifest is the part of artifacts/manifest.json (schema: helpers/manifest.py) the service
// needs: the request's feature names in column order, the class labels (index = class_id),
// and the sha256 of every artifact.
type Manifest struct {
	FeatureNames []string            `json:"feature_names"`
	ClassLabels  []string            `json:"class_labels"`
	Artifacts    map[string]Artifact `json:"artifacts"`
	ONNX         struct {
		InputName string `json:"input_name"`
		// InputType ("float" | "double") and ServingFile: the zoo records which input type
		// the served graph takes, for the file named ServingFile.
		InputType           string `json:"input_type"`
		ServingFile         string `json:"serving_file"`
		ProbabilitiesOutput string `json:"probabilities_output"` // default "probabilities"
	} `json:"onnx"`

	path string
}

// Artifact is one file recorded in the manifest.
type Artifact struct {
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// LoadManifest reads and checks the manifest; errors name the file and what was expected.
func LoadManifest(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("manifest %s not found: expected the manifest.json written by training (MODEL_MANIFEST)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest %s cannot be read: %w", path, err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("manifest %s is not valid JSON: %w", path, err)
	}
	if len(m.FeatureNames) == 0 || len(m.ClassLabels) == 0 {
		return nil, fmt.Errorf("manifest %s has no feature_names or class_labels: expected both non-empty", path)
	}
	seen := map[string]bool{}
	for _, name := range m.FeatureNames {
		if seen[name] {
			return nil, fmt.Errorf("manifest %s lists feature %q twice: expected unique feature_names", path, name)
		}
		seen[name] = true
	}
	m.path = path
	return &m, nil
}

// readVerified reads the model file and checks its sha256 against the manifest before anything
// parses it. The verified bytes themselves are what the session is built from, so the file
// cannot be swapped between the check and the load.
func (m *Manifest) readVerified(modelPath string) ([]byte, string, error) {
	name := filepath.Base(modelPath)
	entry, listed := m.Artifacts[name]
	data, err := os.ReadFile(modelPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, "", fmt.Errorf("model %s not found: expected the ONNX file listed in %s (MODEL_PATH)", modelPath, m.path)
	case err != nil:
		return nil, "", fmt.Errorf("model %s cannot be read: %w", modelPath, err)
	case !listed || entry.SHA256 == "":
		return nil, "", fmt.Errorf("model %s is not listed in manifest %s: expected an artifacts[%q].sha256 entry", modelPath, m.path, name)
	}
	sum := sha256.Sum256(data)
	actual := hex.EncodeToString(sum[:])
	if actual != entry.SHA256 {
		return nil, "", fmt.Errorf("model %s has sha256 %s but manifest %s expects %s: the file was changed after training", modelPath, actual, m.path, entry.SHA256)
	}
	return data, actual, nil
}
