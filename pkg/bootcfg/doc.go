// Package bootcfg turns the kernel command line into a [Config].
//
// streamroot replaces dracut's livenet and nbd modules, so the command lines
// people already have in PXELinux, iPXE and GRUB configs must keep working
// unchanged. The parser therefore follows dracut's conventions rather than
// inventing new ones:
//
//   - Tokens are split like the kernel does: on whitespace, with double
//     quotes grouping (foo="a b" is key foo, value "a b"); key=value splits
//     at the first '='. A bare "--" ends the arguments, because the kernel
//     hands everything after it to init, not to us.
//   - A repeated key behaves like dracut's getarg: the last one wins and
//     earlier ones are not even looked at. List options (ip=, ifname=,
//     nameserver=, rd.net.dhcp.client-id=, rd.break, vlan=, bond=, team=,
//     bridge=, ib.pkey=, rd.ethtool=, rd.route=) accumulate instead.
//   - Every form of every argument read is a row of one table, [Forms],
//     with its origin (dracut.cmdline(7) and dracut's parser,
//     NetworkManager's nm-initrd-generator, PXELinux, the kernel, and the
//     tools that write such lines); docs/kernel-args.md's reference is generated
//     from it. Where dracut and nm-initrd-generator differ, dracut's
//     reading is followed unless it cannot boot (the row says so).
//   - No network or root argument is dropped without a word: it is
//     parsed into Config (links the network stage cannot build yet are
//     refused there, by name), refused here, or accepted with a
//     [Warning] that /init logs (no effect here, or an unparsable
//     timeout replaced by its default as dracut does).
//   - Boolean rd.* flags use dracut's getargbool rules: present with no
//     value means true, "0", "no" and "off" mean false, anything else true.
//   - Arguments that are not ours (console=, nomodeset, proxy.url=, fdi.*,
//     ...) are accepted silently: the real OS reads /proc/cmdline itself.
//     Unknown rd.* arguments are dracut features we do not implement; they
//     are never fatal but are listed in [Config.Ignored] so /init can say
//     once that it is ignoring them.
//   - Arguments in the streamroot.* namespace are ours, so an unknown one is
//     an error: a typo in an integrity option must not silently turn
//     verification off.
//
// Parse is a pure function (no I/O, no globals) so it can be table-tested
// and fuzzed. Every problem is reported as an [*ArgError] naming the whole
// offending token; Parse reports all of them at once (joined with
// errors.Join) and still returns a best-effort Config, so /init can honour
// rd.shell and streamroot.onfail even when the command line is broken.
package bootcfg
