// Package deploy holds the host set-up files (launchd agent, cloudflared
// config); its tests keep them well-formed and in step with Tarty's defaults.
package deploy

import (
	"encoding/xml"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// plistDict reads the top-level <dict> of a plist into key → raw element.
func plistDict(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	dec.Strict = true
	out := map[string]string{}
	depth, key := 0, ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", path, err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 3 && el.Name.Local == "key" { // plist > dict > key
				var k string
				if err := dec.DecodeElement(&k, &el); err != nil {
					t.Fatal(err)
				}
				depth--
				key = k
			} else if depth == 3 && key != "" {
				var inner struct {
					Inner string `xml:",innerxml"`
				}
				if err := dec.DecodeElement(&inner, &el); err != nil {
					t.Fatal(err)
				}
				depth--
				out[key] = el.Name.Local + ":" + inner.Inner
				key = ""
			}
		case xml.EndElement:
			depth--
		}
	}
	return out
}

func TestLaunchAgentPlist(t *testing.T) {
	d := plistDict(t, "com.tartyci.tarty.plist")
	for _, k := range []string{"Label", "ProgramArguments", "EnvironmentVariables", "RunAtLoad", "KeepAlive",
		"StandardOutPath", "StandardErrorPath", "AbandonProcessGroup"} {
		if _, ok := d[k]; !ok {
			t.Errorf("plist lacks %s", k)
		}
	}
	if d["RunAtLoad"] != "true:" || d["KeepAlive"] != "true:" {
		t.Errorf("RunAtLoad/KeepAlive = %q/%q", d["RunAtLoad"], d["KeepAlive"])
	}
	env := d["EnvironmentVariables"]
	for _, want := range []string{"<key>PATH</key>", "/opt/homebrew/bin", "<key>HOME</key>", "<key>TART_HOME</key>"} {
		if !strings.Contains(env, want) {
			t.Errorf("EnvironmentVariables lacks %s", want)
		}
	}
	if args := d["ProgramArguments"]; !strings.Contains(args, "<string>run</string>") || !strings.Contains(args, "--config") {
		t.Errorf("ProgramArguments = %s", args)
	}
}

func TestCloudflaredConfig(t *testing.T) {
	data, err := os.ReadFile("cloudflared-config.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Tunnel          string `yaml:"tunnel"`
		CredentialsFile string `yaml:"credentials-file"`
		Ingress         []struct {
			Hostname string `yaml:"hostname"`
			Path     string `yaml:"path"`
			Service  string `yaml:"service"`
		} `yaml:"ingress"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Tunnel == "" || cfg.CredentialsFile == "" || len(cfg.Ingress) != 2 {
		t.Fatalf("config = %+v", cfg)
	}
	last := cfg.Ingress[len(cfg.Ingress)-1]
	if last.Hostname != "" || last.Path != "" || last.Service != "http_status:404" {
		t.Errorf("last rule must be the http_status:404 catch-all, got %+v", last)
	}
	rule := cfg.Ingress[0]
	re := regexp.MustCompile(rule.Path)
	for path, want := range map[string]bool{
		"/github/webhook": true, "/github/webhook/x": false, "/metrics": false,
		"/status": false, "/x/github/webhook": false, "/": false,
	} {
		if got := re.MatchString(path); got != want {
			t.Errorf("ingress path %q matches %s: %v, want %v", rule.Path, path, got, want)
		}
	}
	if rule.Service != "http://127.0.0.1:8080" {
		t.Errorf("service = %s, want server.listen's default", rule.Service)
	}
}
