package plan

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// BootMetric is the daemon's histogram of VM boot times.
const BootMetric = "tarty_vm_boot_seconds"

// MeanBoot reads a Prometheus text exposition and returns the mean of the
// histogram BootMetric (its _sum over its _count) and its count; n is 0 when
// the daemon has booted nothing yet.
func MeanBoot(r io.Reader) (mean time.Duration, n int, err error) {
	var sum, count float64
	var haveSum, haveCount bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
			if j := strings.LastIndexByte(line, '}'); j >= 0 {
				rest = line[j+1:]
			}
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, perr := strconv.ParseFloat(fields[0], 64)
		if perr != nil {
			continue
		}
		switch name {
		case BootMetric + "_sum":
			sum, haveSum = sum+v, true
		case BootMetric + "_count":
			count, haveCount = count+v, true
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !haveSum || !haveCount {
		return 0, 0, fmt.Errorf("no %s histogram in the metrics", BootMetric)
	}
	if count <= 0 || math.IsNaN(sum) {
		return 0, 0, nil
	}
	return time.Duration(sum / count * float64(time.Second)).Round(time.Second), int(count), nil
}

// DaemonBoot asks a daemon's admin listener for its metrics and returns the
// mean boot time it measured; n is 0 when it has booted nothing yet.
func DaemonBoot(ctx context.Context, adminListen string) (mean time.Duration, n int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminListen+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, errors.New("GET /metrics: " + resp.Status)
	}
	return MeanBoot(io.LimitReader(resp.Body, 16<<20))
}
