// Command init is streamroot's initramfs /init: it brings up the boot
// network, fetches the live image over HTTP(S), layers it into a writable
// root and switches to the image's own init.
//
// main only wires the pipeline; the work lives in pkg/. PID 1 must never
// exit or panic: a failing stage returns an error, and failBoot turns it into
// one console message and the failure policy (shell, reboot or halt).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/bootlog"
	"github.com/streamroot/streamroot/pkg/liveroot"
	"github.com/streamroot/streamroot/pkg/measure"
	"github.com/streamroot/streamroot/pkg/netup"
	"github.com/streamroot/streamroot/pkg/rootdev"
	"github.com/streamroot/streamroot/pkg/trust"
)

// Paths of the boot; /run survives switch_root, so what lands there stays
// visible to the booted system.
const (
	runDir  = "/run/initramfs"
	logFile = runDir + "/streamroot.log"
	sysroot = "/sysroot"
)

// boot carries each stage's typed output to the stages after it.
type boot struct {
	log     *slog.Logger
	handler *bootlog.Handler
	level   *slog.LevelVar
	started time.Time
	timings []bootlog.StageTime

	cfg   *bootcfg.Config   // config
	mode  bootcfg.FetchMode // config: the fetch mode in effect (fetch: the one used)
	tpm   *measure.TPM      // tpm: nil without one or with streamroot.tpm=off
	trust *trust.Policy     // config: the keys a signed image needs (nil: none baked in)
	lease *netup.Lease      // network
	spec  *rootdev.Spec     // fetch: what was fetched, how it was pinned, and who signed it
	dev   *rootdev.Device   // fetch: the RAM file or the daemon's nbd device
	root  *liveroot.Root    // layers

	// fsModules says when the filesystem modules, loading beside the tpm
	// and network stages, are in (modules; fetch waits for it).
	fsModules <-chan error
}

type stage struct {
	name string
	run  func(context.Context) error
}

func main() {
	level := new(slog.LevelVar)
	h := bootlog.New(os.Stdout, level)
	b := &boot{log: slog.New(h), handler: h, level: level, started: time.Now()}
	defer func() {
		// A panic in PID 1 would panic the kernel and lose the message.
		if r := recover(); r != nil {
			b.failBoot(&bootlog.StageError{Stage: "internal", Err: fmt.Errorf("panic: %v", r)})
		}
	}()
	if strings.HasPrefix(os.Args[0], "@") {
		rootdev.RunDaemon()
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "streamroot init: this is the initramfs /init and must run as PID 1")
		os.Exit(2)
	}
	err := b.run(context.Background(), b.stages())
	b.failBoot(err)
}

func (b *boot) stages() []stage {
	return []stage{
		{"early", b.early},
		{"config", b.config},
		{"modules", b.modules},
		{"tpm", b.openTPM},
		{"network", b.network},
		{"fetch", b.fetch},
		{"layers", b.layers},
		{"handover", b.handover},
		{"measure", b.measure},
		{"switch", b.switchRoot},
	}
}

// run executes the pipeline; it returns only on failure (the last stage
// execs the real init).
func (b *boot) run(ctx context.Context, stages []stage) error {
	for _, s := range stages {
		if b.cfg != nil && b.cfg.BreakBefore(s.name) {
			b.log.Info(fmt.Sprintf("rd.break=%s: shell before stage %s; exit the shell to go on", s.name, s.name))
			b.shell()
		}
		start := time.Now()
		l := b.log
		b.log = l.With(bootlog.StageKey, s.name)
		err := runStage(ctx, s)
		took := time.Since(start)
		b.timings = append(b.timings, bootlog.StageTime{Stage: s.name, Took: took})
		if err != nil {
			b.log = l
			return &bootlog.StageError{Stage: s.name, Err: err}
		}
		b.log.Debug("done", "took", took.Round(time.Millisecond))
		b.log = l
	}
	return &bootlog.StageError{Stage: "switch", Err: fmt.Errorf("the real init returned")}
}

// runStage runs one stage, turning a panic into its error: the failure
// block then names the stage, and PID 1 goes on to the failure policy.
func runStage(ctx context.Context, s stage) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return s.run(ctx)
}
