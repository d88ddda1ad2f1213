"""The reference builds the benchmark measures the service against (see bench/README.md)."""
