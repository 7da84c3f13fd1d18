"""The C back end of the plan driver: a `DriverProgram` printed as C glue over wasm2c.

Each distinct module is translated by wasm2c under a name of its own (`mbk<hash>`,
`harness.standalone.wasm2c_build`); what wasm2c says
about it (its header: the C symbol and signature of every import and export, the import
structs its instantiate takes) is read back with `read_header`, never guessed from a name
mangling rule. The glue then defines, per import module name, the struct wasm2c's
instantiate takes (a field per import, filled per instance, so every instance keeps its
own bindings: its own private memory, its own host function), the import accessors
wasm2c calls, one trampoline per exported function a plan calls, and per variant a load
function and the tables `mb_driver.c` interprets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.runtimes.base import RuntimeUnsupported
from harness.runtimes.hostfuncs import signature
from harness.standalone.program import (
    HEAP_ONLY,
    OP_CALL,
    Command,
    DriverProgram,
    ProgramVariant,
)

#: host function kind -> the native host's C function (harness/standalone/c/mb_host.c)
NATIVE_HOST = {
    "noop": "mb_host_noop",
    "heap.load_f32": "mb_host_load_f32",
    "heap.load_i32": "mb_host_load_i32",
    "heap.store_f32": "mb_host_store_f32",
    "heap.store_i32": "mb_host_store_i32",
    "heap.copy_in": "mb_host_copy_in",
    "heap.copy_out": "mb_host_copy_out",
}


@dataclass(frozen=True)
class CFunc:
    symbol: str
    result: str
    params: tuple[str, ...]      # after the instance / import-struct pointer


@dataclass(frozen=True)
class CImport:
    module: str
    field: str
    struct: str                  # the import struct's C name (`w2c_env`)
    symbol: str                  # the accessor or function wasm2c calls
    func: CFunc | None           # None: a memory


@dataclass(frozen=True)
class CHeader:
    """What wasm2c's header says of one module."""

    name: str
    imports: tuple[CImport, ...]
    exports: dict[str, CFunc]            # function exports by wasm name
    memory_exports: dict[str, str]       # memory export name -> accessor symbol
    instantiate_structs: tuple[str, ...]  # import struct names, in instantiate's order

    def import_of(self, module: str, field: str) -> CImport:
        for imp in self.imports:
            if imp.module == module and imp.field == field:
                return imp
        raise RuntimeUnsupported(f"wasm2c's header of {self.name} has no import "
                                 f"{module}.{field}")


_PROTO = re.compile(r"^(?:extern\s+)?([\w ]+?\**)\s*(\w+)\((.*)\);$")


def _proto(line: str) -> tuple[str, str, list[str]] | None:
    m = _PROTO.match(line.strip())
    if not m:
        return None
    params = [p.strip() for p in m.group(3).split(",") if p.strip()]
    return m.group(1).replace(" *", "*").strip(), m.group(2), params


def read_header(name: str, text: str) -> CHeader:
    """Imports, exports and the instantiate signature from a wasm2c header."""
    lines = text.splitlines()
    externs: dict[str, tuple[str, str, list[str]]] = {}
    for line in lines:
        p = _proto(line)
        if p is not None:
            externs[p[1]] = p
    imports: list[CImport] = []
    exports: dict[str, CFunc] = {}
    memories: dict[str, str] = {}
    comment = re.compile(r"/\* (import|export): '(.*?)'(?: '(.*?)')? \*/")
    for i, line in enumerate(lines):
        m = comment.search(line)
        if m is None or i + 1 >= len(lines):
            continue
        nxt = lines[i + 1].strip()
        if m.group(1) == "import":
            field_m = re.match(r"^wasm_rt_memory_t \*(\w+);$", nxt)
            if field_m:  # a memory: wasm2c calls the extern accessor of that name
                sym = field_m.group(1)
                _, _, params = externs[sym]
                imports.append(CImport(m.group(2), m.group(3) or "", _struct(params[0]), sym,
                                       None))
                continue
            p = _proto(nxt)
            if p is None:
                raise RuntimeUnsupported(f"wasm2c's header of {name}: cannot read import "
                                         f"{m.group(2)}.{m.group(3)} ({nxt!r})")
            result, sym, params = p
            imports.append(CImport(m.group(2), m.group(3) or "", _struct(params[0]), sym,
                                   CFunc(sym, result, tuple(params[1:]))))
        else:
            p = _proto(nxt)
            if p is None:
                continue  # globals and tables: plans never touch them
            result, sym, params = p
            if result == "wasm_rt_memory_t*":
                memories[m.group(2)] = sym
            else:
                exports[m.group(2)] = CFunc(sym, result, tuple(params[1:]))
    inst = externs.get(f"wasm2c_{name}_instantiate")
    if inst is None:
        raise RuntimeUnsupported(f"wasm2c's header of {name} has no instantiate function")
    return CHeader(name, tuple(imports), exports, memories,
                   tuple(_struct(p) for p in inst[2][1:]))


def _struct(param: str) -> str:
    m = re.match(r"^struct (\w+)\*$", param.replace(" *", "*").strip())
    if m is None:
        raise RuntimeUnsupported(f"unexpected wasm2c import parameter {param!r}")
    return m.group(1)


def glue_source(program: DriverProgram, headers: list[CHeader]) -> str:
    """The C glue of a program whose module `i` wasm2c translated as `headers[i]`."""
    out: list[str] = ["/* generated by harness.standalone.c_program: do not edit */",
                      "#include <stdlib.h>", '#include "mb_driver.h"']
    out += [f'#include "{h.name}.h"' for h in headers]
    own = {f"w2c_{h.name}" for h in headers}
    # import structs: one field per (import symbol) over every module of the program
    structs: dict[str, dict[str, CImport]] = {}
    for h in headers:
        for imp in h.imports:
            if imp.struct in own:
                raise RuntimeUnsupported(f"import module {imp.module!r} collides with a "
                                         "module name of the program")
            seen = structs.setdefault(imp.struct, {}).get(imp.symbol)
            if seen is not None and seen.func != imp.func:
                raise RuntimeUnsupported(f"import {imp.module}.{imp.field} has two signatures "
                                         "in one program")
            structs[imp.struct][imp.symbol] = imp
    for h in headers:
        for st in h.instantiate_structs:
            structs.setdefault(st, {})
    for st, fields in structs.items():
        body = [f"  {'wasm_rt_memory_t*' if f.func is None else 'MbFn'} {sym};"
                for sym, f in fields.items()] or ["  int unused;"]
        out += [f"struct {st} {{", *body, "};"]
        for sym, f in fields.items():
            if f.func is None:
                out.append(f"wasm_rt_memory_t* {sym}(struct {st}* e) {{ return e->{sym}; }}")
                continue
            args = ", ".join(f"{t} a{k}" for k, t in enumerate(f.func.params))
            names = "".join(f", a{k}" for k in range(len(f.func.params)))
            fp = f"{f.func.result} (*)(void*{''.join(', ' + t for t in f.func.params)})"
            ret = "" if f.func.result == "void" else "return "
            out.append(f"{f.func.result} {sym}(struct {st}* e{', ' if args else ''}{args}) "
                       f"{{ {ret}(({fp})e->{sym}.fn)(e->{sym}.ctx{names}); }}")
    for vi, v in enumerate(program.variants):
        out += _variant(vi, v, headers)
    out.append("const MbVariantDesc* const MB_VARIANTS[] = {"
               + ", ".join(f"&V{i}" for i in range(len(program.variants))) + "};")
    out.append(f"const int MB_NVARIANTS = {len(program.variants)};")
    return "\n".join(out) + "\n"


def _c_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _strings(name: str, items: list[str] | tuple[str, ...]) -> str:
    return (f"static const char* const {name}[] = {{"
            + "".join(_c_str(x) + ", " for x in items) + "0};")


#: wasm value types as wasm2c spells them in C
C_TYPES = {"i32": "u32", "i64": "u64", "f32": "f32", "f64": "f64"}


def _c_signature(kind: str) -> tuple[str, tuple[str, ...]]:
    """A host-function kind's catalogue signature (`hostfuncs.SIGNATURES`) in wasm2c's C."""
    sig = signature(kind)
    return (C_TYPES[sig.results[0]] if sig.results else "void",
            tuple(C_TYPES[t] for t in sig.params))


def _same_type(fn: CFunc, result: str, params: tuple[str, ...]) -> bool:
    return fn.result == result and fn.params == params


def _show(result: str, params: tuple[str, ...]) -> str:
    return f"({', '.join(params)}) -> {result}"


def _variant(vi: int, v: ProgramVariant, headers: list[CHeader]) -> list[str]:
    """A variant's C: trampolines, its load function, census and command tables. Every
    call through a function pointer is checked here against the type it is called with
    (a host function against the catalogue, an export bound as an import against the
    import, a plan's call against the export's parameters): C would call through a
    mismatched pointer without a word."""
    p = f"v{vi}"
    out: list[str] = [f"/* variant {vi}: {v.name} */"]
    arity = {c.a: len(c.args) for c in (*v.setup, *v.run) if c.op == OP_CALL}
    arg_type = {c.a: C_TYPES[c.arg_type] for c in (*v.setup, *v.run) if c.op == OP_CALL}
    # trampolines: exported functions the plan calls, and exports bound as imports
    for k, (inst, export) in enumerate(v.calls):
        h = headers[v.instances[inst].module]
        fn = h.exports.get(export)
        if fn is None:
            raise RuntimeUnsupported(f"{h.name} exports no function {export!r}")
        given = arg_type.get(k, "u32")
        if any(t != given for t in fn.params):
            raise RuntimeUnsupported(f"export {export} takes {fn.params}: the plan calls it "
                                     f"with {given} arguments")
        if arity.get(k, len(fn.params)) != len(fn.params):
            raise RuntimeUnsupported(f"the plan calls {h.name}.{export} with {arity[k]} "
                                     f"arguments; it takes {len(fn.params)}")
        args = ", ".join(f"a[{j}]" for j in range(len(fn.params)))
        out.append(f"static void {p}_call{k}(void* inst, const uint32_t* a) {{ (void)a; "
                   f"{fn.symbol}((w2c_{h.name}*)inst{', ' if args else ''}{args}); }}")
    tramps: dict[tuple[int, str], str] = {}
    for x in v.instances:
        for imp in x.imports:
            if imp.kind != "export" or (imp.target, imp.export) in tramps:
                continue
            h = headers[v.instances[imp.target].module]
            fn = h.exports.get(imp.export)
            if fn is None:
                raise RuntimeUnsupported(f"{h.name} exports no function {imp.export!r}")
            name = f"{p}_tramp{len(tramps)}"
            tramps[(imp.target, imp.export)] = name
            args = ", ".join(f"{t} a{j}" for j, t in enumerate(fn.params))
            names = "".join(f", a{j}" for j in range(len(fn.params)))
            ret = "" if fn.result == "void" else "return "
            out.append(f"static {fn.result} {name}(void* ctx{', ' if args else ''}{args}) "
                       f"{{ {ret}{fn.symbol}((w2c_{h.name}*)ctx{names}); }}")
    # the load function: memories, host functions, instances in plan order
    body = []
    for mi, m in enumerate(v.memories):
        if m.kind == "host":
            body.append(f"  mb_new_memory(v, {mi}, {m.min_pages}, "
                        f"{m.max_pages if m.max_pages is not None else 65536}, "
                        f"{int(m.memory64)});")
        elif m.kind == "buffer":
            body.append(f"  mb_new_buffer(v, {mi}, {m.size});")
    for hi, hf in enumerate(v.host_funcs):
        if hf.kind not in NATIVE_HOST:
            raise RuntimeUnsupported(f"no native host function of kind {hf.kind!r}")
        body.append(f"  v->hostfuncs[{hi}] = (MbHostFunc){{v, {hf.heap}, {hf.private}}};")
    for ii, x in enumerate(v.instances):
        h = headers[x.module]
        body.append("  {")
        body.append(f"    w2c_{h.name}* inst = calloc(1, sizeof(w2c_{h.name}));")
        for si, st in enumerate(h.instantiate_structs):
            body.append(f"    struct {st}* imp{si} = calloc(1, sizeof(struct {st}));")
        for imp in x.imports:
            ci = h.import_of(imp.module, imp.field)
            st = f"imp{h.instantiate_structs.index(ci.struct)}"
            if imp.kind == "memory":
                if ci.func is not None:
                    raise RuntimeUnsupported(f"{imp.module}.{imp.field} is not a memory")
                body.append(f"    {st}->{ci.symbol} = v->mems[{imp.target}].wasm;")
            elif imp.kind == "host":
                kind = v.host_funcs[imp.target].kind
                native, want = NATIVE_HOST[kind], _c_signature(kind)
                if ci.func is None or not _same_type(ci.func, *want):
                    got = "a memory" if ci.func is None else _show(ci.func.result,
                                                                  ci.func.params)
                    raise RuntimeUnsupported(f"{h.name} imports {imp.module}.{imp.field} as "
                                             f"{got}; host function {kind} is {_show(*want)}")
                body.append(f"    {st}->{ci.symbol} = (MbFn){{(void*){native}, "
                            f"&v->hostfuncs[{imp.target}]}};")
            else:
                src = headers[v.instances[imp.target].module].exports[imp.export]
                if ci.func is None or not _same_type(ci.func, src.result, src.params):
                    got = "a memory" if ci.func is None else _show(ci.func.result,
                                                                  ci.func.params)
                    raise RuntimeUnsupported(
                        f"{h.name} imports {imp.module}.{imp.field} as {got}; the plan binds "
                        f"{v.instances[imp.target].name}.{imp.export}, "
                        f"{_show(src.result, src.params)}")
                body.append(f"    {st}->{ci.symbol} = (MbFn){{(void*)"
                            f"{tramps[(imp.target, imp.export)]}, v->instances[{imp.target}]}};")
        structs = "".join(f", imp{si}" for si in range(len(h.instantiate_structs)))
        body.append("    double t0 = mb_now();")
        body.append(f"    wasm2c_{h.name}_instantiate(inst{structs});")
        body.append(f"    v->instantiate_s[{ii}] = mb_now() - t0;")
        body.append(f"    v->instances[{ii}] = inst;")
        for mi, m in enumerate(v.memories):
            if m.kind == "export" and m.instance == ii:
                acc = h.memory_exports.get(m.export)
                if acc is None:
                    raise RuntimeUnsupported(f"{h.name} exports no memory {m.export!r}")
                body.append(f"    mb_export_memory(v, {mi}, {acc}(inst));")
        body.append("  }")
    out += [f"static void {p}_load(MbVariant* v) {{", *body, "}"]
    # the census: every wasm memory by device (host-created, then each instance's own)
    cen = ["  (void)v;"]
    for mi, m in enumerate(v.memories):
        if m.kind == "host":
            cen.append(f"  m[{m.device}]++; b[{m.device}] += (int64_t)v->mems[{mi}].wasm->size;")
    for ii, x in enumerate(v.instances):
        h = headers[x.module]
        for export, nbytes in x.defined:
            size = (f"(int64_t){h.memory_exports[export]}((w2c_{h.name}*)v->instances[{ii}])"
                    "->size" if export else f"(int64_t){nbytes}")
            cen.append(f"  m[{x.device}]++; b[{x.device}] += {size};")
    out += [f"static void {p}_census(MbVariant* v, int64_t* m, int64_t* b) {{", *cen, "}"]
    # the tables the driver interprets
    pool: list[int] = []
    windows: list[str] = []

    def cmds(name: str, cs: tuple[Command, ...]) -> str:
        rows = []
        for c in cs:
            a_at, w_at = len(pool), len(windows)
            if c.op == OP_CALL:
                pool.extend(c.args)
                windows.extend(f"{{{w.memory}, {w.offset}ULL, {w.size}ULL, {int(w.writable)}}}"
                               for w in c.windows)
            rows.append(f"{{{c.op}, {c.a}, {c.mem}, {c.mem2}, {c.off}ULL, {c.off2}ULL, "
                        f"{c.size}ULL, {a_at}, {len(c.args)}, {w_at}, {len(c.windows)}}}")
        return (f"static const MbCmd {name}[] = {{" + ", ".join(rows)
                + (", " if rows else "") + "{0}};")
    setup, run = cmds(f"{p}_setup", v.setup), cmds(f"{p}_run", v.run)
    out += [setup, run]
    out.append(f"static const uint32_t {p}_args[] = {{"
               + "".join(f"{a}u, " for a in pool) + "0};")
    out.append(f"static const MbWindow {p}_windows[] = {{" + "".join(w + ", " for w in windows)
               + "{0}};")
    out.append(f"static const MbCallEntry {p}_calls[] = {{"
               + "".join(f"{{{p}_call{k}, {inst}}}, " for k, (inst, _) in enumerate(v.calls))
               + "{0}};")
    out.append(_strings(f"{p}_instances", [x.name for x in v.instances]))
    out.append(_strings(f"{p}_tensors", [t for t, _ in v.tensors]))
    out.append(f"static const uint64_t {p}_tensor_sizes[] = {{"
               + "".join(f"{n}ULL, " for _, n in v.tensors) + "0};")
    out.append(_strings(f"{p}_outputs", [t for t, _ in v.outputs]))
    out.append(f"static const uint64_t {p}_output_sizes[] = {{"
               + "".join(f"{n}ULL, " for _, n in v.outputs) + "0};")
    out.append(_strings(f"{p}_counters", list(v.counters)))
    out.append(_strings(f"{p}_devices", list(v.devices)))
    has_heap = int(any(c for c in v.counters if c in HEAP_ONLY))
    out.append(
        f"static const MbVariantDesc V{vi} = {{{_c_str(v.name)}, {len(v.memories)}, "
        f"{len(v.instances)}, {len(v.host_funcs)}, {len(v.tensors)}, {len(v.outputs)}, "
        f"{len(v.counters)}, {len(v.devices)}, {p}_instances, {p}_tensors, "
        f"{p}_tensor_sizes, {p}_outputs, {p}_output_sizes, {p}_counters, {p}_devices, "
        f"{p}_args, {p}_windows, {p}_calls, {p}_setup, {len(v.setup)}, {p}_run, {len(v.run)}, "
        f"{has_heap}, {p}_load, {p}_census}};")
    return out
