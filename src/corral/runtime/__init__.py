"""The OCI runtime: Corral's libcontainer. `Runtime` (container.py) is the library API;
`corral-runtime` (corral.cli.runtime) is runc's command line over it."""
