package bootcfg

import "slices"

// dracutBreaks maps dracut's rd.break hook names onto streamroot's stages,
// so break points in existing configs still stop at the matching moment.
var dracutBreaks = map[string]string{
	"cmdline": "config", "pre-udev": "modules", "pre-trigger": "modules",
	"initqueue": "network", "pre-mount": "layers", "mount": "layers",
	"pre-pivot": "switch", "cleanup": "switch",
}

// BreakBefore says whether rd.break asks for a shell before the named
// stage of the init, by its own name or by the dracut hook that runs at
// that moment.
func (c *Config) BreakBefore(stage string) bool {
	return slices.ContainsFunc(c.Break, func(b string) bool { return b == stage || dracutBreaks[b] == stage })
}
