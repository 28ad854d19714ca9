"""The AArch64 peephole environment: corpus, block model, rewrite rules, checker, env."""
