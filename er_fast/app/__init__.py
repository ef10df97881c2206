"""Layer 3, the application: the `er-fast` command line (Table 1 reproduction, benchmarks) on top
of er_fast.vae and er_fast.ops."""
