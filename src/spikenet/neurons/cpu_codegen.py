"""C++ source of a neuron's CPU kernel: the shared skeleton ``csrc/neuron_cpu.cpp`` plus code generated from
the neuron's definition (``program.py``): its constants, one struct per variant with the step's forward
loops (last step or not, with or without saving the tape) and backward loops (per surrogate, last step
or not), and the surrogate slopes (``SpikeSurrogate.cpp_struct``).

Every loop is one straight pass over a block of elements (reads first, then writes) that the compiler
vectorises; constants are copied into locals first (a load through the struct would block that).
"""

from __future__ import annotations

from pathlib import Path

from spikenet.neurons.definitions import NEURONS
from spikenet.neurons.expr import Expr, add, render, sym, symbols
from spikenet.neurons.program import Body, Program, program
from spikenet.neurons.surrogates import SURROGATES, cpp_name

SKELETON = Path(__file__).with_name("csrc") / "neuron_cpu.cpp"


def ops_namespace(name: str) -> str:
    """The torch.ops namespace of neuron ``name``'s kernel."""
    return f"spikenet_{name}"


def _leaf(s: Expr) -> str:
    kind, name = s.data
    if kind == "x":
        return "xt[j]"
    if kind == "state":
        return f"st_{name}[j]"
    if kind == "const":
        return f"c_{name}"
    if kind == "param":
        return f"par_{name}[j]"
    if kind == "tape":
        return f"{name}[j]"
    if kind == "adj":
        return "go[j]" if name == "out" else f"gst_{name}[j]"
    if kind == "acc":
        return f"gpar_{name}[j]"
    raise ValueError(f"no C++ binding for symbol {kind}:{name}")


def _loop(lines: list[str], indent: str) -> list[str]:
    inner = indent + "  "
    return [f"{indent}for (int64_t j = 0; j < n; ++j) {{", *(inner + ln for ln in lines), f"{indent}}}"]


def _forward_targets(body: Body) -> list[tuple[str, Expr]]:
    out = []
    for role, e in body:
        if role == "spike":
            out.append(("spike[j]", e))
        elif role.startswith("state:"):
            out.append((f"st_{role[6:]}[j]", e))
        else:
            out.append((f"{role[5:]}[j]", e))  # tape:ti0 -> ti0[j]
    return out


def _backward_targets(body: Body) -> list[tuple[str, Expr]]:
    out = []
    for role, e in body:
        if role == "adj_x":
            out.append(("gx[j]", e))
        elif role.startswith("adj_state:"):
            out.append((f"gst_{role[10:]}[j]", e))
        else:  # a parameter's share of this step, added to its running sum
            name = role[10:]
            out.append((f"gpar_{name}[j]", add(sym("acc", name), e)))
    return out


def _locals(bodies: list[Body], extra: tuple[str, ...] = ()) -> list[str]:
    used = {s.data[1] for s in symbols([e for b in bodies for _, e in b], "const")} | set(extra)
    return [f"const float c_{c} = c.{c};" for c in sorted(used)]


def _variant_struct(prog: Program) -> str:
    defn = prog.defn
    facts = defn.all_variants()[prog.variant]
    what = ", ".join(f"{k} == {v!r}" for k, v in facts.items()) or "general"
    nt, ntl = len(prog.tape), len(prog.tape_last)
    run = {last: render(_forward_targets(prog.forward(last, tape=False)), _leaf, "cpp") for last in (False, True)}
    rec = {last: render(_forward_targets([(r, e) for r, e in prog.forward(last) if r != "spike"]), _leaf, "cpp")
           for last in (False, True)}
    bwd = {last: render(_backward_targets(prog.backward(last)), _leaf, "cpp",
                        slope_call=lambda a: f"G::f({a}, c_alpha)") for last in (False, True)}
    states = [f"float* __restrict__ st_{s} = st[{i}];" for i, s in enumerate(defn.states)]
    params = [f"const float* __restrict__ par_{p} = par[{i}];" for i, p in enumerate(defn.param_names)]
    gstates = [f"float* __restrict__ gst_{s} = gst[{i}];" for i, s in enumerate(defn.states)]
    gparams = [f"float* __restrict__ gpar_{p} = gpar[{i}];" for i, p in enumerate(defn.param_names)]
    tape_w = [f"float* __restrict__ ti{i} = tape[{i}];" for i in range(nt)]
    tape_lw = [f"float* __restrict__ tl{i} = tape_last[{i}];" for i in range(ntl)]
    tape_r = [f"const float* __restrict__ ti{i} = tape[{i}];" for i in range(nt)]
    tape_lr = [f"const float* __restrict__ tl{i} = tape_last[{i}];" for i in range(ntl)]
    fwd_locals = _locals([prog.forward(False), prog.forward(True)])
    bwd_locals = _locals([prog.backward(False), prog.backward(True)], ("alpha",))
    i4, i6, i8 = " " * 4, " " * 6, " " * 8
    lines = [
        f"// variant {prog.variant}: {what}; tape: {nt} value(s) per step, {ntl} more at the last step",
        f"struct Variant{prog.variant} {{",
        f"  static constexpr int kTape = {nt}, kTapeLast = {ntl};",
        "  template <bool Last, bool Tape>",
        "  static inline void forward(const Consts& c, const float* __restrict__ xt, float* const* st,",
        "                             const float* const* par, float* __restrict__ spike, float* const* tape,",
        "                             float* const* tape_last, int64_t n) {",
        *(i4 + ln for ln in fwd_locals + states + params),
        "    if constexpr (Tape) {",
        *(i6 + ln for ln in tape_w),
        "      if constexpr (Last) {",
        *(i8 + ln for ln in tape_lw),
        *_loop(rec[True], i8),
        "      } else {",
        *_loop(rec[False], i8),
        "      }",
        "    } else if constexpr (Last) {",
        *_loop(run[True], i6),
        "    } else {",
        *_loop(run[False], i6),
        "    }",
        "  }",
        "  template <class G, bool Last>",
        "  static inline void backward(const Consts& c, const float* __restrict__ xt, const float* __restrict__ go,",
        "                              float* const* gst, const float* const* par, const float* const* tape,",
        "                              const float* const* tape_last, float* const* gpar, float* __restrict__ gx,",
        "                              int64_t n) {",
        *(i4 + ln for ln in bwd_locals + gstates + params + gparams + tape_r),
        "    if constexpr (Last) {",
        *(i6 + ln for ln in tape_lr),
        *_loop(bwd[True], i6),
        "    } else {",
        *_loop(bwd[False], i6),
        "    }",
        "  }",
        "};",
    ]
    return "\n".join(lines)


def generated_part(name: str) -> str:
    """The neuron-specific C++ that replaces ``// @@GENERATED@@`` in the skeleton."""
    defn = NEURONS.get(name)
    consts = list(defn.constants)
    n_values = len(consts) + 2
    fields = ", ".join(consts + ["alpha", "reset_grad"])
    assign = [f"  c.{c} = static_cast<float>(v[{i}]);" for i, c in enumerate(consts + ["alpha", "reset_grad"])]
    variants = [program(name, i, None) for i in range(len(defn.all_variants()))]
    parts = [
        f"// ---- generated from the definition of '{name}' (spikenet/neurons/definitions.py) ----",
        f"constexpr int kStates = {len(defn.states)};  // {', '.join(defn.states)}",
        f"constexpr int kParams = {len(defn.param_names)};  // {', '.join(defn.param_names) or 'none'}",
        "",
        "struct Consts {",
        f"  float {fields};  // the neuron's constants, the surrogate's alpha, 1 (0: detach_reset)",
        "  float scale;  // dropout: kept units are scaled by this",
        "  int32_t thr;  // a unit is kept where its 16-bit word is below this",
        "  bool drop;",
        "};",
        "",
        "Consts make_consts(c10::ArrayRef<double> v, bool drop, int64_t drop_threshold, double drop_scale) {",
        f"  TORCH_CHECK(v.size() == {n_values}, \"consts: expected {n_values} values ({', '.join(consts)}, "
        "alpha, reset_grad), got \", v.size());",
        "  Consts c;",
        *assign,
        "  c.scale = static_cast<float>(drop_scale);",
        "  c.thr = static_cast<int32_t>(drop_threshold);",
        "  c.drop = drop;",
        "  return c;",
        "}",
        "",
        *(SURROGATES.get(n).cpp_struct() for n in SURROGATES),
        "template <class Fn>",
        "void with_surrogate(int64_t id, Fn&& fn) {",
        "  switch (id) {",
        *(f"    case {i}: fn({cpp_name(n)}{{}}); break;" for i, n in enumerate(SURROGATES)),
        "    default: TORCH_CHECK(false, \"unknown surrogate id \", id);",
        "  }",
        "}",
        "",
        *(_variant_struct(p) + "\n" for p in variants),
        "template <class Fn>",
        "void with_variant(int64_t id, Fn&& fn) {",
        "  switch (id) {",
        *(f"    case {i}: fn(Variant{i}{{}}); break;" for i in range(len(variants))),
        "    default: TORCH_CHECK(false, \"unknown variant \", id);",
        "  }",
        "}",
        f"// ---- end of the part generated for '{name}' ----",
    ]
    return "\n".join(parts)


def cpu_source(name: str) -> str:
    """The complete C++ source of neuron ``name``'s CPU kernel."""
    NEURONS.entry(name)  # an unknown name: one-line ValueError naming the choices
    skeleton = SKELETON.read_text()
    if "// @@GENERATED@@" not in skeleton or "@@OPS@@" not in skeleton:
        raise ValueError(f"{SKELETON}: the markers '// @@GENERATED@@' and '@@OPS@@' are missing")
    return skeleton.replace("// @@GENERATED@@", generated_part(name)).replace("@@OPS@@", ops_namespace(name))
