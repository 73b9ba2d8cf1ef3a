package stripemock

import "fmt"

// Process is a stripe-mock started by StartProcess.
type Process struct {
	// URL is the base URL, such as http://127.0.0.1:41234.
	URL  string
	stop func()
}

// Stop kills stripe-mock and waits for it to exit.
func (p *Process) Stop() { p.stop() }

// StartProcess runs a stripe-mock on a free loopback port, as Start does,
// for programs that are not tests, such as the benchmark program. The
// caller stops it with Stop.
func StartProcess() (*Process, error) {
	bin, err := binary()
	if err != nil {
		return nil, fmt.Errorf("stripemock: %w", err)
	}
	var lastErr error
	for range startTries {
		url, stop, err := start(bin)
		if err == nil {
			return &Process{URL: url, stop: stop}, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("stripemock: stripe-mock did not start after %d tries: %w", startTries, lastErr)
}

// Binary returns the path of the stripe-mock executable Start runs,
// building it into the user cache directory first when it is not installed.
// A program started from outside the module finds it there.
func Binary() (string, error) {
	return binary()
}
