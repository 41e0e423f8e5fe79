package config

import "fmt"

// Secret is a credential read from the config, a file or the environment. It
// prints as *** in every fmt verb and in JSON, so a Config can be logged or
// shown by `tarty status` without leaking it; Reveal returns the value.
type Secret string

const redacted = "***"

// Reveal returns the secret value, for the one place that must use it.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether the secret is non-empty.
func (s Secret) IsSet() bool { return s != "" }

// String returns *** for a set secret and "" for an empty one.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.String()) }

// Format applies to every verb, %x and %q included.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	fmt.Fprint(f, s.String())
}

// MarshalJSON writes the redacted form.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText writes the redacted form (also used by zerolog's Interface and yaml).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
