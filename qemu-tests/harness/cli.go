package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// StreamrootCLI builds the host CLI (cmds/streamroot) once per test
// process and returns its path.
func StreamrootCLI(t testing.TB) string {
	t.Helper()
	cliOnce.Do(func() {
		root := resolvePath("go.mod")
		if _, err := os.Stat(root); err != nil {
			cliErr = fmt.Errorf("cannot find the module root (go.mod) from %s", root)
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil && os.Getenv("GOROOT") != "" {
			goBin, err = filepath.Join(os.Getenv("GOROOT"), "bin", "go"), nil
		}
		if err != nil {
			cliErr = fmt.Errorf("the PXE tests build cmds/streamroot and need go on PATH (or GOROOT set): %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "streamroot-cli-")
		if err != nil {
			cliErr = err
			return
		}
		out := filepath.Join(dir, "streamroot")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "./cmds/streamroot")
		cmd.Dir = filepath.Dir(root)
		if b, err := cmd.CombinedOutput(); err != nil {
			cliErr = fmt.Errorf("go build ./cmds/streamroot: %v: %s", err, b)
			return
		}
		cliPath = out
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

// StreamrootPXE runs `streamroot pxe args...` and returns its output.
func StreamrootPXE(t testing.TB, args ...string) string {
	t.Helper()
	out, err := runCmd(time.Minute, StreamrootCLI(t), append([]string{"pxe"}, args...)...)
	if err != nil {
		t.Fatalf("streamroot pxe: %v", err)
	}
	return out
}
