//go:build !linux

package main

import "os/exec"

// setDeathSignal does nothing outside Linux.
func setDeathSignal(*exec.Cmd) {}
