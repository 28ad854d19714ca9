"""``optarena/LlvmPassOrder-v0``: LLVM pass ordering through CompilerGym (see :mod:`.env`)."""
