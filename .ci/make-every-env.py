"""Make, reset and step every registered environment from an installed optarena (CI runs it in a
fresh virtual environment holding only the built wheel, from outside the source tree)."""

import sys
from pathlib import Path

import numpy as np

import optarena
import optarena.envs
from optarena.envs.registry import KINDS

PROBLEMS = {"tensor_schedule": ("matmul-64", {"measure": {"number": 1, "repeat": 2,
                                                          "min_repeat_ms": 1}}),
            "aarch64_peephole": ("loads_stores/O1/dot4/0", {}),
            "llvm_pass_order": ("suite:crc32", {"reward": "ir_instructions"})}

source = Path(optarena.__file__).resolve()
if "site-packages" not in source.parts:
    sys.exit(f"optarena was imported from {source}, not from an installed wheel")
for name, kind in sorted(KINDS.items()):
    problem, kwargs = PROBLEMS[name]
    env = kind.make(problem, {**kwargs, "store": None})
    try:
        _, info = env.reset(seed=0)
        action = int(np.flatnonzero(info["action_mask"])[0])
        _, reward, _, _, info = env.step(action)
        print(f"{kind.env_id}: {problem}, score {info['score']:.6g}, reward {reward:.4f}")
    finally:
        env.close()
missing = set(PROBLEMS) - set(KINDS)
if missing:
    sys.exit(f"the installed wheel does not register {sorted(missing)}")
