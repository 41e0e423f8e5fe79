// Package deploy holds the host set-up files (launchd agents for Tarty and
// cloudflared, the cloudflared config, the newsyslog rotation); its tests keep
// them well-formed and in step with each other and Tarty's defaults.
package deploy

import (
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tartyci/tarty/config"
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

// plistStrings decodes the <string> items of a plistDict <array> value.
func plistStrings(t *testing.T, raw string) []string {
	t.Helper()
	inner, ok := strings.CutPrefix(raw, "array:")
	if !ok {
		t.Fatalf("not an array: %s", raw)
	}
	var v struct {
		Strings []string `xml:"string"`
	}
	if err := xml.Unmarshal([]byte("<array>"+inner+"</array>"), &v); err != nil {
		t.Fatal(err)
	}
	return v.Strings
}

// plistString decodes a plistDict <string> value.
func plistString(t *testing.T, raw string) string {
	t.Helper()
	inner, ok := strings.CutPrefix(raw, "string:")
	if !ok {
		t.Fatalf("not a string: %s", raw)
	}
	var v string
	if err := xml.Unmarshal([]byte("<s>"+inner+"</s>"), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Paths shared by the plists and the newsyslog config (before USERNAME is replaced).
const (
	tartyLog       = "/Users/USERNAME/Library/Logs/tarty/tarty.log"
	tartyPID       = "/Users/USERNAME/.tarty/tarty.pid"
	cloudflaredLog = "/Users/USERNAME/Library/Logs/tarty/cloudflared.log"
	cloudflaredPID = "/Users/USERNAME/.tarty/cloudflared.pid"
)

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
	args := plistStrings(t, d["ProgramArguments"])
	if len(args) != 3 || args[0] != "/bin/sh" || args[1] != "-c" ||
		!strings.Contains(args[2], "exec /usr/local/bin/tarty run --config /Users/USERNAME/.tarty/tarty.yaml") ||
		!strings.Contains(args[2], "echo $$ > "+tartyPID+" && ") {
		t.Errorf("ProgramArguments = %q", args)
	}
	for _, k := range []string{"StandardOutPath", "StandardErrorPath"} {
		if got := plistString(t, d[k]); got != tartyLog {
			t.Errorf("%s = %s, want %s", k, got, tartyLog)
		}
	}
}

// TestLaunchAgentWrapper runs the plist's sh command with the paths moved into
// a temporary directory and a stand-in tarty: the pid file names the process
// that runs tarty (exec keeps the pid), which is what newsyslog signals.
func TestLaunchAgentWrapper(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".tarty"), 0o700); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(dir, "tarty")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"$$ $*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	args := plistStrings(t, plistDict(t, "com.tartyci.tarty.plist")["ProgramArguments"])
	script := strings.NewReplacer("/Users/USERNAME", dir, "/usr/local/bin/tarty", fake).Replace(args[2])
	out, err := exec.Command(sh, "-c", script).Output()
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	pid, err := os.ReadFile(filepath.Join(dir, ".tarty", "tarty.pid"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(pid)) + " run --config " + filepath.Join(dir, ".tarty", "tarty.yaml")
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("tarty ran as %q, want %q (pid file and process must agree)", got, want)
	}
}

// TestCloudflaredAgentPlist: the tunnel runs as the user, with the user's
// config named explicitly (what `sudo cloudflared service install` never does
// on macOS), and writes the pid file newsyslog signals.
func TestCloudflaredAgentPlist(t *testing.T) {
	d := plistDict(t, "com.tartyci.cloudflared.plist")
	if plistString(t, d["Label"]) != "com.tartyci.cloudflared" {
		t.Errorf("Label = %s", d["Label"])
	}
	if d["RunAtLoad"] != "true:" || d["KeepAlive"] != "true:" {
		t.Errorf("RunAtLoad/KeepAlive = %q/%q", d["RunAtLoad"], d["KeepAlive"])
	}
	args := plistStrings(t, d["ProgramArguments"])
	want := []string{"/opt/homebrew/bin/cloudflared", "tunnel", "--config", "/Users/USERNAME/.cloudflared/config.yml",
		"--pidfile", cloudflaredPID, "--no-autoupdate", "run", "tarty"}
	if strings.Join(args, " ") != strings.Join(want, " ") {
		t.Errorf("ProgramArguments = %q, want %q", args, want)
	}
	for _, k := range []string{"StandardOutPath", "StandardErrorPath"} {
		if got := plistString(t, d[k]); got != cloudflaredLog {
			t.Errorf("%s = %s, want %s", k, got, cloudflaredLog)
		}
	}
}

// newsyslogEntry is one line of a newsyslog.conf(5) file.
type newsyslogEntry struct {
	file, owner, mode, count, size, when, flags, pidFile, signal string
}

// parseNewsyslog reads newsyslog.conf(5) lines: logfile_name, optional
// owner:group, mode, count, size, when, then optional flags, pid file and
// signal number.
func parseNewsyslog(t *testing.T, path string) []newsyslogEntry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []newsyslogEntry
	for n, line := range strings.Split(string(data), "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var e newsyslogEntry
		e.file, f = f[0], f[1:]
		if len(f) > 0 && strings.Contains(f[0], ":") {
			e.owner, f = f[0], f[1:]
		}
		if len(f) < 4 || len(f) > 7 {
			t.Fatalf("%s:%d: %d fields after the file and owner, want 4 to 7: %q", path, n+1, len(f), line)
		}
		e.mode, e.count, e.size, e.when = f[0], f[1], f[2], f[3]
		rest := append(f[4:], "", "", "")
		e.flags, e.pidFile, e.signal = rest[0], rest[1], rest[2]
		out = append(out, e)
	}
	return out
}

func TestNewsyslogConf(t *testing.T) {
	entries := parseNewsyslog(t, "newsyslog-tarty.conf")
	want := map[string]string{tartyLog: tartyPID, cloudflaredLog: cloudflaredPID}
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d", len(entries), len(want))
	}
	for _, e := range entries {
		pid, ok := want[e.file]
		if !ok {
			t.Errorf("entry for %s, which no plist logs to", e.file)
			continue
		}
		delete(want, e.file)
		if e.owner != "USERNAME:staff" {
			t.Errorf("%s: owner %q: the new log must belong to the user launchd runs the agent as", e.file, e.owner)
		}
		if m, err := strconv.ParseUint(e.mode, 8, 32); err != nil || m&^0o666 != 0 || m&0o600 != 0o600 || m&0o002 != 0 {
			t.Errorf("%s: mode %q", e.file, e.mode)
		}
		if n, err := strconv.Atoi(e.count); err != nil || n < 1 {
			t.Errorf("%s: count %q", e.file, e.count)
		}
		if n, err := strconv.Atoi(e.size); err != nil || n < 1024 {
			t.Errorf("%s: size %q KB: rotate by size", e.file, e.size)
		}
		if e.when != "*" {
			t.Errorf("%s: when %q: time-based rotation would signal a stale pid file of a stopped agent", e.file, e.when)
		}
		if e.flags == "" || strings.Trim(e.flags, "BCDGJNUWXZ") != "" || strings.Contains(e.flags, "N") {
			t.Errorf("%s: flags %q (N would skip the signal the launchd job needs)", e.file, e.flags)
		}
		if e.pidFile != pid {
			t.Errorf("%s: pid file %q, want %q (what the plist writes)", e.file, e.pidFile, pid)
		}
		if e.signal != "15" {
			t.Errorf("%s: signal %q, want 15 (SIGTERM: stop gracefully, launchd restarts on a fresh log)", e.file, e.signal)
		}
	}
	for file := range want {
		t.Errorf("no entry rotates %s", file)
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
	// In step with Tarty's defaults: server.webhook_path on server.listen.
	srv := config.Default().Server
	rule := cfg.Ingress[0]
	re := regexp.MustCompile(rule.Path)
	for path, want := range map[string]bool{
		srv.WebhookPath: true, srv.WebhookPath + "/x": false, "/metrics": false,
		"/status": false, "/x" + srv.WebhookPath: false, "/": false,
	} {
		if got := re.MatchString(path); got != want {
			t.Errorf("ingress path %q matches %s: %v, want %v", rule.Path, path, got, want)
		}
	}
	if rule.Service != "http://"+srv.Listen {
		t.Errorf("service = %s, want server.listen's default", rule.Service)
	}
}
