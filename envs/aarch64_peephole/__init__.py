"""The AArch64 peephole environment (in progress): toolchain and equivalence checker."""
