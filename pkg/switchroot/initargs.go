package switchroot

// InitArgv is the real init's argv: its path, then the arguments the
// kernel passed PID 1 that are meant for it (runlevels, single,
// emergency), as dracut keeps them; the rest were the initramfs's.
func InitArgv(init string, kernelArgs []string) []string {
	argv := []string{init}
	for _, a := range kernelArgs {
		switch a {
		case "single", "s", "S", "1", "2", "3", "4", "5", "emergency", "rescue", "auto":
			argv = append(argv, a)
		}
	}
	return argv
}

// InitEnv is the real init's environment: explicit, never the
// initramfs's own (Talos), with the console's terminal type.
func InitEnv(term string) []string {
	if term == "" {
		term = "linux"
	}
	return []string{
		"HOME=/",
		"TERM=" + term,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}
}
