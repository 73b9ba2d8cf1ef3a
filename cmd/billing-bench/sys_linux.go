package main

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the child die with the benchmark, should the
// benchmark be killed before it stops the child.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
