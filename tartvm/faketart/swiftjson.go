package faketart

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// field is one key of an object, kept in declaration order like Swift's
// synthesized Encodable.
type field struct {
	key   string
	value any // string, int, int64, bool
}

// swiftJSON renders objects the way tart's JSONEncoder(.prettyPrinted) does:
// two-space indent, `"Key" : value`, and forward slashes escaped as `\/`.
// An empty array is "[\n\n]", as Foundation prints it.
func swiftJSON(objects [][]field, array bool) string {
	var b strings.Builder
	if !array {
		writeObject(&b, objects[0], "")
		return b.String()
	}
	if len(objects) == 0 {
		return "[\n\n]"
	}
	b.WriteString("[\n")
	for i, o := range objects {
		b.WriteString("  ")
		writeObject(&b, o, "  ")
		if i < len(objects)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("]")
	return b.String()
}

func writeObject(b *strings.Builder, fields []field, indent string) {
	b.WriteString("{\n")
	for i, f := range fields {
		b.WriteString(indent + "  ")
		b.WriteString(swiftString(f.key))
		b.WriteString(" : ")
		switch v := f.value.(type) {
		case string:
			b.WriteString(swiftString(v))
		case int:
			b.WriteString(strconv.Itoa(v))
		case int64:
			b.WriteString(strconv.FormatInt(v, 10))
		case uint64:
			b.WriteString(strconv.FormatUint(v, 10))
		case bool:
			b.WriteString(strconv.FormatBool(v))
		default:
			panic("swiftJSON: unsupported value type")
		}
		if i < len(fields)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString(indent + "}")
}

func swiftString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return strings.ReplaceAll(strings.TrimSuffix(buf.String(), "\n"), "/", `\/`)
}
