package faketart

import (
	"fmt"
	"strconv"
	"strings"
)

// flagSpec is one option of a subcommand, parsed the way swift-argument-parser
// does: --name value, --name=value, or -s value for a short alias.
type flagSpec struct {
	long      string
	short     string
	valueName string // "" for a boolean flag
}

// command is a subcommand's argument grammar.
type command struct {
	name       string
	usage      string // after "tart "
	flags      []flagSpec
	positional []string // names shown in errors, e.g. "<name>"
	variadic   bool     // the last positional repeats (delete)
}

// parsed holds a command line after parsing.
type parsed struct {
	flags map[string][]string // by long name; booleans hold "true"
	args  []string
}

func (p parsed) has(long string) bool { return len(p.flags[long]) > 0 }

func (p parsed) str(long, def string) string {
	if v := p.flags[long]; len(v) > 0 {
		return v[len(v)-1]
	}
	return def
}

// usageError is a ValidationError: tart prints it with the usage and exits 64.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) *usageError { return &usageError{fmt.Sprintf(format, a...)} }

// intFlag parses an integer option, reporting ArgumentParser's message.
func (p parsed) intFlag(c *command, long string, def, min, max int) (int, *usageError) {
	v := p.str(long, "")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, usagef("The value '%s' is invalid for '--%s <%s>'", v, long, c.flag(long).valueName)
	}
	return n, nil
}

func (c *command) flag(long string) flagSpec {
	for _, f := range c.flags {
		if f.long == long {
			return f
		}
	}
	return flagSpec{long: long}
}

func (c *command) parse(argv []string) (parsed, *usageError) {
	p := parsed{flags: map[string][]string{}}
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			p.args = append(p.args, a)
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		var spec *flagSpec
		for j := range c.flags {
			f := &c.flags[j]
			if name == "--"+f.long || (f.short != "" && name == "-"+f.short) {
				spec = f
				break
			}
		}
		if spec == nil {
			return p, usagef("Unknown option '%s'", name)
		}
		if spec.valueName == "" {
			if hasValue {
				return p, usagef("Unknown option '%s'", a)
			}
			p.flags[spec.long] = append(p.flags[spec.long], "true")
			continue
		}
		if !hasValue {
			if i+1 >= len(argv) {
				return p, usagef("Missing value for '--%s <%s>'", spec.long, spec.valueName)
			}
			i++
			value = argv[i]
		}
		p.flags[spec.long] = append(p.flags[spec.long], value)
	}
	switch {
	case len(p.args) < len(c.positional):
		return p, usagef("Missing expected argument '%s'", c.positional[len(p.args)])
	case len(p.args) > len(c.positional) && !c.variadic:
		return p, usagef("Unexpected argument '%s'", p.args[len(c.positional)])
	}
	return p, nil
}

// The subcommands the fake implements, with the flags tart 2.32 accepts.
var (
	cmdClone = &command{name: "clone", usage: "clone <source-name> <new-name> [--insecure] [--concurrency <concurrency>] [--prune-limit <n>]",
		flags: []flagSpec{{long: "insecure"}, {long: "concurrency", valueName: "concurrency"},
			{long: "prune-limit", valueName: "n"}, {long: "deduplicate"}},
		positional: []string{"<source-name>", "<new-name>"}}
	cmdSet = &command{name: "set", usage: "set <name> [--cpu <cpu>] [--memory <memory>] [--display <display>] [--random-mac] [--disk-size <disk-size>]",
		flags: []flagSpec{{long: "cpu", valueName: "cpu"}, {long: "memory", valueName: "memory"},
			{long: "display", valueName: "display"}, {long: "display-refit"}, {long: "no-display-refit"},
			{long: "random-mac"}, {long: "random-serial"}, {long: "disk", valueName: "disk"},
			{long: "disk-size", valueName: "disk-size"}},
		positional: []string{"<name>"}}
	cmdGet = &command{name: "get", usage: "get <name> [--format <format>]",
		flags: []flagSpec{{long: "format", valueName: "format"}}, positional: []string{"<name>"}}
	cmdList = &command{name: "list", usage: "list [--source <source>] [--format <format>] [--quiet]",
		flags: []flagSpec{{long: "source", valueName: "source"}, {long: "format", valueName: "format"},
			{long: "quiet", short: "q"}}}
	cmdIP = &command{name: "ip", usage: "ip <name> [--wait <wait>] [--resolver <resolver>]",
		flags:      []flagSpec{{long: "wait", valueName: "wait"}, {long: "resolver", valueName: "resolver"}},
		positional: []string{"<name>"}}
	cmdStop = &command{name: "stop", usage: "stop <name> [--timeout <timeout>]",
		flags: []flagSpec{{long: "timeout", short: "t", valueName: "timeout"}}, positional: []string{"<name>"}}
	cmdDelete = &command{name: "delete", usage: "delete <name> ...",
		positional: []string{"<name>"}, variadic: true}
	cmdRename = &command{name: "rename", usage: "rename <name> <new-name>",
		positional: []string{"<name>", "<new-name>"}}
	cmdPull = &command{name: "pull", usage: "pull <remote-name> [--insecure] [--concurrency <concurrency>]",
		flags:      []flagSpec{{long: "insecure"}, {long: "concurrency", valueName: "concurrency"}, {long: "deduplicate"}},
		positional: []string{"<remote-name>"}}
	cmdRun = &command{name: "run", usage: "run <name> [--no-graphics] [--no-audio] [--no-clipboard] [--dir <[name:]path[:options]> ...] [--net-bridged <interface name> ...] [--net-softnet] [--net-host]",
		flags: []flagSpec{{long: "no-graphics"}, {long: "graphics"}, {long: "no-audio"}, {long: "no-clipboard"},
			{long: "serial"}, {long: "serial-path", valueName: "serial-path"}, {long: "recovery"},
			{long: "vnc"}, {long: "vnc-experimental"}, {long: "disk", valueName: "path[:ro]"},
			{long: "root-disk-opts", valueName: "options"}, {long: "rosetta", valueName: "tag"},
			{long: "dir", valueName: "[name:]path[:options]"}, {long: "net-bridged", valueName: "interface name"},
			{long: "net-softnet"}, {long: "net-softnet-allow", valueName: "comma-separated CIDRs"},
			{long: "net-softnet-block", valueName: "comma-separated CIDRs"},
			{long: "net-softnet-expose", valueName: "comma-separated port specifications"},
			{long: "net-host"}, {long: "nested"}, {long: "suspendable"}, {long: "capture-system-keys"},
			{long: "no-trackpad"}, {long: "no-pointer"}, {long: "no-keyboard"}},
		positional: []string{"<name>"}}
)
