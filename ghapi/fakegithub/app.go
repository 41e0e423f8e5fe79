package fakegithub

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// postAccessToken exchanges an App JWT for an installation token.
func (s *Server) postAccessToken(w http.ResponseWriter, r *http.Request) {
	app := s.cfg.App
	if app == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	jwt, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		writeError(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
		return
	}
	if err := verifyAppJWT(jwt, app, s.now()); err != nil {
		writeError(w, http.StatusUnauthorized, "A JSON web token could not be decoded: "+err.Error())
		return
	}
	if r.PathValue("id") != strconv.FormatInt(app.InstallationID, 10) {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	tok := "ghs_" + hex.EncodeToString(b)
	exp := s.now().Add(app.TokenTTL).UTC().Truncate(time.Second)
	s.mu.Lock()
	s.tokens[tok] = exp
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"token": tok, "expires_at": exp.Format(time.RFC3339),
		"permissions":          map[string]string{"organization_self_hosted_runners": "write", "actions": "read", "metadata": "read"},
		"repository_selection": "all",
	})
}

// verifyAppJWT checks an RS256 JWT the way GitHub does for Apps: signature by
// the App's key, iss = App ID, issued no later than a minute ahead, expiry in
// the future and at most ten minutes after issue.
func verifyAppJWT(tok string, app *App, now time.Time) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return err
	}
	if hdr.Alg != "RS256" {
		return errors.New("alg must be RS256")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return errors.New("bad signature encoding")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if app.PublicKey == nil || rsa.VerifyPKCS1v15(app.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		return errors.New("signature does not match the App's public key")
	}
	var claims struct {
		Iss json.RawMessage `json:"iss"`
		Iat int64           `json:"iat"`
		Exp int64           `json:"exp"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return err
	}
	iss := strings.Trim(string(claims.Iss), `"`)
	if iss != strconv.FormatInt(app.ID, 10) {
		return errors.New("iss is not the App ID")
	}
	iat, exp := time.Unix(claims.Iat, 0), time.Unix(claims.Exp, 0)
	switch {
	case claims.Iat == 0 || claims.Exp == 0:
		return errors.New("iat and exp are required")
	case iat.After(now.Add(time.Minute)):
		return errors.New("iat is in the future")
	case !exp.After(now):
		return errors.New("expired")
	case exp.Sub(iat) > 10*time.Minute:
		return errors.New("exp is too far in the future")
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errors.New("bad JWT segment encoding")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errors.New("bad JWT segment JSON")
	}
	return nil
}
