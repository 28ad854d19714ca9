"""The AArch64 peephole environment (in progress): toolchain, block model, pairing rule, checker."""
