package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// buildBinaries compiles the service and the bare Echo anchor into dir, the
// way an operator builds the service, and returns their paths.
func buildBinaries(ctx context.Context, root, dir string) (service, anchor string, err error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", dir+string(filepath.Separator),
		"./cmd/billing", "./cmd/billing-bench/anchor")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "billing"), filepath.Join(dir, "anchor"), nil
}

// process is a server started by the benchmark: the service or the anchor.
// Both log JSON lines to stderr, one of which is
// {"msg":"listening","addr":"127.0.0.1:PORT"}.
type process struct {
	name    string
	cmd     *exec.Cmd
	URL     string // http://ADDR once it listens
	started time.Time
	exited  chan struct{}

	mu       sync.Mutex
	tail     []string // the last lines of stderr
	errLines []string // the first lines logged at level ERROR
	nErr     int
}

const (
	tailLines = 20
	keepErrs  = 5
)

// startProcess runs bin with args and env (and nothing of the benchmark's own
// environment but PATH and HOME), and waits until it logs its address.
func startProcess(ctx context.Context, name, bin, dir string, env []string, args ...string) (*process, error) {
	p := &process{name: name, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	setDeathSignal(p.cmd)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	addr := make(chan string, 1)
	go p.readLogs(stderr, addr)
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case a := <-addr:
		p.URL = "http://" + a
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited before it listened: %s", name, p.lastLines())
	case <-time.After(30 * time.Second):
		p.Stop()
		return nil, fmt.Errorf("%s did not listen within 30s: %s", name, p.lastLines())
	case <-ctx.Done():
		p.Stop()
		return nil, ctx.Err()
	}
}

// readLogs reads stderr to the end, so that the process never blocks on a
// full pipe, keeping the last lines and the error lines.
func (p *process) readLogs(r io.Reader, addr chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	listening := false
	for sc.Scan() {
		line := sc.Bytes()
		if !listening && bytes.Contains(line, []byte(`"listening"`)) {
			var l struct{ Msg, Addr string }
			if json.Unmarshal(line, &l) == nil && l.Msg == "listening" && l.Addr != "" {
				listening = true
				addr <- l.Addr
			}
		}
		isErr := bytes.Contains(line, []byte(`"level":"ERROR"`))
		p.mu.Lock()
		if len(p.tail) == tailLines {
			p.tail = p.tail[1:]
		}
		p.tail = append(p.tail, string(line))
		if isErr {
			p.nErr++
			if len(p.errLines) < keepErrs {
				p.errLines = append(p.errLines, string(line))
			}
		}
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

func (p *process) lastLines() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// errorLog returns how many lines were logged at level ERROR, and the first.
func (p *process) errorLog() (int, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nErr, append([]string(nil), p.errLines...)
}

// PID returns the operating system's process id.
func (p *process) PID() int { return p.cmd.Process.Pid }

// Stop asks the process to shut down (SIGTERM) and kills it after 10s.
func (p *process) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitHTTP200 polls url until it answers 200 and returns when it did.
func waitHTTP200(ctx context.Context, url string, exited <-chan struct{}, timeout time.Duration) (time.Time, error) {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return time.Time{}, err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Now(), nil
			}
		}
		select {
		case <-exited:
			return time.Time{}, fmt.Errorf("%s: process exited", url)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s did not answer 200 within %v", url, timeout)
		}
	}
}

// memory is a process's resident set size now and at its peak, in MiB.
type memory struct {
	RSS, Peak float64
}

// readMemory reads VmRSS and VmHWM from /proc/PID/status.
func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	found := 0
	for line := range strings.Lines(string(b)) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
		if err != nil {
			return memory{}, fmt.Errorf("/proc/%d/status: %s: %w", pid, name, err)
		}
		if name == "VmRSS" {
			m.RSS = kb / 1024
		} else {
			m.Peak = kb / 1024
		}
		found++
	}
	if found != 2 {
		return memory{}, fmt.Errorf("/proc/%d/status has no VmRSS or VmHWM", pid)
	}
	return m, nil
}

// clockTicks is the unit of the CPU times in /proc/PID/stat (USER_HZ),
// 100 on every Linux the benchmark targets.
const clockTicks = 100

// readCPU returns the CPU time (user and system) a process has used.
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count the fields
	// after it. utime and stime are fields 14 and 15 of the line.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad CPU times", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// profile starts recording the CPU profile of the process under test with
// Linux perf (with -perf) and returns the function that stops it. The
// service's Go binary keeps its symbols and frame pointers, so that
// `perf report -i FILE` shows its functions and call chains.
func (b *bench) profile(scenario string) (stop func()) {
	p := b.profiled
	if b.opts.perfDir == "" || p == nil {
		return func() {}
	}
	if err := os.MkdirAll(b.opts.perfDir, 0o755); err != nil {
		b.note("perf: %v", err)
		return func() {}
	}
	file := filepath.Join(b.opts.perfDir, strings.NewReplacer(" ", "-", ",", "", "(", "", ")", "").Replace(scenario)+".perf.data")
	cmd := exec.Command("perf", "record", "--quiet", "-F", "999", "-g", "-o", file, "-p", strconv.Itoa(p.PID()))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.note("perf: %v", err)
		return func() {}
	}
	return func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait() // perf exits by the signal once it has written the file
		if _, serr := os.Stat(file); serr != nil {
			b.note("perf record for %s: %v: %s", scenario, err, strings.TrimSpace(out.String()))
			return
		}
		b.note("perf: %s profile of %s in %s", scenario, p.name, file)
	}
}
