// Command floorinit is the /init of the bench's floor initramfs: it only
// prints the guest's uptime in the fixtures' STREAMROOT-REPORT form and
// powers off, so its boot time is what the kernel alone costs (the floor).
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

func main() {
	// /proc/uptime has centiseconds; sysinfo(2) only whole seconds.
	os.MkdirAll("/proc", 0o555)
	uptime := "0"
	if err := syscall.Mount("proc", "/proc", "proc", 0, ""); err == nil {
		if b, err := os.ReadFile("/proc/uptime"); err == nil {
			uptime, _, _ = strings.Cut(string(b), " ")
		}
	}
	fmt.Printf("\nSTREAMROOT-REPORT {\"pid\":%d,\"fixture\":\"floor\",\"uptime\":%q}\n", os.Getpid(), uptime)
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	select {} // PID 1 must not exit (the kernel would panic)
}
