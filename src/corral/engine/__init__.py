"""The engine: named containers made from images, each kept by a small monitor process
(what conmon is to podman), driven through an OCI runtime — Corral's own, in process, or
any runc-compatible binary. No daemon: every `corral` command works from the files under
the data root and from the kernel's own view of the processes."""
