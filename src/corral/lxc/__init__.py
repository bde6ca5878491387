"""LXC-style system containers over Corral's engine: LXC's config format (config),
templates, the OCI bundle a config means (bundle), overlay snapshot copies (storage) and
the operations of lxc-create, lxc-start, ... (manager)."""
