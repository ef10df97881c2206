"""Layer 0: helpers every other layer may use (validation, threads, timing). Imports nothing of er_fast."""
