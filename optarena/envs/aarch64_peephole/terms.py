"""Bit-vector terms for the peephole prover: built, simplified, evaluated, written for z3.

A :class:`Term` is a node of a shared graph (hash-consed: two terms of the same operation on the
same arguments are one object), so two blocks that compute a value the same way compute the
*same* term, and most rewrites are proved by comparing objects, with no solver call. The builder
(:class:`Terms`) folds constants and the identities that keep equal values equal as terms:
``(x + 8) + 8`` is ``x + 16``, the bytes of a register stored and loaded back are the register,
``concat(0, x)`` is ``zext(x)``. Terms are plain Python (about a microsecond each); z3 sees only
the queries the comparison leaves open, as SMT-LIB text (:func:`smtlib`).

Widths are in bits; 1-bit terms stand for conditions. Memory terms (width :data:`MEMORY`) are
``memory`` (the initial memory) and ``store`` chains of single bytes over it; ``select`` reads a
byte. :func:`evaluate` computes a term's value from given leaves: counterexamples read back from
z3's model, and the differential tests against unicorn, use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

MEMORY = -1
"""The width of memory terms (an array from 64-bit addresses to bytes)."""
_SAME_WIDTH = frozenset({"add", "sub", "mul", "and", "or", "xor", "shl", "lshr", "ashr", "udiv",
                         "sdiv"})
_COMPARE = frozenset({"eq", "ult", "ule", "slt", "sle"})
_SMT = {"add": "bvadd", "sub": "bvsub", "mul": "bvmul", "and": "bvand", "or": "bvor",
        "xor": "bvxor", "not": "bvnot", "shl": "bvshl", "lshr": "bvlshr", "ashr": "bvashr",
        "ult": "bvult", "ule": "bvule", "slt": "bvslt", "sle": "bvsle", "concat": "concat"}


class Term:
    """One node of the graph; made only by :class:`Terms` (compare terms with ``is``)."""

    __slots__ = ("args", "id", "op", "params", "width")

    def __init__(self, op: str, args: tuple[Term, ...], params: tuple[int | str, ...], width: int,
                 ident: int) -> None:
        self.op, self.args, self.params, self.width, self.id = op, args, params, width, ident

    @property
    def value(self) -> int:
        """A constant's value."""
        assert self.op == "const"
        return int(self.params[0])

    def __repr__(self) -> str:
        inner = ", ".join([*map(str, self.params), *(f"t{a.id}" for a in self.args)])
        return f"t{self.id}:{self.op}({inner})"


def _signed(value: int, width: int) -> int:
    return value - (1 << width) if value >> (width - 1) & 1 else value


def _concrete(op: str, params: tuple[int | str, ...], values: Sequence[int],
              widths: Sequence[int], width: int) -> int:
    """The value of a bit-vector operation on constants (AArch64's division: by 0 gives 0)."""
    mask = (1 << width) - 1
    a = values[0]
    b = values[1] if len(values) > 1 else 0
    if op in ("add", "sub", "mul", "and", "or", "xor"):
        result = {"add": a + b, "sub": a - b, "mul": a * b, "and": a & b, "or": a | b,
                  "xor": a ^ b}[op]
    elif op == "not":
        result = ~a
    elif op == "shl":
        result = a << b if b < width else 0
    elif op == "lshr":
        result = a >> b if b < width else 0
    elif op == "ashr":
        result = _signed(a, width) >> min(b, width - 1)
    elif op == "udiv":
        result = a // b if b else 0
    elif op == "sdiv":
        sa, sb = _signed(a, width), _signed(b, width)
        result = (abs(sa) // abs(sb)) * (1 if (sa < 0) == (sb < 0) else -1) if sb else 0
    elif op in _COMPARE:
        if op in ("slt", "sle"):
            a, b = _signed(a, widths[0]), _signed(b, widths[0])
        result = int({"eq": a == b, "ult": a < b, "ule": a <= b, "slt": a < b,
                      "sle": a <= b}[op])
    elif op == "extract":
        result = a >> int(params[1])
    elif op == "concat":
        result = a << widths[1] | b
    elif op == "zext":
        result = a
    elif op == "sext":
        result = _signed(a, widths[0])
    elif op == "ite":
        result = values[1] if a else values[2]
    else:
        raise ValueError(f"no constant folding for {op}")
    return result & mask


class Terms:
    """Makes terms: interned (one object per distinct term) and simplified as they are made.

    The table is bounded: past ``limit`` terms it starts afresh (terms made before stay valid;
    only their sharing with later ones is lost, which costs solver calls, never correctness).
    """

    def __init__(self, limit: int = 1 << 20) -> None:
        self.limit = limit
        self._interned: dict[tuple[object, ...], Term] = {}
        self._next = 0
        self.generation = 0
        """How many times the table started afresh (whoever keeps terms can start afresh too)."""

    def _make(self, op: str, args: tuple[Term, ...], params: tuple[int | str, ...],
              width: int) -> Term:
        key = (op, width, params, *(a.id for a in args))
        term = self._interned.get(key)
        if term is None:
            if len(self._interned) >= self.limit:
                self._interned.clear()
                self.generation += 1
            term = Term(op, args, params, width, self._next)
            self._next += 1
            self._interned[key] = term
        return term

    # ------------------------------------------------------------------ leaves

    def const(self, value: int, width: int) -> Term:
        return self._make("const", (), (value & ((1 << width) - 1),), width)

    def var(self, name: str, width: int) -> Term:
        return self._make("var", (), (name,), width)

    def memory(self) -> Term:
        """The initial memory."""
        return self._make("memory", (), (), MEMORY)

    def apply(self, name: str, args: Sequence[Term], width: int) -> Term:
        """Uninterpreted function ``name`` (one signature per name) on ``args``."""
        return self._make("uf", tuple(args), (name,), width)

    # ------------------------------------------------------------------ memory

    def select(self, memory: Term, address: Term) -> Term:
        return self._make("select", (memory, address), (), 8)

    def store(self, memory: Term, address: Term, byte: Term) -> Term:
        return self._make("store", (memory, address, byte), (), MEMORY)

    # ------------------------------------------------------------------ operations

    def op(self, op: str, *args: Term) -> Term:
        """``add sub mul and or xor shl lshr ashr udiv sdiv`` (operands of one width), ``not``,
        ``eq ult ule slt sle`` (1 bit), ``concat`` (first operand high), ``ite`` (1-bit
        condition first)."""
        if op in _SAME_WIDTH or op == "not":
            width = args[0].width
        elif op in _COMPARE:
            width = 1
        elif op == "concat":
            width = args[0].width + args[1].width
        elif op == "ite":
            width = args[1].width
        else:
            raise ValueError(f"unknown operation {op}")
        if all(a.op == "const" for a in args):
            return self.const(_concrete(op, (), [a.value for a in args], [a.width for a in args],
                                        width), width)
        simpler = self._simplify(op, args)
        return simpler if simpler is not None else self._make(op, args, (), width)

    def _simplify(self, op: str, args: tuple[Term, ...]) -> Term | None:
        a = args[0]
        b = args[1] if len(args) > 1 else a
        if op in ("add", "and", "or", "xor", "mul") and a.op == "const":
            return self.op(op, b, a)  # constants second
        if op == "sub" and b.op == "const":
            return self.op("add", a, self.const(-b.value, b.width))
        if b.op == "const" and op != "ite":
            zero, ones = b.value == 0, b.value == (1 << b.width) - 1
            if zero and op in ("add", "or", "xor", "shl", "lshr", "ashr", "sub"):
                return a
            if (zero and op in ("and", "mul")) or (ones and op == "or"):
                return b
            if ones and op == "and":
                return a
            if op == "add" and a.op == "add" and a.args[1].op == "const":
                return self.op("add", a.args[0], self.const(a.args[1].value + b.value, b.width))
        if op == "ite":
            condition, then, otherwise = args
            if then is otherwise:
                return then
            if condition.op == "const":
                return then if condition.value else otherwise
        if op == "eq" and a is b:
            return self.const(1, 1)
        if op == "concat":
            if a.op == "const" and a.value == 0:
                return self.zext(b, a.width)
            if a.op == b.op == "extract" and a.args[0] is b.args[0] \
                    and a.params[1] == int(b.params[0]) + 1:
                return self.extract(a.args[0], int(a.params[0]), int(b.params[1]))
        return None

    def extract(self, term: Term, high: int, low: int) -> Term:
        """Bits ``high`` down to ``low`` of ``term``."""
        if low == 0 and high == term.width - 1:
            return term
        if term.op == "const":
            return self.const(term.value >> low, high - low + 1)
        if term.op == "extract":
            inner = int(term.params[1])
            return self.extract(term.args[0], high + inner, low + inner)
        if term.op == "concat":
            top, bottom = term.args
            if high < bottom.width:
                return self.extract(bottom, high, low)
            if low >= bottom.width:
                return self.extract(top, high - bottom.width, low - bottom.width)
        if term.op == "zext":
            inner = term.args[0]
            if high < inner.width:
                return self.extract(inner, high, low)
            if low >= inner.width:
                return self.const(0, high - low + 1)
        return self._make("extract", (term,), (high, low), high - low + 1)

    def zext(self, term: Term, bits: int) -> Term:
        """``term`` widened by ``bits`` zero bits."""
        if bits == 0:
            return term
        if term.op == "const":
            return self.const(term.value, term.width + bits)
        if term.op == "zext":
            return self.zext(term.args[0], int(term.params[0]) + bits)
        return self._make("zext", (term,), (bits,), term.width + bits)

    def sext(self, term: Term, bits: int) -> Term:
        """``term`` widened by ``bits`` copies of its sign bit."""
        if bits == 0:
            return term
        if term.op == "const":
            return self.const(_signed(term.value, term.width), term.width + bits)
        return self._make("sext", (term,), (bits,), term.width + bits)

    def concat(self, parts: Iterable[Term]) -> Term:
        """``parts`` side by side, the first the lowest bits."""
        result: Term | None = None
        for part in parts:
            result = part if result is None else self.op("concat", part, result)
        assert result is not None
        return result


# ------------------------------------------------------------------ evaluation


@dataclass(frozen=True)
class Leaves:
    """What :func:`evaluate` takes as given: variables, initial memory, uninterpreted functions."""

    var: Callable[[str], int]
    byte: Callable[[int], int]
    """The initial memory's byte at an address."""
    apply: Callable[[str, Sequence[int], Sequence[int], int], int]
    """An uninterpreted function's value: name, argument values, their widths, result width."""


def evaluate(term: Term, leaves: Leaves, memo: dict[int, int] | None = None) -> int:
    """The value of a bit-vector term, its leaves given."""
    memo = {} if memo is None else memo
    stack = [term]
    while stack:
        node = stack[-1]
        if node.id in memo:
            stack.pop()
            continue
        if node.op == "select":
            pending = [node.args[1]]
        elif node.op == "store" or node.op == "memory":
            raise ValueError("memory terms have no value: use read()")
        else:
            pending = list(node.args)
        waiting = [a for a in pending if a.id not in memo]
        if waiting:
            stack.extend(waiting)
            continue
        stack.pop()
        memo[node.id] = _evaluate_node(node, leaves, memo)
    return memo[term.id]


def _evaluate_node(node: Term, leaves: Leaves, memo: dict[int, int]) -> int:
    if node.op == "const":
        return node.value
    if node.op == "var":
        return leaves.var(str(node.params[0])) & ((1 << node.width) - 1)
    if node.op == "uf":
        return leaves.apply(str(node.params[0]), [memo[a.id] for a in node.args],
                            [a.width for a in node.args], node.width)
    if node.op == "select":
        return read(node.args[0], memo[node.args[1].id], leaves, memo)
    return _concrete(node.op, node.params, [memo[a.id] for a in node.args],
                     [a.width for a in node.args], node.width)


def read(memory: Term, address: int, leaves: Leaves, memo: dict[int, int] | None = None) -> int:
    """The byte at ``address`` of a memory term, its leaves given."""
    memo = {} if memo is None else memo
    while memory.op == "store":
        target, byte = memory.args[1], memory.args[2]
        if evaluate(target, leaves, memo) == address:
            return evaluate(byte, leaves, memo)
        memory = memory.args[0]
    return leaves.byte(address)


def stored(memory: Term) -> list[tuple[Term, Term]]:
    """The ``(address, byte)`` stores of a memory term, the first made first."""
    out = []
    while memory.op == "store":
        out.append((memory.args[1], memory.args[2]))
        memory = memory.args[0]
    return out[::-1]


# ------------------------------------------------------------------ SMT-LIB


def split(address: Term) -> tuple[Term | None, int]:
    """``(base, offset)`` with ``address = base + offset`` (base None for a constant)."""
    if address.op == "add" and address.args[1].op == "const":
        return address.args[0], address.args[1].value
    if address.op == "const":
        return None, address.value
    return address, 0


def _distinct(a: Term, b: Term) -> bool | None:
    """Whether two addresses are certainly different (True), certainly equal (False), or it
    depends on the values (None)."""
    base_a, offset_a = split(a)
    base_b, offset_b = split(b)
    return offset_a != offset_b if base_a is base_b else None


@dataclass(frozen=True)
class Script:
    """An SMT-LIB 2 script over bit-vectors only, and what it says about the initial memory."""

    text: str
    reads: list[tuple[Term, str]]
    """Each address the initial memory is read at, with the constant that stands for its byte."""


def _sort(width: int) -> str:
    return f"(_ BitVec {width})"


def smtlib(assertions: Sequence[Term], terms: Terms) -> Script:
    """A script asserting each 1-bit term of ``assertions`` is 1, with no arrays: a read of a
    stored-to memory is a chain of ``ite`` over the stores whose address may equal the read's
    (read over write), a read of the initial memory a constant of its own, equal to another's
    whenever their addresses are equal (Ackermann's reduction), and two memories differ when they
    differ at a free address. Shared terms are ``define-fun`` s; ``terms`` makes the free
    addresses."""
    emitter = _Emitter(terms)
    body = [f"(assert (= {emitter.name(a)} #b1))" for a in assertions]
    reads = list(emitter.reads.items())
    for i, (a, name_a) in enumerate(reads):
        for b, name_b in reads[:i]:
            if _distinct(a, b) is None:
                body.append(f"(assert (=> {emitter.equal(a, b)} (= {name_a} {name_b})))")
    return Script("\n".join([*emitter.declared.values(), *emitter.lines, *body]),
                  [(address, name) for address, name in reads])


class _Emitter:
    def __init__(self, terms: Terms) -> None:
        self.terms = terms
        self.declared: dict[str, str] = {}
        self.lines: list[str] = []
        self.names: dict[int, str] = {}
        self.reads: dict[Term, str] = {}

    def name(self, term: Term) -> str:
        """The SMT-LIB name of a bit-vector term, defining it and what it uses first."""
        stack = [term]
        while stack:
            node = stack[-1]
            if node.id in self.names:
                stack.pop()
                continue
            waiting = [a for a in self._uses(node) if a.id not in self.names]
            if waiting:
                stack.extend(waiting)
                continue
            stack.pop()
            self.names[node.id] = self._define(node)
        return self.names[term.id]

    def _uses(self, node: Term) -> list[Term]:
        if node.op == "select":
            memory, address = node.args
            return [address, *(t for pair in stored(memory) for t in pair)]
        if node.op == "eq" and node.args[0].width == MEMORY:
            return [t for memory in node.args for pair in stored(memory) for t in pair]
        return list(node.args)

    def _read(self, memory: Term, address: Term) -> str:
        """The byte at ``address`` of a memory (read over write)."""
        if address not in self.reads:
            self.reads[address] = f"m{len(self.reads)}"
            self.declared[self.reads[address]] = f"(declare-const m{len(self.reads) - 1} (_ BitVec 8))"
        text = self.reads[address]
        for target, byte in stored(memory):
            different = _distinct(address, target)
            if different is False:
                text = self.names[byte.id]
            elif different is None:
                text = f"(ite {self.equal(address, target)} {self.names[byte.id]} {text})"
        return text

    def equal(self, a: Term, b: Term) -> str:
        """``a = b`` for two addresses of different bases, as ``base_a - base_b = constant``:
        the reads of a block compare many addresses of a few bases, and one subtraction per
        pair of bases bit-blasts far smaller than one adder per address."""
        base_a, offset_a = split(a)
        base_b, offset_b = split(b)
        if base_a is None or base_b is None:
            base = base_b if base_a is None else base_a
            assert base is not None
            constant = (offset_a - offset_b) * (1 if base_a is None else -1)
            return f"(= {self.name(base)} (_ bv{constant % 2**64} 64))"
        difference = self.terms.op("sub", base_a, base_b)
        return f"(= {self.name(difference)} (_ bv{(offset_b - offset_a) % 2**64} 64))"

    def _define(self, node: Term) -> str:
        args = [self.names.get(a.id, "") for a in node.args]
        op = node.op
        if op == "const":
            return f"(_ bv{node.value} {node.width})"
        if op in ("memory", "store"):
            return ""  # memories appear only through reads
        if op == "var":
            name = str(node.params[0])
            self.declared.setdefault(name, f"(declare-const {name} {_sort(node.width)})")
            return name
        if op == "uf":
            name = str(node.params[0])
            sorts = " ".join(_sort(a.width) for a in node.args)
            self.declared.setdefault(name, f"(declare-fun {name} ({sorts}) {_sort(node.width)})")
            text = f"({name} {' '.join(args)})"
        elif op == "select":
            text = self._read(node.args[0], node.args[1])
        elif op == "eq" and node.args[0].width == MEMORY:  # equal at a free address
            probe = self.terms.var(f"probe{len(self.declared)}", 64)
            self.name(probe)
            text = (f"(ite (= {self._read(node.args[0], probe)} "
                    f"{self._read(node.args[1], probe)}) #b1 #b0)")
        elif op in ("eq", "ult", "ule", "slt", "sle"):
            relation = "=" if op == "eq" else _SMT[op]
            text = f"(ite ({relation} {args[0]} {args[1]}) #b1 #b0)"
        elif op in ("udiv", "sdiv"):
            zero = f"(_ bv0 {node.width})"
            text = f"(ite (= {args[1]} {zero}) {zero} (bv{op} {args[0]} {args[1]}))"
        elif op == "ite":
            text = f"(ite (= {args[0]} #b1) {args[1]} {args[2]})"
        elif op == "extract":
            text = f"((_ extract {node.params[0]} {node.params[1]}) {args[0]})"
        elif op in ("zext", "sext"):
            kind = "zero_extend" if op == "zext" else "sign_extend"
            text = f"((_ {kind} {node.params[0]}) {args[0]})"
        else:
            text = f"({_SMT[op]} {' '.join(args)})"
        name = f"t{node.id}"
        self.lines.append(f"(define-fun {name} () {_sort(node.width)} {text})")
        return name
