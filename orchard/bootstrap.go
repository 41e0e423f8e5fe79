package orchard

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// bootstrapPrefix starts every Orchard bootstrap token.
const bootstrapPrefix = "orchard-bootstrap-token-v0."

// BootstrapToken is what an Orchard bootstrap token carries: a service
// account, its token and, optionally, the controller's certificate (PEM).
type BootstrapToken struct {
	ServiceAccount string
	Token          string
	Certificate    []byte
}

// ParseBootstrapToken decodes "orchard-bootstrap-token-v0." followed by the
// dot-separated, unpadded base64url encodings of the account name, the token
// and an optional PEM certificate (`orchard get bootstrap-token`). Errors
// never quote the token.
func ParseBootstrapToken(s string) (BootstrapToken, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), bootstrapPrefix)
	if !ok {
		return BootstrapToken{}, errors.New("orchard: a bootstrap token starts with " + bootstrapPrefix)
	}
	parts := strings.Split(rest, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return BootstrapToken{}, fmt.Errorf("orchard: a bootstrap token has 2 or 3 dot-separated parts after its prefix, not %d", len(parts))
	}
	var dec [3][]byte
	for i, p := range parts {
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(p, "="))
		if err != nil {
			return BootstrapToken{}, fmt.Errorf("orchard: bootstrap token part %d is not base64url", i+1)
		}
		dec[i] = b
	}
	bt := BootstrapToken{ServiceAccount: string(dec[0]), Token: string(dec[1]), Certificate: dec[2]}
	if bt.ServiceAccount == "" || bt.Token == "" {
		return BootstrapToken{}, errors.New("orchard: the bootstrap token has an empty account name or token")
	}
	return bt, nil
}

// Encode is the inverse of ParseBootstrapToken (for tests and tools).
func (b BootstrapToken) Encode() string {
	enc := base64.RawURLEncoding.EncodeToString
	s := bootstrapPrefix + enc([]byte(b.ServiceAccount)) + "." + enc([]byte(b.Token))
	if len(b.Certificate) > 0 {
		s += "." + enc(b.Certificate)
	}
	return s
}
