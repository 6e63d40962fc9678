// Package measure records which image a node booted in its TPM 2.0: the
// image's identity (manifest digest, whole-image pin, signing key id,
// statement version, URL) is extended into a PCR of every bank the TPM
// has, and the event is appended to the userspace measurement log systemd
// keeps, so systemd-pcrlock and remote-attestation verifiers can replay it.
//
// # Which PCR
//
// systemd's TPM2 PCR registry (the UAPI group's "Linux TPM PCR Registry",
// followed by systemd-pcrextend and documented in systemd's
// TPM2_PCR_MEASUREMENTS.md) gives userspace measurements of "system
// identity" PCR 15: systemd-pcrfs measures the root file system's identity
// (type, UUID, label) there, and systemd-pcrmachine the machine id. What a
// network-booted node mounts as its root is streamroot's image, so its
// identity belongs in the same register, beside the root's file-system
// identity that a booted systemd may add later. PCR 11 (kernel-boot: the
// UKI and boot phases) and 12 (kernel-config) are for the stub's own
// measurements and its phase words; 9 is the kernel's (initrd), 16 is
// debug and resettable, 23 resettable: none of them fits.
//
// # The event and the log
//
// The measured data is the text of Identity.Event; each bank is extended
// with that text's digest in the bank's algorithm (no NUL), as
// systemd-pcrextend measures its strings. The log record is what systemd
// writes to /run/log/systemd/tpm2-measure.log: a JSON object in a JSON text
// sequence (RFC 7464: 0x1E before, a newline after) with "pcr", "digests"
// (hashAlg, hex digest per bank), "content_type":"systemd" and a
// "content" object holding the measured "string" (pcrlock checks the
// digests against it), the kernel's boot id and CLOCK_BOOTTIME. The file
// is locked (flock) while written and carries the sticky bit between the
// extend and the completed write, systemd's mark of a log that may miss an
// event. /run is moved into the booted root by switch_root, so the log is
// there for its systemd.
package measure
