package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input makes the loader panic, every failure is a *Error whose
// problems all name a key, and every accepted config passes validation again.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	if data, err := os.ReadFile("../tarty.yaml.example"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("a: &x [*x]"))
	f.Add([]byte("github: *missing"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, err := Parse(data, "fuzz.yaml", secretsEnv())
		if err != nil {
			var cerr *Error
			if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			for _, p := range cerr.Problems {
				if p.Key == "" || p.Message == "" {
					t.Fatalf("problem without key or message: %+v", p)
				}
			}
			return
		}
		if ps := cfg.validate(); len(ps) != 0 {
			t.Fatalf("accepted config fails validation again: %v", ps)
		}
	})
}
