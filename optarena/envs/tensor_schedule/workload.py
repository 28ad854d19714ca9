"""Workloads: the tensor programs whose schedules are tuned.

A workload is named by a string, ``NAME`` or ``NAME:knob=value,...`` (``llama3-8b-attention:seq_len=128``),
or by the path of a user's TVMScript file holding a PrimFunc or an IRModule. Built-in workloads carry
a NumPy reference used to check every measured kernel; a user's workload is checked against its own
unscheduled program.

The five layers of the Reasoning Compiler paper (Tang et al., NeurIPS 2025) use the published model
dimensions, cited next to each constant. The paper does not publish sequence lengths or token
counts; each layer has one scale knob whose default keeps a tuned measurement well under 100 ms on a
2-core CPU (see ``optarena workloads``).
"""

from __future__ import annotations

import math
import re
import runpy
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tvm
from tvm import te

from optarena.envs.contract import error_summary
from optarena.envs.tensor_schedule.anchors import (
    CONV2D_NHWC,
    MATMUL,
    SWIGLU,
    Anchor,
    attention_anchors,
)
from optarena.envs.tensor_schedule.names import parse_workload

Reference = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class Workload:
    """A tensor program to schedule, with what is needed to check and report on it."""

    name: str
    """Canonical name, including knobs (``llama3-8b-attention:seq_len=64``) or the file path."""
    mod: tvm.IRModule
    """The unscheduled program: one PrimFunc called ``main``."""
    flops: int
    """Floating-point operations of one call (multiply-add = 2)."""
    source: str
    """Where the dimensions come from."""
    description: str = ""
    reference: Reference | None = None
    """NumPy reference: inputs -> outputs, in parameter order. ``None``: the unscheduled program."""
    knobs: dict[str, int] = field(default_factory=dict)
    anchors: Mapping[str, Anchor] = field(default_factory=dict)
    """What a user would run instead, by name (:mod:`~optarena.envs.tensor_schedule.anchors`):
    ``pytorch``, ``openblas``; none for a user's workload."""

    @property
    def func(self) -> tvm.tirx.PrimFunc:
        return self.mod["main"]

    @property
    def params(self) -> list[tuple[str, tuple[int, ...], str]]:
        """``(name, shape, dtype)`` for every parameter of ``main``, in order."""
        return [
            (buf.name, tuple(int(d) for d in buf.shape), str(buf.dtype)) for buf in self.func.params
        ]

    @property
    def written(self) -> list[int]:
        """Indices of the parameters the program stores to (its outputs).

        TVM 0.27 has no Python IR visitor; stores are read off the printed TVMScript, where every
        ``BufferStore`` is a line ``NAME[...] = ...``.
        """
        script = self.func.script()
        return [
            i for i, buf in enumerate(self.func.params)
            if re.search(rf"^\s*{re.escape(buf.name)}\[[^\n]*\]\s*=(?!=)", script, re.M)
        ]

    @property
    def structural_hash(self) -> str:
        return f"{tvm_structural_hash(self.mod):016x}"


def tvm_structural_hash(node: object) -> int:
    """TVM's structural hash of an IR node, as an unsigned 64-bit integer."""
    import tvm_ffi

    return tvm_ffi.structural_hash(node) & 0xFFFF_FFFF_FFFF_FFFF


def _mod(func: tvm.tirx.PrimFunc) -> tvm.IRModule:
    return tvm.IRModule({"main": func.with_attr("global_symbol", "main")})


# ----------------------------------------------------------------------------- references


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def _matmul_ref(inputs: list[np.ndarray]) -> list[np.ndarray]:
    a, b = inputs
    return [(a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)]


def _conv_ref(inputs: list[np.ndarray]) -> list[np.ndarray]:
    x, w = (t.astype(np.float64) for t in inputs)
    kh, kw = w.shape[0], w.shape[1]
    pad = ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0))
    xp = np.pad(x, pad)
    h, wd = x.shape[1], x.shape[2]
    out = np.zeros((x.shape[0], h, wd, w.shape[3]))
    for r in range(kh):
        for s in range(kw):
            out += np.einsum("nhwc,ck->nhwk", xp[:, r : r + h, s : s + wd, :], w[r, s])
    return [out.astype(np.float32)]


def _attention_ref(causal: bool) -> Reference:
    def ref(inputs: list[np.ndarray]) -> list[np.ndarray]:
        q, k, v = (t.astype(np.float64) for t in inputs)
        group = q.shape[0] // k.shape[0]
        k, v = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
        if causal:
            seq = q.shape[1]
            scores = np.where(np.tril(np.ones((seq, seq), bool)), scores, -np.inf)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        return [(probs @ v).astype(np.float32)]

    return ref


def _swiglu_ref(inputs: list[np.ndarray]) -> list[np.ndarray]:
    x, w_gate, w_up, w_down = (t.astype(np.float64) for t in inputs)
    hidden = _silu(x @ w_gate.T) * (x @ w_up.T)
    return [(hidden @ w_down.T).astype(np.float32)]


# ----------------------------------------------------------------------------- builders


def matmul(n: int, m: int | None = None, k: int | None = None) -> Workload:
    """``C[i, j] = sum_k A[i, k] * B[k, j]``, float32."""
    m, k = m or n, k or n
    a = te.placeholder((n, k), name="A")
    b = te.placeholder((k, m), name="B")
    r = te.reduce_axis((0, k), name="k")
    c = te.compute((n, m), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name="C")
    name = f"matmul-{n}" if n == m == k else f"matmul-{n}x{m}x{k}"
    return Workload(
        name=name,
        mod=_mod(te.create_prim_func([a, b, c])),
        flops=2 * n * m * k,
        source="synthetic",
        description=f"float32 matmul ({n}x{k}) @ ({k}x{m})",
        reference=_matmul_ref,
        knobs={"n": n, "m": m, "k": k},
        anchors=MATMUL,
    )


def conv2d_nhwc(
    size: int, channels: int, out_channels: int | None = None, kernel: int = 3, *,
    name: str | None = None, source: str = "synthetic",
) -> Workload:
    """Same-padded stride-1 2D convolution, NHWC activations and HWIO weights, float32."""
    out_channels = out_channels or channels
    pad = kernel // 2
    x = te.placeholder((1, size, size, channels), name="X")
    w = te.placeholder((kernel, kernel, channels, out_channels), name="W")
    padded = te.compute(
        (1, size + 2 * pad, size + 2 * pad, channels),
        lambda n, h, wd, c: te.if_then_else(
            te.all(h >= pad, h < size + pad, wd >= pad, wd < size + pad),
            x[n, h - pad, wd - pad, c],
            tvm.tirx.const(0.0, "float32"),
        ),
        name="pad",
    )
    rh = te.reduce_axis((0, kernel), name="rh")
    rw = te.reduce_axis((0, kernel), name="rw")
    rc = te.reduce_axis((0, channels), name="rc")
    y = te.compute(
        (1, size, size, out_channels),
        lambda n, h, wd, k: te.sum(
            padded[n, h + rh, wd + rw, rc] * w[rh, rw, rc, k], axis=[rh, rw, rc]
        ),
        name="conv",
    )
    return Workload(
        name=name or f"conv2d-{size}-{channels}",
        mod=_mod(te.create_prim_func([x, w, y])),
        flops=2 * size * size * channels * out_channels * kernel * kernel,
        source=source,
        description=(
            f"conv2d NHWC 1x{size}x{size}x{channels} -> {out_channels}, "
            f"{kernel}x{kernel}, stride 1, same padding"
        ),
        reference=_conv_ref,
        knobs={"size": size, "channels": channels},
        anchors=CONV2D_NHWC,
    )


def attention(
    heads: int, kv_heads: int, head_dim: int, seq_len: int, *, causal: bool, name: str,
    source: str,
) -> Workload:
    """Scaled dot-product attention core: QK^T, (masked) softmax, PV; grouped-query if kv_heads < heads.

    Q is ``(heads, seq, head_dim)``, K and V are ``(kv_heads, seq, head_dim)``; the projections
    around the core are plain matmuls and are left out.
    """
    group = heads // kv_heads
    q = te.placeholder((heads, seq_len, head_dim), name="Q")
    k = te.placeholder((kv_heads, seq_len, head_dim), name="K")
    v = te.placeholder((kv_heads, seq_len, head_dim), name="V")
    d = te.reduce_axis((0, head_dim), name="d")
    scale = tvm.tirx.const(1.0 / math.sqrt(head_dim), "float32")
    neg_inf = tvm.tirx.const(-3.0e38, "float32")
    qk = te.compute(
        (heads, seq_len, seq_len),
        lambda h, i, j: te.sum(q[h, i, d] * k[h // group, j, d], axis=d),
        name="qk",
    )
    if causal:
        scores = te.compute(
            (heads, seq_len, seq_len),
            lambda h, i, j: te.if_then_else(j <= i, qk[h, i, j] * scale, neg_inf),
            name="scores",
        )
    else:
        scores = te.compute(
            (heads, seq_len, seq_len), lambda h, i, j: qk[h, i, j] * scale, name="scores"
        )
    j_max = te.reduce_axis((0, seq_len), name="j_max")
    row_max = te.compute(
        (heads, seq_len), lambda h, i: te.max(scores[h, i, j_max], axis=j_max), name="row_max"
    )
    expd = te.compute(
        (heads, seq_len, seq_len),
        lambda h, i, j: te.exp(scores[h, i, j] - row_max[h, i]),
        name="exp",
    )
    j_sum = te.reduce_axis((0, seq_len), name="j_sum")
    row_sum = te.compute(
        (heads, seq_len), lambda h, i: te.sum(expd[h, i, j_sum], axis=j_sum), name="row_sum"
    )
    probs = te.compute(
        (heads, seq_len, seq_len),
        lambda h, i, j: expd[h, i, j] / row_sum[h, i],
        name="probs",
    )
    j_pv = te.reduce_axis((0, seq_len), name="j_pv")
    out = te.compute(
        (heads, seq_len, head_dim),
        lambda h, i, e: te.sum(probs[h, i, j_pv] * v[h // group, j_pv, e], axis=j_pv),
        name="out",
    )
    flops = 4 * heads * seq_len * seq_len * head_dim + 5 * heads * seq_len * seq_len
    return Workload(
        name=name,
        mod=_mod(te.create_prim_func([q, k, v, out])),
        flops=flops,
        source=source,
        description=(
            f"{'causal ' if causal else ''}attention, {heads} query heads, {kv_heads} KV heads, "
            f"head dim {head_dim}, seq {seq_len}: QK^T, softmax, PV"
        ),
        reference=_attention_ref(causal),
        knobs={"seq_len": seq_len},
        anchors=attention_anchors(causal),
    )


def swiglu_mlp(tokens: int, hidden: int, intermediate: int, *, name: str, source: str) -> Workload:
    """SwiGLU feed-forward ``down(silu(x @ gate^T) * (x @ up^T))``, PyTorch (out, in) weights.

    ``silu(g) = g * sigmoid(g)`` with the sigmoid as its own stage: MetaSchedule's default CPU rules
    never inline a block that calls ``exp`` and try to fuse an elementwise consumer into its
    producer's tiles, which fails for a consumer of two matmuls (gate and up). With the sigmoid
    apart (one producer) and ``gate * sigmoid * up`` inlined into the down projection, the stock
    rules generate the design space.
    """
    x = te.placeholder((tokens, hidden), name="X")
    w_gate = te.placeholder((intermediate, hidden), name="W_gate")
    w_up = te.placeholder((intermediate, hidden), name="W_up")
    w_down = te.placeholder((hidden, intermediate), name="W_down")
    kg = te.reduce_axis((0, hidden), name="kg")
    ku = te.reduce_axis((0, hidden), name="ku")
    gate = te.compute(
        (tokens, intermediate), lambda t, n: te.sum(x[t, kg] * w_gate[n, kg], axis=kg), name="gate"
    )
    up = te.compute(
        (tokens, intermediate), lambda t, n: te.sum(x[t, ku] * w_up[n, ku], axis=ku), name="up"
    )
    one = tvm.tirx.const(1.0, "float32")
    sigmoid = te.compute(
        (tokens, intermediate), lambda t, n: one / (one + te.exp(-gate[t, n])), name="sigmoid"
    )
    act = te.compute(
        (tokens, intermediate),
        lambda t, n: gate[t, n] * sigmoid[t, n] * up[t, n],
        name="swiglu",
    )
    kd = te.reduce_axis((0, intermediate), name="kd")
    y = te.compute(
        (tokens, hidden), lambda t, h: te.sum(act[t, kd] * w_down[h, kd], axis=kd), name="down"
    )
    return Workload(
        name=name,
        mod=_mod(te.create_prim_func([x, w_gate, w_up, w_down, y])),
        flops=6 * tokens * hidden * intermediate + 6 * tokens * intermediate,
        source=source,
        description=(
            f"SwiGLU MLP, {tokens} tokens, hidden {hidden}, intermediate {intermediate} "
            "(gate, up, silu(gate) * up, down)"
        ),
        reference=_swiglu_ref,
        knobs={"tokens": tokens},
        anchors=SWIGLU,
    )


# ----------------------------------------------------------------------------- the RC layers

# meta-llama/Meta-Llama-3-8B config.json: hidden_size 4096, num_attention_heads 32,
# num_key_value_heads 8 -> head_dim 4096 / 32 = 128. Causal (decoder) attention.
LLAMA3_8B = {"hidden": 4096, "heads": 32, "kv_heads": 8, "head_dim": 128}
# deepseek-ai/DeepSeek-R1 config.json (V3 architecture): hidden_size 7168, moe_intermediate_size 2048,
# n_routed_experts 256, num_experts_per_tok 8; the Reasoning Compiler appendix times one expert with
# 16 routed tokens: (1, 16, 7168) x (7168, 2048).
DEEPSEEK_R1 = {"hidden": 7168, "expert_intermediate": 2048, "tokens": 16}
# black-forest-labs/FLUX.1-dev transformer config.json: num_attention_heads 24,
# attention_head_dim 128 -> inner dim 3072. Joint attention over text+image tokens, not causal.
FLUX_TRANSFORMER = {"hidden": 3072, "heads": 24, "head_dim": 128}
# black-forest-labs/FLUX.1-dev vae/config.json: block_out_channels [128, 256, 512, 512]; the decoder's
# first up-blocks run 3x3 convolutions with 512 input and output channels.
FLUX_VAE = {"channels": 512, "kernel": 3}
# meta-llama/Llama-4-Scout-17B-16E config.json (text_config): hidden_size 5120, intermediate_size 8192
# (expert MLP; intermediate_size_mlp 16384 for dense layers), num_local_experts 16, SwiGLU.
LLAMA4_SCOUT = {"hidden": 5120, "intermediate": 8192}


def llama3_8b_attention(seq_len: int) -> Workload:
    c = LLAMA3_8B
    return attention(
        c["heads"], c["kv_heads"], c["head_dim"], seq_len, causal=True,
        name=f"llama3-8b-attention:seq_len={seq_len}",
        source="meta-llama/Meta-Llama-3-8B config.json (hidden 4096, 32 heads, 8 KV heads, dim 128)",
    )


def deepseek_r1_moe(tokens: int) -> Workload:
    c = DEEPSEEK_R1
    return swiglu_mlp(
        tokens, c["hidden"], c["expert_intermediate"], name=f"deepseek-r1-moe:tokens={tokens}",
        source="deepseek-ai/DeepSeek-R1 config.json (hidden 7168, moe_intermediate 2048); "
        "16 tokens per the Reasoning Compiler appendix",
    )


def flux_attention(seq_len: int) -> Workload:
    c = FLUX_TRANSFORMER
    return attention(
        c["heads"], c["heads"], c["head_dim"], seq_len, causal=False,
        name=f"flux-attention:seq_len={seq_len}",
        source="black-forest-labs/FLUX.1-dev transformer config.json (24 heads, head dim 128)",
    )


def flux_conv(size: int) -> Workload:
    c = FLUX_VAE
    return conv2d_nhwc(
        size, c["channels"], c["channels"], c["kernel"], name=f"flux-conv:size={size}",
        source="black-forest-labs/FLUX.1-dev vae/config.json (decoder 3x3 conv, 512 channels)",
    )


def llama4_scout_mlp(tokens: int) -> Workload:
    c = LLAMA4_SCOUT
    return swiglu_mlp(
        tokens, c["hidden"], c["intermediate"], name=f"llama4-scout-mlp:tokens={tokens}",
        source="meta-llama/Llama-4-Scout-17B-16E config.json (hidden 5120, intermediate 8192)",
    )


BUILDERS: dict[str, Callable[..., Workload]] = {
    "matmul": lambda n, m=None, k=None: matmul(n, m, k),
    "conv2d": lambda size, channels: conv2d_nhwc(size, channels),
    "llama3-8b-attention": llama3_8b_attention,
    "deepseek-r1-moe": deepseek_r1_moe,
    "flux-attention": flux_attention,
    "flux-conv": flux_conv,
    "llama4-scout-mlp": llama4_scout_mlp,
}
"""The builder of each family of :data:`~optarena.envs.tensor_schedule.names.FAMILIES`, called
with its knobs."""

RC_WORKLOADS: tuple[str, ...] = (
    "llama3-8b-attention",
    "deepseek-r1-moe",
    "flux-attention",
    "flux-conv",
    "llama4-scout-mlp",
)
"""The five layers of the Reasoning Compiler paper, at their default scale."""


def load_tvmscript(path: Path) -> Workload:
    """A user's workload: a Python file defining one TVMScript ``PrimFunc`` (or an ``IRModule``
    holding one), as users write them -- a docstring, imports, comments, helper functions and an
    ``if __name__ == "__main__":`` block are fine (the file is run as a module, not as a script).

    ``ValueError`` naming the file and the problem when it does not run, TVM cannot parse it, or
    it defines no ``PrimFunc``/``IRModule`` or several."""
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        namespace = runpy.run_path(str(path), run_name="optarena_user_workload")
    except Exception as err:  # the user's file: any error is theirs to see, with its place
        raise ValueError(f"{path}: cannot load the workload: {type(err).__name__}: "
                         f"{error_summary(err)}{_where(err, path)}") from err
    found = {id(v): (name, v) for name, v in namespace.items()
             if isinstance(v, tvm.tirx.PrimFunc | tvm.IRModule) and not name.startswith("__")}
    modules = [(name, v) for name, v in found.values() if isinstance(v, tvm.IRModule)]
    funcs = [(name, v) for name, v in found.values() if isinstance(v, tvm.tirx.PrimFunc)]
    if modules:
        if len(modules) > 1 or funcs:
            names = ", ".join(sorted(n for n, _ in found.values()))
            raise ValueError(f"{path}: defines several programs ({names}); a workload file "
                             "defines one PrimFunc or one IRModule")
        name, module = modules[0]
        funcs = [(f"{name}.{g.name_hint}", f) for g, f in module.functions.items()
                 if isinstance(f, tvm.tirx.PrimFunc)]
        if len(funcs) != 1:
            raise ValueError(f"{path}: IRModule {name} holds {len(funcs)} PrimFuncs; a workload "
                             "is one")
    if len(funcs) != 1:
        what = ", ".join(sorted(n for n, _ in funcs)) if funcs else "none"
        raise ValueError(f"{path}: a workload file defines one TVMScript PrimFunc "
                         f"(@T.prim_func) or IRModule (@I.ir_module); found {what}")
    mod = _mod(funcs[0][1])
    return Workload(
        name=str(path.resolve()),
        mod=mod,
        flops=int(estimate_tir_flops(mod)),
        source=f"user TVMScript {path}",
        description="user workload (checked against its unscheduled program)",
    )


def _where(err: BaseException, path: Path) -> str:
    """Where in the user's file ``err`` happened: TVMScript's own ``--> file:line:col``, else
    the deepest frame of the traceback in the file."""
    located = re.search(r"-->\s*(\S+:\d+:\d+)", str(err))
    if located:
        return f" at {located.group(1)}"
    lines = [frame.lineno for frame in traceback.extract_tb(err.__traceback__)
             if Path(frame.filename).resolve() == path.resolve()]
    return f" at {path}:{lines[-1]}" if lines else ""


def get_workload(spec: str) -> Workload:
    """Build a workload from a registered name (``NAME[:knob=value,...]``) or a TVMScript path
    (:func:`~optarena.envs.tensor_schedule.names.parse_workload` says which names exist)."""
    parsed = parse_workload(spec)
    if isinstance(parsed, Path):
        return load_tvmscript(parsed)
    family, knobs = parsed
    return BUILDERS[family](**knobs)
