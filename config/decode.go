package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var (
	durationType = reflect.TypeOf(time.Duration(0))
	secretType   = reflect.TypeOf(Secret(""))
)

// decoder walks the YAML tree and the Config struct together, so every problem
// (unknown key, wrong type, duplicate) is reported with its key path and line
// instead of stopping at the first, and the line of every key is remembered for
// the validation messages.
type decoder struct {
	problems []Problem
	lines    map[string]int
}

func (d *decoder) problem(key string, line int, format string, args ...any) {
	d.problems = append(d.problems, Problem{Key: key, Line: line, Message: fmt.Sprintf(format, args...)})
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
			continue
		}
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if path != "" {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value keeps the default
	}
	switch {
	case v.Kind() == reflect.Struct:
		d.decodeStruct(n, v, path)
	case v.Type() == durationType:
		d.decodeDuration(n, v, path)
	case v.Kind() == reflect.Slice:
		d.decodeSlice(n, v, path)
	case v.Kind() == reflect.Map:
		d.decodeMap(n, v, path)
	default:
		d.decodeScalar(n, v, path)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.problem(displayPath(path), n.Line, "must be a mapping of keys, not %s", kindName(n))
		return
	}
	fields := yamlFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := joinPath(path, printableKey(k.Value))
		if k.Kind != yaml.ScalarNode {
			d.problem(displayPath(path), k.Line, "keys must be plain names")
			continue
		}
		if seen[k.Value] {
			d.problem(key, k.Line, "given twice")
			continue
		}
		seen[k.Value] = true
		idx, ok := fields[k.Value]
		if !ok {
			msg := "unknown key"
			if s := suggest(k.Value, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			d.problem(key, k.Line, "%s", msg)
			continue
		}
		d.lines[key] = k.Line
		d.decode(val, v.Field(idx), key)
	}
}

func (d *decoder) decodeDuration(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.problem(path, n.Line, "must be a duration such as 90s, 15m or 6h")
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		d.problem(path, n.Line, "%q is not a duration such as 90s, 15m or 6h", n.Value)
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.problem(path, n.Line, "must be a list, such as [a, b]")
		return
	}
	out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		elem := reflect.New(v.Type().Elem()).Elem()
		before := len(d.problems)
		d.decode(item, elem, fmt.Sprintf("%s[%d]", path, i))
		if len(d.problems) == before {
			out = reflect.Append(out, elem)
		}
	}
	v.Set(out)
}

// decodeMap decodes a mapping with string keys (orchard.worker_labels): every
// entry is checked, a key given twice is a problem.
func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.problem(path, n.Line, "must be a mapping, such as {key: value}")
		return
	}
	out := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := joinPath(path, printableKey(k.Value))
		if k.Kind != yaml.ScalarNode {
			d.problem(path, k.Line, "keys must be plain names")
			continue
		}
		if out.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
			d.problem(key, k.Line, "given twice")
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		before := len(d.problems)
		d.decode(val, elem, key)
		if len(d.problems) == before {
			out.SetMapIndex(reflect.ValueOf(k.Value), elem)
		}
	}
	v.Set(out)
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	want := typeName(v.Type())
	if n.Kind != yaml.ScalarNode {
		d.problem(path, n.Line, "must be %s, not %s", want, kindName(n))
		return
	}
	target := reflect.New(v.Type())
	if err := n.Decode(target.Interface()); err != nil {
		if v.Type() == secretType {
			d.problem(path, n.Line, "must be %s", want) // never echo a secret
		} else {
			d.problem(path, n.Line, "%q is not %s", n.Value, want)
		}
		return
	}
	v.Set(target.Elem())
}

// yamlFields maps the yaml names of t's fields to their indexes.
func yamlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	default:
		return "a string"
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// printableKey quotes a key that would be unreadable or empty in a key path.
func printableKey(k string) string {
	if plainKey.MatchString(k) {
		return k
	}
	return strconv.Quote(k)
}

func displayPath(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

// suggest returns the known key closest to an unknown one, if it is a likely typo.
func suggest(key string, fields map[string]int) string {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names) // deterministic among equal distances
	best, bestDist := "", 3
	for _, name := range names {
		if dist := levenshtein(strings.ToLower(key), name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
