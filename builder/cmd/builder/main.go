// Command builder is the builder's command line, what `make initramfs`
// runs: it reads the flags builder.ParseFlags defines and calls
// builder.Build, the code `streamroot initramfs` uses too.
//
// Usage:
//
//	go run ./builder/cmd/builder -init build/init -moddir build/kernel/lib/modules/6.1.0-57-amd64 -o build/initramfs.img
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/streamroot/streamroot/builder"
)

func main() {
	opts, verbose, err := builder.ParseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "builder: %v\n", err)
		os.Exit(2)
	}
	res, err := builder.Build(opts, builder.NewLogger(os.Stderr, verbose))
	if err != nil {
		fmt.Fprintf(os.Stderr, "builder: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(res.Summary())
}
